"""What the methods that refine the reward model on the first PPO policy's samples share (RLP-UML, RLP-SPG and
their supervised counterpart, online RLHF): the figures that say how much the refinement weighed in the refined
reward model's data, and whether its pairs carry a length preference.

A reward model trained on D plus extra pairs learns from those pairs in proportion to their share of its data, so
the share is recorded beside the count; and a length bias that r carried over into the pairs (SPG's chosen output
is r's favourite) would show as chosen outputs that are longer more often than shorter.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from harness.core.types import Preference
from methods.base import RunContext


def share_of_reward_data(ctx: RunContext, n_extra: int) -> float:
    """The extra pairs' share of the refined reward model's training pairs: n_extra / (|D| + n_extra)."""
    total = len(ctx.labelled_pairs("preference")) + n_extra
    return n_extra / total if total else math.nan


def length_shares(pairs: Mapping[str, Sequence]) -> dict:
    """How often a pair's chosen output has more words than its rejected one, and how often fewer.

    Words, as the training annotator counts them when it breaks gold ties by length. The rest of the pairs have
    equal lengths. NaN for no pairs.

    Args:
        pairs: preference-schema columns (``output_1``, ``output_2``, ``preference``: FIRST or SECOND).

    Returns:
        ``{"chosen_longer_share", "chosen_shorter_share"}``.
    """
    longer = shorter = 0
    for first, second, preference in zip(pairs["output_1"], pairs["output_2"], pairs["preference"]):
        chosen, rejected = (first, second) if preference == Preference.FIRST else (second, first)
        difference = len(chosen.split()) - len(rejected.split())
        longer += difference > 0
        shorter += difference < 0
    n = len(pairs["preference"])
    return {"chosen_longer_share": longer / n if n else math.nan,
            "chosen_shorter_share": shorter / n if n else math.nan}
