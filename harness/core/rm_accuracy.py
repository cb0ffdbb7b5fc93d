"""Reward-model accuracy on labelled pairs, and its drift while PPO moves the policy.

The paper's premise (Lang et al., NAACL 2024) is that a reward model trained on offline preference pairs grows
less accurate on the outputs of the policy PPO optimises against it. The drift metric makes that measurable:
the RM's accuracy on pairs of samples of the policy PPO starts from (step 0) minus its accuracy on pairs of samples
of the final PPO checkpoint, both labelled by the gold annotator. These helpers are the pure arithmetic of that
metric; scoring and labelling happen elsewhere. They sit in the core because two layers use them: the reward stage
(:mod:`harness.context`) measures its held-out accuracy, and the evaluations measure drift.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from harness.core.metrics import Metric, MetricSpec
from harness.core.types import Preference

_VALID_PREFERENCES = (Preference.FIRST, Preference.SECOND, Preference.TIE)

# A reward model's pairwise accuracy, and its drift: the fall of that accuracy, so lower is better.
ACCURACY = MetricSpec(higher_is_better=True, unit="fraction", low=0.0, high=1.0)
DRIFT = MetricSpec(higher_is_better=False, unit="fraction", low=-1.0, high=1.0)


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
    return credit_accuracy(pair_credits(scores_1, scores_2, preferences))


def credit_accuracy(credits: Sequence[float | None]) -> dict:
    """:func:`pairwise_accuracy`'s record from :func:`pair_credits` (None: an annotator tie, left out)."""
    scored = [c for c in credits if c is not None]
    n, credit = len(scored), sum(scored)
    n_annotator_ties = len(credits) - n
    n_rm_ties = sum(c == 0.5 for c in scored)
    accuracy = credit / n if n else math.nan
    return {
        "accuracy": accuracy,
        "standard_error": math.sqrt(accuracy * (1.0 - accuracy) / n) if n else math.nan,
        "n": n,
        "n_annotator_ties": n_annotator_ties,
        "n_rm_ties": n_rm_ties,
        "higher_is_better": ACCURACY.higher_is_better,
    }


def accuracy_metric(accuracy: Mapping | None) -> Metric:
    """A :func:`pairwise_accuracy` record as a metric with its standard error and pairs scored; NaN without one."""
    if accuracy is None:
        return Metric(math.nan, ACCURACY)
    return Metric(accuracy["accuracy"], ACCURACY, accuracy["standard_error"], accuracy["n"])


def pair_credits(
    scores_1: Sequence[float], scores_2: Sequence[float], preferences: Sequence[float]
) -> list[float | None]:
    """Per pair: 1 if the RM ranks it as the annotator did, 0 if the other way, 0.5 for an RM tie, None for an
    annotator tie (no ranking to agree with). :func:`pairwise_accuracy` explains the rules.

    Raises:
        ValueError: the three sequences differ in length, a score is NaN, or a preference is not 1, 1.5 or 2.
    """
    if not len(scores_1) == len(scores_2) == len(preferences):
        raise ValueError(
            f"scores_1, scores_2 and preferences must have one entry per pair; got lengths "
            f"{len(scores_1)}, {len(scores_2)}, {len(preferences)}"
        )
    credits: list[float | None] = []
    for s1, s2, preference in zip(scores_1, scores_2, preferences):
        if math.isnan(s1) or math.isnan(s2):
            raise ValueError("scores_1 and scores_2 must not contain NaN")
        if preference not in _VALID_PREFERENCES:
            raise ValueError(f"preferences must be 1 (first), 2 (second) or 1.5 (tie); got {preference!r}")
        if preference == Preference.TIE:
            credits.append(None)
        elif s1 == s2:
            credits.append(0.5)
        else:
            credits.append(1.0 if (s1 > s2) == (preference == Preference.FIRST) else 0.0)
    return credits


def prefer_shorter_credits(
    outputs_1: Sequence[str], outputs_2: Sequence[str], preferences: Sequence[float]
) -> list[float | None]:
    """:func:`pair_credits` of the length rule "prefer the output with fewer words", a reward model that reads
    length alone: the baseline a learnt reward model must beat before it can be said to judge quality.

    Its opposite, "prefer the longer", earns 1 - credit on every judged pair (equal lengths: 0.5 either way), so
    this one record gives both rules' accuracies (see :func:`length_rule`).
    """
    return pair_credits([-len(o.split()) for o in outputs_1], [-len(o.split()) for o in outputs_2], preferences)


def length_rule(prefer_shorter_accuracy: float) -> tuple[float, str]:
    """The better length rule's accuracy and its name ("shorter" or "longer") from "prefer the shorter"'s
    accuracy on some pairs."""
    if prefer_shorter_accuracy >= 0.5 or math.isnan(prefer_shorter_accuracy):
        return prefer_shorter_accuracy, "shorter"
    return 1.0 - prefer_shorter_accuracy, "longer"


def paired_accuracy_difference(credits_a: Sequence[float | None], credits_b: Sequence[float | None]) -> dict:
    """Accuracy of reward model A minus that of B on the same judged pairs, with the paired standard error.

    Both models are scored on the same pairs, so the per-pair differences carry the comparison: their mean is the
    difference of the accuracies and ``sd(differences) / sqrt(n)`` its standard error, much smaller than the two
    accuracies' errors combined, because the pairs both find hard (or easy) cancel.

    Args:
        credits_a: :func:`pair_credits` of model A.
        credits_b: :func:`pair_credits` of model B on the same pairs (None at the same annotator ties).

    Returns:
        ``{"difference", "standard_error", "n"}``; NaN with no pair, standard error NaN with one.

    Raises:
        ValueError: the two lists differ in length or in where the annotator ties are.
    """
    if len(credits_a) != len(credits_b) or any((a is None) != (b is None) for a, b in zip(credits_a, credits_b)):
        raise ValueError("credits_a and credits_b must come from the same judged pairs")
    differences = [a - b for a, b in zip(credits_a, credits_b) if a is not None]
    n = len(differences)
    mean = sum(differences) / n if n else math.nan
    if n < 2:
        return {"difference": mean, "standard_error": math.nan, "n": n}
    variance = sum((d - mean) ** 2 for d in differences) / (n - 1)
    return {"difference": mean, "standard_error": math.sqrt(variance / n), "n": n}


def drift(onpolicy_curve: Sequence[Mapping]) -> dict:
    """How far the RM's accuracy on the policy's own samples falls while PPO moves the policy.

    Both ends are measured the same way, on judged pairs of fresh samples of a policy: at step 0 (the SFT policy PPO
    starts from) and at the final checkpoint. Comparing against the RM's offline accuracy (held-out pairs from
    another distribution) instead would charge PPO with the gap between that distribution and the policy's, which
    is there before PPO takes a step.

    Args:
        onpolicy_curve: One record per checkpoint, each :func:`pairwise_accuracy` on pairs of that checkpoint's
            samples plus its ``step``; the lowest step is the start (step 0). Further keys (proxy reward, KL, ...)
            are carried along.

    Returns:
        ``rm_drift`` = accuracy at the start - accuracy at the last step (positive: the RM got worse where the
        policy went), its ``standard_error`` (the two pair sets are sampled independently, so the variances add),
        ``step0_accuracy``, ``step0_standard_error``, ``final_step``, ``final_onpolicy_accuracy``,
        ``final_standard_error``, ``higher_is_better`` (False) and ``curve``: the records in step order, each with
        its own ``drift`` from the start.

    Raises:
        ValueError: ``onpolicy_curve`` is empty, repeats a step, or a record lacks ``step``, ``accuracy`` or
            ``standard_error``.
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
    ordered = sorted(onpolicy_curve, key=lambda record: record["step"])
    start, final = ordered[0], ordered[-1]
    curve = [{**record, "drift": start["accuracy"] - record["accuracy"]} for record in ordered]
    return {
        "rm_drift": curve[-1]["drift"],
        "standard_error": math.hypot(start["standard_error"], final["standard_error"]) if len(curve) > 1 else 0.0,
        "step0_accuracy": start["accuracy"],
        "step0_standard_error": start["standard_error"],
        "final_step": final["step"],
        "final_onpolicy_accuracy": final["accuracy"],
        "final_standard_error": final["standard_error"],
        "higher_is_better": DRIFT.higher_is_better,
        "curve": curve,
    }


def drift_metrics(summary: Mapping | None) -> dict[str, Metric]:
    """:func:`drift`'s summary as three metrics: the accuracy at step 0 and at the final checkpoint, each with its
    pairs, and the drift between them; all NaN without a summary (a policy PPO did not train)."""
    if summary is None:
        return {"step0": Metric(math.nan, ACCURACY), "final": Metric(math.nan, ACCURACY),
                "drift": Metric(math.nan, DRIFT)}
    start, final = summary["curve"][0], summary["curve"][-1]
    return {
        "step0": Metric(summary["step0_accuracy"], ACCURACY, summary["step0_standard_error"], start.get("n")),
        "final": Metric(summary["final_onpolicy_accuracy"], ACCURACY, summary["final_standard_error"], final.get("n")),
        "drift": Metric(summary["rm_drift"], DRIFT, summary["standard_error"]),
    }
