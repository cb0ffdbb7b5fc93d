"""The tiny world's annotators: a noise-free gold judge and a noisy, length-biased training annotator.

They mirror AlpacaFarm's set-up: the evaluation annotator is the gold judge, while the labels that train the
reward model come from a simulated annotator with 25% label flips and a bias toward a superficial feature
(length in words, which filler phrases inflate).
"""

from __future__ import annotations

import random
from typing import Sequence

from harness.suites.base import Preference
from harness.suites.tiny.world import gold_preference, stable_seed


def _check_lengths(instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]) -> None:
    if not len(instructions) == len(outputs_1) == len(outputs_2):
        raise ValueError(
            "instructions, outputs_1 and outputs_2 must have the same length, got "
            f"{len(instructions)}, {len(outputs_1)}, {len(outputs_2)}"
        )


class GoldJudge:
    """Noise-free: prefers the output of higher gold quality (correctness first, then less filler); ties are TIE."""

    name = "tiny-gold"

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """Returns Preference.FIRST, SECOND or TIE per item.

        Raises:
            ValueError: if the sequences differ in length or an instruction is not from the tiny world.
        """
        _check_lengths(instructions, outputs_1, outputs_2)
        return [gold_preference(x, o1, o2) for x, o1, o2 in zip(instructions, outputs_1, outputs_2)]


class NoisyAnnotator:
    """The training annotator: biased toward longer outputs, then noisy.

    Per item: with probability ``length_bias`` it prefers the output with more words (the gold choice when both
    have as many), otherwise the gold choice (a gold tie is broken at random); then it flips its label with
    probability ``flip_rate``. It never answers TIE. The randomness is seeded from the item's text and
    ``world_seed``, so labelling the same pair twice gives the same label, in any batch and any order.

    On a pair where the longer output is gold-worse it therefore prefers the longer one with probability
    ``length_bias * (1 - flip_rate) + (1 - length_bias) * flip_rate``.
    """

    name = "tiny-noisy"

    def __init__(self, world_seed: int, flip_rate: float = 0.25, length_bias: float = 0.6) -> None:
        for field_name, value in (("flip_rate", flip_rate), ("length_bias", length_bias)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"NoisyAnnotator.{field_name} must be a probability in [0, 1], got {value!r}")
        self.world_seed = world_seed
        self.flip_rate = flip_rate
        self.length_bias = length_bias

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """Returns Preference.FIRST or Preference.SECOND per item.

        Raises:
            ValueError: if the sequences differ in length or an instruction is not from the tiny world.
        """
        _check_lengths(instructions, outputs_1, outputs_2)
        return [self._annotate_one(x, o1, o2) for x, o1, o2 in zip(instructions, outputs_1, outputs_2)]

    def _annotate_one(self, instruction: str, output_1: str, output_2: str) -> float:
        rng = random.Random(stable_seed(self.name, self.world_seed, instruction, output_1, output_2))
        by_length, tie_break, flip = rng.random() < self.length_bias, rng.random() < 0.5, rng.random() < self.flip_rate
        choice = gold_preference(instruction, output_1, output_2)
        words_1, words_2 = len(output_1.split()), len(output_2.split())
        if by_length and words_1 != words_2:
            choice = Preference.FIRST if words_1 > words_2 else Preference.SECOND
        elif choice == Preference.TIE:
            choice = Preference.FIRST if tie_break else Preference.SECOND
        if flip:
            choice = Preference.SECOND if choice == Preference.FIRST else Preference.FIRST
        return choice
