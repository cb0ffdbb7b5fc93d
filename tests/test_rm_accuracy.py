"""Reward-model pair accuracy and drift, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from harness.core.rm_accuracy import (
    drift,
    length_rule,
    pair_credits,
    paired_accuracy_difference,
    pairwise_accuracy,
    prefer_shorter_credits,
)
from harness.core.types import Preference

FIRST, SECOND, TIE = Preference.FIRST, Preference.SECOND, Preference.TIE


def test_accuracy_on_hand_made_pairs_with_both_kinds_of_tie():
    scores_1 = [2.0, 0.1, 1.0, 3.0, 0.5, -1.0]
    scores_2 = [1.0, 0.4, 1.0, 0.0, 0.2, 4.0]
    preferences = [FIRST, SECOND, FIRST, SECOND, TIE, SECOND]
    # pair 1: prefers 1, 2.0 > 1.0             -> correct, 1
    # pair 2: prefers 2, 0.4 > 0.1             -> correct, 1
    # pair 3: prefers 1, 1.0 == 1.0 (RM tie)   -> half,    0.5
    # pair 4: prefers 2, 0.0 < 3.0             -> wrong,   0
    # pair 5: annotator tie                    -> left out
    # pair 6: prefers 2, 4.0 > -1.0            -> correct, 1
    # accuracy = 3.5 / 5 = 0.7; standard error = sqrt(0.7 * 0.3 / 5) = sqrt(0.042) = 0.204939...
    result = pairwise_accuracy(scores_1, scores_2, preferences)

    assert result["accuracy"] == pytest.approx(0.7)
    assert result["standard_error"] == pytest.approx(math.sqrt(0.042))
    assert (result["n"], result["n_annotator_ties"], result["n_rm_ties"]) == (5, 1, 1)
    assert result["higher_is_better"] is True


def test_an_rm_that_agrees_everywhere_is_perfect_and_a_reversed_one_always_wrong():
    # The gold judge prefers the longer output; the "RM" scores by length, or by minus length.
    lengths_1 = [3, 10, 7, 1]
    lengths_2 = [5, 2, 9, 4]
    preferences = [SECOND, FIRST, SECOND, SECOND]
    agreeing = pairwise_accuracy(lengths_1, lengths_2, preferences)
    reversed_ = pairwise_accuracy([-x for x in lengths_1], [-x for x in lengths_2], preferences)

    # 4/4 and 0/4 correct; a binomial standard error is 0 at either end.
    assert (agreeing["accuracy"], agreeing["standard_error"]) == (1.0, 0.0)
    assert (reversed_["accuracy"], reversed_["standard_error"]) == (0.0, 0.0)


def test_a_constant_rm_scores_exactly_chance():
    # Every pair is an RM tie, worth half: 3 * 0.5 / 3 = 0.5, neither better nor worse than a coin.
    result = pairwise_accuracy([0.3] * 3, [0.3] * 3, [FIRST, SECOND, FIRST])
    assert result["accuracy"] == 0.5 and result["n_rm_ties"] == 3


def test_only_annotator_ties_leave_nothing_to_score():
    result = pairwise_accuracy([1.0, 2.0], [2.0, 1.0], [TIE, TIE])
    assert result["n"] == 0 and result["n_annotator_ties"] == 2
    assert math.isnan(result["accuracy"]) and math.isnan(result["standard_error"])


@pytest.mark.parametrize(
    "scores_1, scores_2, preferences, message",
    [
        ([1.0], [2.0, 3.0], [FIRST], "one entry per pair"),
        ([1.0], [2.0], [0.0], "preferences must be 1"),
        ([math.nan], [2.0], [FIRST], "must not contain NaN"),
    ],
)
def test_bad_input_is_named(scores_1, scores_2, preferences, message):
    with pytest.raises(ValueError, match=message):
        pairwise_accuracy(scores_1, scores_2, preferences)


def at_step(step: int, accuracy: dict, **extra) -> dict:
    return {"step": step, **accuracy, **extra}


def test_drift_is_step0_minus_the_final_checkpoint_with_the_curve_in_step_order():
    # Checkpoints given out of order; step 0 (the SFT start) is 8/10 = 0.8, the final one (step 20) 3/5 = 0.6.
    curve = [
        at_step(20, pairwise_accuracy([1.0] * 3 + [-1.0] * 2, [0.0] * 5, [FIRST] * 5), kl=4.0),  # 3/5 = 0.6
        at_step(0, pairwise_accuracy([1.0] * 8 + [-1.0] * 2, [0.0] * 10, [FIRST] * 10), kl=0.0),  # 8/10 = 0.8
        at_step(10, pairwise_accuracy([1.0] * 7 + [-1.0] * 3, [0.0] * 10, [FIRST] * 10), kl=2.0),  # 7/10 = 0.7
    ]
    result = drift(curve)

    # rm_drift = 0.8 - 0.6 = 0.2. Standard error: step 0 sqrt(0.8*0.2/10) = sqrt(0.016),
    # final sqrt(0.6*0.4/5) = sqrt(0.048); independent samples add variances: sqrt(0.016 + 0.048) = sqrt(0.064).
    assert result["rm_drift"] == pytest.approx(0.2)
    assert result["standard_error"] == pytest.approx(math.sqrt(0.064))
    assert (result["step0_accuracy"], result["step0_standard_error"]) == (0.8, pytest.approx(math.sqrt(0.016)))
    assert (result["final_step"], result["final_onpolicy_accuracy"]) == (20, 0.6)
    assert result["final_standard_error"] == pytest.approx(math.sqrt(0.048))
    assert result["higher_is_better"] is False
    points = [(r["step"], r["accuracy"], r["n"], r["kl"]) for r in result["curve"]]
    assert points == [(0, 0.8, 10, 0.0), (10, 0.7, 10, 2.0), (20, 0.6, 5, 4.0)]
    assert [r["drift"] for r in result["curve"]] == pytest.approx([0.0, 0.1, 0.2])


def test_a_curve_of_the_start_alone_has_no_drift():
    start = pairwise_accuracy([1.0] * 3 + [-1.0] * 2, [0.0] * 5, [FIRST] * 5)
    result = drift([at_step(0, start)])
    assert result["rm_drift"] == 0.0 and result["standard_error"] == 0.0


def test_an_rm_that_stays_right_on_policy_has_no_drift():
    pairs = ([2.0, 0.0, 5.0], [1.0, 3.0, 4.0], [FIRST, SECOND, FIRST])  # all three ranked right
    result = drift([at_step(0, pairwise_accuracy(*pairs)), at_step(50, pairwise_accuracy(*pairs))])
    assert result["rm_drift"] == 0.0 and result["standard_error"] == 0.0


def test_pair_credits_count_rm_ties_half_and_skip_annotator_ties():
    credits = pair_credits([2.0, 0.0, 1.0, 5.0], [1.0, 3.0, 1.0, 4.0], [FIRST, FIRST, SECOND, TIE])
    assert credits == [1.0, 0.0, 0.5, None]


def test_paired_difference_of_two_reward_models_on_the_same_pairs_by_hand():
    # Per-pair differences (a - b): 1, 0, 0, -0.5, 1 (the annotator tie left out); mean 1.5 / 5 = 0.3.
    # Deviations 0.7, -0.3, -0.3, -0.8, 0.7: squares 0.49 + 0.09 + 0.09 + 0.64 + 0.49 = 1.8; variance 1.8 / 4 = 0.45;
    # standard error sqrt(0.45 / 5) = 0.3.
    a = [1.0, 1.0, 0.0, 0.5, 1.0, None]
    b = [0.0, 1.0, 0.0, 1.0, 0.0, None]
    result = paired_accuracy_difference(a, b)
    assert result["difference"] == pytest.approx(0.3) and result["standard_error"] == pytest.approx(0.3)
    assert result["n"] == 5
    with pytest.raises(ValueError, match="same judged pairs"):
        paired_accuracy_difference([1.0, None], [1.0, 0.0])


@pytest.mark.parametrize(
    "curve, message",
    [
        ([], "at least one checkpoint"),
        ([{"step": 0, "accuracy": 0.5}], "missing \\['standard_error'\\]"),
        ([{"step": 5, "accuracy": 0.5, "standard_error": 0.1}] * 2, "one record per step"),
    ],
)
def test_drift_rejects_a_malformed_curve(curve, message):
    with pytest.raises(ValueError, match=message):
        drift(curve)


def test_the_length_rule_by_hand():
    # words: 1 vs 3 (gold prefers the first: the shorter), 4 vs 2 (gold the first: the longer), 2 vs 2 (equal
    # lengths: half), a gold tie (left out)
    credits = prefer_shorter_credits(["a", "a b c d", "a b", "a"], ["a b c", "a b", "c d", "a b"],
                                     [Preference.FIRST, Preference.FIRST, Preference.SECOND, Preference.TIE])
    assert credits == [1.0, 0.0, 0.5, None]
    assert length_rule(0.5) == (0.5, "shorter")
    assert length_rule(0.25) == (0.75, "longer") and length_rule(0.8) == (0.8, "shorter")
