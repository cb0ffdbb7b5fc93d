"""The verifiable suite's annotators: the gold judge, and the noisy, length-biased training annotator.

As in AlpacaFarm, evaluation uses the noise-free gold judge (constraints verified by program), while the labels
that train the reward model come from a simulated annotator that flips 25% of its labels and favours longer
outputs. Both are the shared annotators of :mod:`harness.suites.annotators` with this suite's gold preference.
"""

from __future__ import annotations

from harness.suites.annotators import GoldJudge as _GoldJudge
from harness.suites.annotators import LengthBiasedAnnotator
from harness.suites.verifiable.world import gold_preference


class GoldJudge(_GoldJudge):
    """Noise-free: on topic first, then the larger share of constraints met, then less filler; else TIE."""

    def __init__(self) -> None:
        super().__init__("verifiable-gold", gold_preference)


def training_annotator(seed: int, flip_rate: float, length_bias: float) -> LengthBiasedAnnotator:
    """The verifiable suite's training annotator (name ``verifiable-noisy``)."""
    return LengthBiasedAnnotator("verifiable-noisy", gold_preference, seed, flip_rate, length_bias)
