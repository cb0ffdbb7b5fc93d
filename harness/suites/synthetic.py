"""What the two synthetic worlds (``tiny`` and ``verifiable``) share as suites: splits built once from a seeded
world, a noise-free gold judge, a noisy length-biased training annotator, and answers compared by their words."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, ClassVar

from datasets import Dataset

from harness.suites.annotators import GoldJudge, LengthBiasedAnnotator


class SyntheticSuite:
    """A world generated from ``config`` (a dataclass with ``world_seed``, ``flip_rate`` and ``length_bias``).

    A subclass names its world's pieces: ``gold_judge`` (the gold judge's class), ``noisy_annotator`` (builds the
    training annotator from the world seed, flip rate and length bias), ``answer_of`` (an output's canonical answer),
    ``kind_of`` (what decides gold between two outputs, optional) and :meth:`build_records` (the split records).
    """

    eval_sets = ("farm", "bar")
    gold_judge: ClassVar[type[GoldJudge]]
    noisy_annotator: ClassVar[Callable[[int, float, float], LengthBiasedAnnotator]]
    answer_of: ClassVar[Callable[[str], str]]
    kind_of: ClassVar[Callable[[str, str, str], str] | None] = None  # the world's pair_kind, where its gold can tell
    config: Any

    def build_records(self) -> dict[str, list[dict]]:
        """The records of every split, by split name."""
        raise NotImplementedError

    def splits(self) -> dict[str, Dataset]:
        """sft, preference, unlabeled, val, farm and bar, built once per suite object."""
        return {name: Dataset.from_list(records) for name, records in self._records.items()}

    @cached_property
    def _records(self) -> dict[str, list[dict]]:
        return self.build_records()

    def training_annotator(self) -> LengthBiasedAnnotator:
        """Gold's labels with ``config.flip_rate`` flips and a length bias between equally good outputs, as
        AlpacaFarm's simulated training annotators."""
        return type(self).noisy_annotator(self.config.world_seed, self.config.flip_rate, self.config.length_bias)

    def gold_annotator(self) -> GoldJudge:
        """The noise-free gold judge."""
        return self.gold_judge()

    def canonical_answer(self, instruction: str, output: str) -> str:
        """The output's answer without filler, format, case or punctuation (the instruction is not needed here)."""
        return type(self).answer_of(output)

    @property
    def pair_temperature(self) -> float:
        """The temperature of the SFT samples that make up the preference and val pairs (``pairs_from_policy``)."""
        return self.config.pair_temperature

    def pair_kind(self, instruction: str, output_1: str, output_2: str) -> str | None:
        """What separates two outputs in the world's gold (its ``kind_of``); None where the world cannot tell."""
        kind_of = type(self).kind_of
        return None if kind_of is None else kind_of(instruction, output_1, output_2)
