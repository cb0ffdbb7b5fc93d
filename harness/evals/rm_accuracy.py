"""Reward-model accuracy on labelled pairs, and its drift while PPO moves the policy.

The paper's premise (Lang et al., NAACL 2024) is that a reward model trained on offline preference pairs grows
less accurate on the outputs of the policy PPO optimises against it. The drift metric makes that measurable:
the RM's accuracy on held-out offline pairs minus its accuracy on pairs of samples from PPO checkpoints, both
labelled by the gold annotator. These helpers are the pure arithmetic of that metric; scoring and labelling
happen elsewhere.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from harness.suites.base import Preference

_VALID_PREFERENCES = (Preference.FIRST, Preference.SECOND, Preference.TIE)


def pairwise_accuracy(
    scores_1: Sequence[float], scores_2: Sequence[float], preferences: Sequence[float]
) -> dict:
    """How often a reward model ranks a pair the way the annotator did.

    A pair counts as correct when the RM scores the annotator's preferred output strictly higher. Pairs the
    annotator called a tie carry no ranking to agree with, so they are left out (``n_annotator_ties``). Pairs the
    RM scores exactly equal count as half correct (``n_rm_ties``): the RM expresses no preference, as good as a
    coin flip, and counting them as wrong would penalise a constant RM below chance.

    Args:
        scores_1: RM score of output_1 of each pair.
        scores_2: RM score of output_2 of each pair.
        preferences: The annotator's label per pair in alpaca_eval's encoding (:class:`Preference`):
            1 = output_1 preferred, 2 = output_2 preferred, 1.5 = tie.

    Returns:
        ``{"accuracy", "standard_error", "n", "n_annotator_ties", "n_rm_ties", "higher_is_better"}``. ``n`` is
        the number of pairs scored (annotator ties excluded); ``standard_error`` is the binomial
        ``sqrt(accuracy * (1 - accuracy) / n)``. With no scored pair, accuracy and standard error are NaN.

    Raises:
        ValueError: the three sequences differ in length, a score is NaN, or a preference is not 1, 1.5 or 2.
    """
    if not len(scores_1) == len(scores_2) == len(preferences):
        raise ValueError(
            f"scores_1, scores_2 and preferences must have one entry per pair; got lengths "
            f"{len(scores_1)}, {len(scores_2)}, {len(preferences)}"
        )
    credit = 0.0
    n = n_annotator_ties = n_rm_ties = 0
    for s1, s2, preference in zip(scores_1, scores_2, preferences):
        if math.isnan(s1) or math.isnan(s2):
            raise ValueError("scores_1 and scores_2 must not contain NaN")
        if preference not in _VALID_PREFERENCES:
            raise ValueError(f"preferences must be 1 (first), 2 (second) or 1.5 (tie); got {preference!r}")
        if preference == Preference.TIE:
            n_annotator_ties += 1
            continue
        n += 1
        if s1 == s2:
            n_rm_ties += 1
            credit += 0.5
        elif (s1 > s2) == (preference == Preference.FIRST):
            credit += 1.0
    accuracy = credit / n if n else math.nan
    return {
        "accuracy": accuracy,
        "standard_error": math.sqrt(accuracy * (1.0 - accuracy) / n) if n else math.nan,
        "n": n,
        "n_annotator_ties": n_annotator_ties,
        "n_rm_ties": n_rm_ties,
        "higher_is_better": True,
    }


def drift(offline_accuracy: float | Mapping, onpolicy_curve: Sequence[Mapping]) -> dict:
    """How far the RM's accuracy on the policy's own samples falls below its offline accuracy.

    Args:
        offline_accuracy: The RM's accuracy on held-out offline pairs (the ``val`` split): the
            :func:`pairwise_accuracy` record, or a bare number, taken as exact (its error then left out).
        onpolicy_curve: One record per PPO checkpoint, each :func:`pairwise_accuracy` on pairs of that
            checkpoint's samples plus its ``step``; further keys (proxy reward, KL, ...) are carried along.

    Returns:
        ``rm_drift`` = offline accuracy - on-policy accuracy at the last step (positive: the RM got worse where
        the policy went), its ``standard_error`` (the two pair sets are independent, so the variances add),
        ``offline_accuracy``, ``final_step``, ``final_onpolicy_accuracy``, ``higher_is_better`` (False) and
        ``curve``: the records in step order, each with its own ``drift``.

    Raises:
        ValueError: ``onpolicy_curve`` is empty, repeats a step, or a record lacks ``step`` or ``accuracy``.
    """
    if not onpolicy_curve:
        raise ValueError("onpolicy_curve must hold at least one checkpoint record")
    required = ("step", "accuracy", "standard_error")
    missing = sorted({key for record in onpolicy_curve for key in required if key not in record})
    if missing:
        raise ValueError(f"onpolicy_curve records need step, accuracy and standard_error; missing {missing}")
    steps = [record["step"] for record in onpolicy_curve]
    if len(set(steps)) != len(steps):
        raise ValueError(f"onpolicy_curve must hold one record per step; got steps {steps}")
    if isinstance(offline_accuracy, Mapping):
        offline, offline_error = offline_accuracy["accuracy"], offline_accuracy["standard_error"]
    else:
        offline, offline_error = float(offline_accuracy), 0.0
    curve = [
        {**record, "drift": offline - record["accuracy"]}
        for record in sorted(onpolicy_curve, key=lambda record: record["step"])
    ]
    final = curve[-1]
    return {
        "rm_drift": final["drift"],
        "standard_error": math.hypot(offline_error, final["standard_error"]),
        "offline_accuracy": offline,
        "final_step": final["step"],
        "final_onpolicy_accuracy": final["accuracy"],
        "higher_is_better": False,
        "curve": curve,
    }
