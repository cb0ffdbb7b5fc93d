"""The tiny world's annotators: a noise-free gold judge and a noisy, length-biased training annotator.

They mirror AlpacaFarm's set-up: the evaluation annotator is the gold judge, while the labels that train the
reward model come from a simulated annotator with 25% label flips and, between outputs of equal gold quality, a
bias toward a superficial feature (length in words, which filler phrases inflate). Both are the shared annotators of :mod:`harness.suites.annotators`
with the tiny world's gold preference.
"""

from __future__ import annotations

from harness.suites.annotators import GoldJudge as _GoldJudge
from harness.suites.annotators import LengthBiasedAnnotator
from harness.suites.tiny.world import gold_preference


class GoldJudge(_GoldJudge):
    """Noise-free: prefers the output of higher gold quality (correctness first, then less filler); ties are TIE."""

    def __init__(self) -> None:
        super().__init__("tiny-gold", gold_preference)


class NoisyAnnotator(LengthBiasedAnnotator):
    """The training annotator: gold's choice, the longer output where gold ties, then noisy (see
    LengthBiasedAnnotator)."""

    def __init__(self, world_seed: int, flip_rate: float = 0.25, length_bias: float = 0.6) -> None:
        super().__init__("tiny-noisy", gold_preference, world_seed, flip_rate, length_bias)
        self.world_seed = world_seed
