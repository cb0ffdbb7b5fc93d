"""The ``tiny`` suite: the embedded world behind the harness's Suite protocol."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from datasets import Dataset

from harness.suites.tiny.annotators import GoldJudge, NoisyAnnotator
from harness.suites.tiny.config import TinyWorldConfig
from harness.suites.tiny.pretrain import ensure_base_model
from harness.suites.tiny.world import build_splits, canonical_answer

KNOWLEDGE_DIR = Path(__file__).parent / "knowledge"


class TinySuite:
    """A synthetic instruction world, its annotators and its ~1 M-parameter base model; offline and CPU-sized.

    Deterministic for ``config.world_seed``; see :mod:`harness.suites.tiny.world` for what the world contains.
    """

    name = "tiny"
    eval_sets = ("farm", "bar")
    # Preference and val pairs are two samples of the SFT policy per instruction, labelled during the run.
    pairs_from_policy = True
    knowledge_chat = True  # fact questions asked as the policy is asked: recall, not recognition

    def __init__(self, config: TinyWorldConfig | None = None) -> None:
        self.config = config or TinyWorldConfig()

    def splits(self) -> dict[str, Dataset]:
        """sft, preference, unlabeled, val, farm and bar, built once per suite object."""
        return {name: Dataset.from_list(records) for name, records in self._records.items()}

    @cached_property
    def _records(self) -> dict[str, list[dict]]:
        return build_splits(self.config)

    @property
    def pair_temperature(self) -> float:
        """The temperature of the SFT samples that make up the preference and val pairs."""
        return self.config.pair_temperature

    def training_annotator(self) -> NoisyAnnotator:
        """Gold's labels with 25% flips and a length bias between equally good outputs, as AlpacaFarm's."""
        return NoisyAnnotator(self.config.world_seed, self.config.flip_rate, self.config.length_bias)

    def gold_annotator(self) -> GoldJudge:
        """The noise-free gold judge."""
        return GoldJudge()

    def canonical_answer(self, instruction: str, output: str) -> str:
        """The output's answer without filler, case, punctuation or spacing (the instruction is not needed here)."""
        return canonical_answer(output)

    def base_model(self, cache_dir: Path) -> Path:
        """The pretrained base model under ``cache_dir``, built on first use (about four minutes on 2 CPU cores)."""
        return ensure_base_model(self.config.base_model, Path(cache_dir))

    def knowledge_task(self) -> tuple[Path, str]:
        """The chat-format recall task on the world's facts; its YAML loads the jsonl beside it by path."""
        return KNOWLEDGE_DIR, "tiny_knowledge"
