"""Simulated annotators shared by the synthetic suites: a gold judge and a noisy, length-biased annotator.

As in AlpacaFarm, evaluation uses a noise-free gold judge, while the labels that train the reward model come from a
simulated annotator that flips 25% of its labels and, between outputs gold finds equally good, favours the longer. Each suite supplies only its own gold
preference function ``gold(instruction, output_1, output_2) -> Preference``.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Callable, Sequence

from harness.core.types import Preference

if TYPE_CHECKING:
    from harness.suites.base import Annotator

GoldPreference = Callable[[str, str, str], float]


def stable_seed(*parts: object) -> int:
    """A seed derived from the parts' text, the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def check_lengths(instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]) -> None:
    if not len(instructions) == len(outputs_1) == len(outputs_2):
        raise ValueError(
            "instructions, outputs_1 and outputs_2 must have the same length, got "
            f"{len(instructions)}, {len(outputs_1)}, {len(outputs_2)}"
        )


def labelled_pairs(
    annotator: Annotator, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
) -> list[dict]:
    """Preference-schema rows: each pair of outputs with the annotator's label (a :class:`Preference` value)."""
    labels = annotator.annotate(instructions, outputs_1, outputs_2)
    return [{"instruction": x, "output_1": o1, "output_2": o2, "preference": float(label)}
            for x, o1, o2, label in zip(instructions, outputs_1, outputs_2, labels)]


class _ItemAnnotator:
    """An annotator that labels each item on its own: :meth:`annotate` checks the batch and asks :meth:`label`."""

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """Returns a :class:`Preference` value per item (see the class for which ones).

        Raises:
            ValueError: if the sequences differ in length, or ``gold`` rejects an instruction.
        """
        check_lengths(instructions, outputs_1, outputs_2)
        return [self.label(x, o1, o2) for x, o1, o2 in zip(instructions, outputs_1, outputs_2)]

    def label(self, instruction: str, output_1: str, output_2: str) -> float:
        raise NotImplementedError


class GoldJudge(_ItemAnnotator):
    """Noise-free: the suite's gold preference per item (FIRST, SECOND, or TIE)."""

    def __init__(self, name: str, gold: GoldPreference) -> None:
        self.name = name
        self.gold = gold

    def label(self, instruction: str, output_1: str, output_2: str) -> float:
        return self.gold(instruction, output_1, output_2)


class LengthBiasedAnnotator(_ItemAnnotator):
    """A simulated training annotator as AlpacaFarm's: the gold choice, a length bias only where gold sees no
    difference, then random flips.

    Per item: the gold choice; where gold calls a tie, the output with more words with probability
    ``length_bias`` (otherwise, or when both have as many words, a coin flip); then the label is flipped with
    probability ``flip_rate``. It never answers TIE. So on pairs that gold ranks it agrees with gold with
    probability ``1 - flip_rate`` (0.75), and its superficial bias never rewards what gold punishes: a reward model
    that learns "longer is better" from it learns a preference that is harmless where it was taught and wrong only
    where the model extrapolates it, which is how over-optimisation arises.

    The randomness is seeded from the annotator's name, ``seed`` and the item's text, so labelling the same pair
    twice gives the same label, in any batch and any order.

    Args:
        name: the annotator's name; part of the seed, so two annotators of different names disagree freely.
        gold: the noise-free preference ``gold(instruction, output_1, output_2)``.
        seed: the world seed.
        flip_rate: probability of flipping the label (AlpacaFarm: 0.25).
        length_bias: where gold calls a tie, the probability of preferring the longer output.

    Raises:
        ValueError: if ``flip_rate`` or ``length_bias`` is not a probability.
    """

    def __init__(self, name: str, gold: GoldPreference, seed: int, flip_rate: float = 0.25,
                 length_bias: float = 0.6) -> None:
        for field_name, value in (("flip_rate", flip_rate), ("length_bias", length_bias)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{type(self).__name__}.{field_name} must be a probability in [0, 1], got {value!r}")
        self.name = name
        self.gold = gold
        self.seed = seed
        self.flip_rate = flip_rate
        self.length_bias = length_bias

    def label(self, instruction: str, output_1: str, output_2: str) -> float:
        """Preference.FIRST or Preference.SECOND, never TIE."""
        rng = random.Random(stable_seed(self.name, self.seed, instruction, output_1, output_2))
        by_length, coin, flip = rng.random() < self.length_bias, rng.random() < 0.5, rng.random() < self.flip_rate
        choice = self.gold(instruction, output_1, output_2)
        if choice == Preference.TIE:
            words_1, words_2 = len(output_1.split()), len(output_2.split())
            longer_first = words_1 > words_2 if by_length and words_1 != words_2 else coin
            choice = Preference.FIRST if longer_first else Preference.SECOND
        if flip:
            choice = Preference.SECOND if choice == Preference.FIRST else Preference.FIRST
        return choice
