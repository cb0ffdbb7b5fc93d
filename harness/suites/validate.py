"""Checks a suite's splits against the schemas in :mod:`harness.suites.base` before any training starts.

Suites can read user data (local mirrors of hub datasets, custom evaluation sets); a missing split, a missing
column, an empty split or an evaluation set with empty or duplicate instructions would otherwise surface as a
stack trace minutes into a run, or worse, as a silently wrong win rate.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from datasets import Dataset

from harness.core.errors import ConfigError

TRAINING_SCHEMAS = {
    "sft": ("instruction", "output"),
    "preference": ("instruction", "output_1", "output_2", "preference"),
    "unlabeled": ("instruction",),
    "val": ("instruction", "output_1", "output_2", "preference"),
}
EVAL_SCHEMA = ("instruction", "output", "generator")
PREFERENCES = {1, 1.5, 2}


def validate_splits(splits: dict[str, Dataset], eval_sets: tuple[str, ...], source: str,
                    pairs_from_policy: bool = False) -> None:
    """Raises ConfigError (one line naming ``source``, the split and the problem) on the first problem found.

    With ``pairs_from_policy`` the preference and val splits need instructions only (the run samples their pairs).
    """
    schemas = {**TRAINING_SCHEMAS, **{name: EVAL_SCHEMA for name in eval_sets}}
    if pairs_from_policy:
        schemas.update(preference=("instruction",), val=("instruction",))
    for name, columns in schemas.items():
        where = f"{source}: split {name!r}"
        if name not in splits:
            raise ConfigError(f"{where} is missing; a suite provides {', '.join(schemas)}")
        data = splits[name]
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            raise ConfigError(f"{where} lacks column {missing[0]!r}; it needs {', '.join(columns)}")
        if len(data) == 0:
            raise ConfigError(f"{where} is empty")
        for column in columns:
            if column == "preference":
                bad = next((p for p in data[column] if p not in PREFERENCES), None)
                if bad is not None:
                    raise ConfigError(f"{where}: preference {bad!r} is not 1, 1.5 or 2")
            elif any(not isinstance(v, str) for v in data[column]):
                raise ConfigError(f"{where}: column {column!r} must hold text")
        check_instructions(data["instruction"], where, unique=name in eval_sets)


def check_instructions(instructions: Sequence[str], where: str, unique: bool) -> None:
    """Raises ConfigError (one line starting with ``where``) if an instruction is empty, or repeated when ``unique``.

    Evaluation sets must be unique: a repeated instruction counts twice in the win rate, and references or outputs
    matched by instruction would silently pair with the wrong one. Suites that read user files call this on each
    file, so the message can name the file and not only the split built from it.
    """
    blank = next((i for i, x in enumerate(instructions) if not isinstance(x, str) or not x.strip()), None)
    if blank is not None:
        raise ConfigError(f"{where}: instruction {blank} is empty; every instruction must be non-empty text")
    if unique:
        repeated = [x for x, n in Counter(instructions).items() if n > 1]
        if repeated:
            raise ConfigError(f"{where}: instruction {repeated[0][:60]!r} appears more than once; "
                              "each evaluation instruction must be unique")
