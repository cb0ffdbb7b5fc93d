"""alpaca_eval's own judges behind the harness's :class:`~harness.suites.base.Annotator` interface.

A judge here is one of the annotator configs that alpaca_eval ships (``alpaca_farm_greedy_gpt4``, the AlpacaFarm
pool ``alpaca_farm``, ``weighted_alpaca_eval_gpt4_turbo``, ... : a folder with ``configs.yaml`` and prompt files),
or a path to such a ``configs.yaml``. alpaca_eval's ``PairwiseAnnotator`` does the work (prompting, its own output
order randomisation, parsing, choosing a pool member per item); this module maps its verdicts to ours and checks,
before any training, that the API keys and packages the judge needs are there.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml
from alpaca_eval import constants as alpaca_eval_constants
from alpaca_eval.annotators import PairwiseAnnotator

from harness.core.types import Preference


class JudgeNotReadyError(ValueError):
    """A judge cannot run here: an API key or a Python package it needs is missing."""


@dataclass(frozen=True)
class _Needs:
    """What one of alpaca_eval's completion functions needs to run."""

    keys: tuple[tuple[str, ...], ...] = ()  # each entry: the variables that satisfy it, the first one to set
    packages: tuple[str, ...] = ()


# Read from alpaca_eval/decoders/ (0.6.6): which environment variables and packages each ``fn_completions`` uses.
# openai also takes a comma-separated OPENAI_API_KEYS, or keys in the client config file (see _missing_keys).
_NEEDS_BY_COMPLETION_FN = {
    "openai_completions": _Needs((("OPENAI_API_KEY", "OPENAI_API_KEYS"),), ("openai", "tiktoken")),
    "anthropic_completions": _Needs((("ANTHROPIC_API_KEY",),), ("anthropic",)),
    "google_completions": _Needs((("GOOGLE_API_KEY",),), ("google.generativeai",)),
    "cohere_completions": _Needs((("COHERE_API_KEY",),), ("cohere",)),
    "huggingface_api_completions": _Needs((("HUGGINGFACEHUB_API_TOKEN",),), ("huggingface_hub",)),
    "replicate_completions": _Needs((("REPLICATE_API_TOKEN",),), ("replicate",)),
    "jina_chat_completions": _Needs((("JINA_CHAT_API_KEY",),)),
    "bedrock_anthropic_completions": _Needs(packages=("boto3",)),  # boto3 finds AWS credentials itself
    "huggingface_local_completions": _Needs(packages=("peft", "accelerate", "transformers")),
    "vllm_local_completions": _Needs(packages=("vllm",)),
}


def available_configs() -> tuple[str, ...]:
    """Names of the annotator configs alpaca_eval ships (folders of its ``evaluators_configs`` with a configs.yaml)."""
    root = Path(alpaca_eval_constants.EVALUATORS_CONFIG_DIR)
    return tuple(sorted(folder.name for folder in root.iterdir() if (folder / "configs.yaml").is_file()))


def config_path(config: str | Path) -> Path:
    """The ``configs.yaml`` of a shipped config name, or of a path to a config folder or YAML file.

    Raises:
        ValueError: neither a shipped name nor an existing path; the message lists the shipped names.
    """
    shipped = Path(alpaca_eval_constants.EVALUATORS_CONFIG_DIR) / str(config) / "configs.yaml"
    path = Path(config)
    for candidate in (shipped, path / "configs.yaml", path):
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"alpaca_eval judge {str(config)!r} not found: give a path to a configs.yaml or one of the shipped "
        f"configs: {', '.join(available_configs())}"
    )


def required_api_keys(config: str | Path) -> tuple[str, ...]:
    """The environment variables the judge's completion functions need, e.g. ``("OPENAI_API_KEY",)``.

    Read from the config's YAML: every member of a pool counts. Local completion functions (huggingface_local,
    vllm_local) need none.
    """
    return tuple(sorted({names[0] for needs in _needs(config) for names in needs.keys}))


def _needs(config: str | Path) -> list[_Needs]:
    members = yaml.safe_load(config_path(config).read_text())
    # alpaca_eval's SingleAnnotator defaults fn_completions to openai_completions
    functions = [member.get("fn_completions", "openai_completions") for member in members.values()]
    return [_NEEDS_BY_COMPLETION_FN.get(function, _Needs()) for function in functions]


def _missing_keys(needs: _Needs) -> list[str]:
    openai_keys_in_file = Path(alpaca_eval_constants.OPENAI_CLIENT_CONFIG_PATH).is_file()
    return [
        names[0]
        for names in needs.keys
        if not any(os.environ.get(name) for name in names)
        and not (names[0] == "OPENAI_API_KEY" and openai_keys_in_file)
    ]


def _is_installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:  # the parent of a dotted name is missing
        return False


def from_alpaca_eval_preference(value: float | None) -> float:
    """One of alpaca_eval's verdicts as ours: 1/2/1.5 and weighted values kept, 0 (its old tie) -> TIE, None -> NaN."""
    if value is None or math.isnan(value):
        return math.nan
    return Preference.TIE if value == 0 else float(value)


class AlpacaEvalAnnotator:
    """One of alpaca_eval's annotator configs (one judge or a pool) as a harness annotator.

    Supported: every config alpaca_eval ships (see :func:`available_configs`) and paths to one's own
    ``configs.yaml``. API keys are read from the environment by alpaca_eval when it calls the API; this object only
    checks that they are set and never holds them, so they cannot reach a log, a repr or a saved config.

    Args:
        config: a shipped config name or a path to a ``configs.yaml`` (or its folder).
        seed: alpaca_eval's seed: its output order randomisation and the pool member chosen per item.
        caching_path: a JSON file where alpaca_eval keeps annotations across runs (paid API calls are not repeated);
            None keeps them in memory only, for the life of this object.
    """

    def __init__(self, config: str | Path, *, seed: int = 0, caching_path: Path | None = None):
        self.config_path = config_path(config)
        self.name = self.config_path.parent.name  # what alpaca_eval records in its "annotator" field
        self.seed = seed
        self.caching_path = caching_path
        self._pool: PairwiseAnnotator | None = None  # built on first use: building it imports the API clients

    def __repr__(self) -> str:
        return f"AlpacaEvalAnnotator({self.name!r}, seed={self.seed})"

    def check_ready(self) -> None:
        """Raises JudgeNotReadyError (one line) naming the judge and what it is missing, so a run fails at once.

        Raises:
            JudgeNotReadyError: a package the completion function imports is not installed, or an API key it needs
                is not set in the environment.
        """
        needs = _needs(self.config_path)
        packages = sorted({p for n in needs for p in n.packages if not _is_installed(p)})
        if packages:
            raise JudgeNotReadyError(
                f"judge {self.name!r} needs the Python package(s) {', '.join(packages)}: install them or pick "
                "another judge"
            )
        keys = sorted({key for n in needs for key in _missing_keys(n)})
        if keys:
            raise JudgeNotReadyError(
                f"judge {self.name!r} needs the environment variable(s) {', '.join(keys)}: set them before the run "
                "or pick another judge"
            )

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """One verdict per item: FIRST, SECOND, TIE, a weighted value in between, or NaN where the judge's answer
        could not be parsed.

        Raises:
            JudgeNotReadyError: see :meth:`check_ready`.
        """
        self.check_ready()
        if self._pool is None:
            self._pool = PairwiseAnnotator(
                annotators_config=str(self.config_path), seed=self.seed, caching_path=self.caching_path
            )
        rows = [
            {"instruction": instruction, "output_1": first, "output_2": second}
            for instruction, first, second in zip(instructions, outputs_1, outputs_2, strict=True)
        ]
        annotated = self._pool.annotate_pairs(rows)
        return [from_alpaca_eval_preference(row["preference"]) for row in annotated]
