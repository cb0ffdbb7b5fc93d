"""What the methods that refine the reward model on the first PPO policy's samples share (RLP-UML, RLP-SPG and
their supervised counterpart, online RLHF): the figures that say how much the refinement weighed in the refined
reward model's data, and whether its pairs carry a length preference.

A reward model trained on D plus extra pairs learns from those pairs in proportion to their share of its data, so
the share is recorded beside the count; and a length bias that r carried over into the pairs (SPG's chosen output
is r's favourite) would show as chosen outputs that are longer more often than shorter. The refined model may also
spread its scores wider than r (easy synthetic pairs and noise-free labels give larger margins), which would weigh
the second PPO's scores more against its KL penalty: :func:`score_spread_ratio` measures that.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from harness.core.types import PPORun, Preference
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


def score_spread_ratio(first: PPORun, second: PPORun) -> float | None:
    """How far apart the refined reward model r' puts the initial policy's samples, relative to r: the ratio of the
    standard deviations the second and the first PPO standardised their scores by (ppo.reward_normalization_samples).

    Unnormalised, a ratio of k would have weighed the second PPO's scores k times more against its KL penalty, as a
    kl_coef k times smaller does. None where either PPO used raw scores.
    """
    if first.score_scale is None or second.score_scale is None:
        return None
    return second.score_scale.std / first.score_scale.std
