"""The paired RLP - PPO difference over seeds and items (harness/evals/paired.py), worked by hand."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t

from harness.evals.paired import paired_difference


def test_two_seeds_three_items_by_hand():
    # D = a - b = [[1, 0, 1], [0, 0, 1]]: grand mean 0.5, seed means 2/3 and 1/3, item means 0.5, 0, 1.
    # MS_seed = 3 * ((1/6)^2 + (1/6)^2) / 1 = 1/6; MS_item = 2 * (0 + 1/4 + 1/4) / 2 = 1/2;
    # residuals +-1/3, +-1/6 (four of them): sum of squares 2/9 + 4/36 = 1/3, MS_residual = (1/3) / 2 = 1/6.
    # Var = (1/6 + 1/2 - 1/6) / 6 = 1/12; df = (1/2)^2 / ((1/6)^2 / 1 + (1/2)^2 / 2 + (1/6)^2 / 2) = 1.5.
    a = [[1.0, 0.5, 1.0], [0.0, 0.5, 1.0]]
    b = [[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]
    result = paired_difference(a, b)
    assert result["difference"] == pytest.approx(0.5)
    assert result["standard_error"] == pytest.approx(math.sqrt(1 / 12))
    assert result["df"] == pytest.approx(1.5)
    assert result["half_width"] == pytest.approx(t.ppf(0.975, 1.5) * math.sqrt(1 / 12))
    assert (result["low"], result["high"]) == (pytest.approx(0.5 - result["half_width"]),
                                               pytest.approx(0.5 + result["half_width"]))
    assert (result["n_seeds"], result["n_items"]) == (2, 3)


def test_one_seed_is_the_paired_t_interval_over_items():
    # D = 1, 0, 1, 0: mean 0.5, sample variance 4 * 0.25 / 3 = 1/3, Var(mean) = 1/12, df 3: t = 3.182.
    result = paired_difference([[1.0, 0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]])
    assert result["standard_error"] == pytest.approx(math.sqrt(1 / 12)) and result["df"] == 3
    assert result["half_width"] == pytest.approx(3.182446 * math.sqrt(1 / 12))


def test_identical_differences_have_no_spread():
    result = paired_difference([[1.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]])
    assert result["difference"] == 0.5 and result["standard_error"] == 0.0 and result["half_width"] == 0.0


def test_pairing_removes_item_difficulty_both_methods_share():
    # Items 0-1 are easy for both methods, 2-3 hard for both; A is 0.1 better on average in each seed.
    # D = [[.1, .1, .1, .1], [.1, .1, 0, .2]]: seed means equal (MS_seed 0), item means .1, .1, .05, .15
    # (MS_item = 2 * 2 * .05^2 / 3 = 1/300), residuals +-.05 in four cells (MS_residual = .01 / 3 = 1/300): no
    # effect beyond noise, so Var = (1/300) / 8 and df = 3.
    b = [[0.9, 0.9, 0.1, 0.1], [0.9, 0.8, 0.1, 0.0]]
    a = [[1.0, 1.0, 0.2, 0.2], [1.0, 0.9, 0.1, 0.2]]
    paired = paired_difference(a, b)
    assert paired["difference"] == pytest.approx(0.1) and paired["df"] == 3
    assert paired["standard_error"] == pytest.approx(math.sqrt(1 / 2400)) and paired["low"] > 0
    # the two win rates' own standard errors over these items are about 0.15 each: pairing is what resolves 0.1


def test_noise_without_seed_or_item_effects_falls_back_to_the_residual_variance():
    # Seed means 0.5 and 0.5, item means 0.5 and 0.5: MS_seed = MS_item = 0; residuals +-0.5, MS_residual = 1.
    # Var = 1 / 4, df = 1.
    result = paired_difference([[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]])
    assert result["standard_error"] == pytest.approx(0.5) and result["df"] == 1


@pytest.mark.parametrize(("a", "b", "message"), [
    ([[1.0, 0.0]], [[1.0]], "seeds x items"),
    ([[1.0, 0.0], [1.0]], [[1.0, 0.0], [1.0]], "one equally long row"),
    ([[1.0, math.nan]], [[1.0, 0.0]], "finite"),
])
def test_bad_shapes_and_missing_verdicts_are_named(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b)


def test_minimum_detectable_effect_by_hand():
    from harness.evals.paired import minimum_detectable_effect

    # df 2 (three seeds): t_0.975 = 4.3027, t_0.80 = 1.0607; (4.3027 + 1.0607) x 2 = 10.727
    assert minimum_detectable_effect(2.0, 2) == pytest.approx((4.302653 + 1.060660) * 2.0, rel=1e-5)
    # the normal case: (1.960 + 0.842) x SE, as df grows
    assert minimum_detectable_effect(1.0, math.inf) == pytest.approx(1.959964 + 0.841621, rel=1e-5)
    assert minimum_detectable_effect(0.0, 5) == 0.0 and math.isnan(minimum_detectable_effect(1.0, math.nan))
    # paired_difference reports it from its own standard error and df: one seed, df 3, se sqrt(1/12)
    result = paired_difference([[1.0, 0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]])
    assert result["mde"] == pytest.approx((t.ppf(0.975, 3) + t.ppf(0.8, 3)) * math.sqrt(1 / 12))
    assert result["per_seed"] == [0.5]


def test_variance_components_and_the_projected_mde_by_hand():
    from harness.evals.paired import projected_mde, seeds_for_mde

    # The first test's D: MS_seed 1/6, MS_item 1/2, MS_residual 1/6, S = 2, I = 3 -> sigma_a^2 = (1/6 - 1/6) / 3 = 0,
    # sigma_b^2 = (1/2 - 1/6) / 2 = 1/6, sigma_e^2 = 1/6.
    result = paired_difference([[1.0, 0.5, 1.0], [0.0, 0.5, 1.0]], [[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]])
    assert result["components"] == pytest.approx({"seed": 0.0, "item": 1 / 6, "residual": 1 / 6})
    # projected on the design it came from, the expected mean squares are the observed ones: the run's own MDE
    assert projected_mde(result["components"], 2, 3) == pytest.approx(result["mde"])
    # seed variance 4 alone over 240 items: Var = 4 / S, df = S - 1, MDE = (t_0.975 + t_0.80) x 2 / sqrt(S):
    # S = 5 gives (2.776 + 0.941) x 0.894 = 3.325, S = 6 gives (2.571 + 0.920) x 0.816 = 2.851
    seed_only = {"seed": 4.0, "item": 0.0, "residual": 0.0}
    assert projected_mde(seed_only, 5, 240) == pytest.approx((t.ppf(0.975, 4) + t.ppf(0.8, 4)) * 2 / math.sqrt(5))
    assert seeds_for_mde(seed_only, 240, 3.0) == 6
    # an item term alone that keeps the MDE above the target whatever the seeds; no components with one seed
    assert seeds_for_mde({"seed": 0.0, "item": 2400.0, "residual": 0.0}, 240, 3.0) is None  # SE sqrt(10)
    assert seeds_for_mde(None, 240, 3.0) is None
    assert paired_difference([[1.0, 0.0, 1.0]], [[0.0, 0.0, 0.0]])["components"] is None


def test_verdict_words_and_the_pairs_compared():
    from harness.evals.paired import comparison_pairs, verdict

    assert (verdict(0.1, 3.0), verdict(-3.0, -0.1), verdict(-1.0, 1.0), verdict(math.nan, 1.0)) == (
        "better", "worse", "unresolved", "unmeasured")
    # PPO - SFT once (never SFT - PPO), then every other method against PPO, then against SFT
    assert comparison_pairs(["sft", "ppo", "dpo", "rlp_spg"]) == [
        ("ppo", "sft"), ("dpo", "ppo"), ("rlp_spg", "ppo"), ("dpo", "sft"), ("rlp_spg", "sft")]
    assert comparison_pairs(["dpo", "grpo"]) == []
    assert comparison_pairs(["ppo", "my_plugin"]) == [("my_plugin", "ppo")]  # any method, built in or not


def test_compare_methods_reads_the_run_s_verdicts(tmp_path, make_run_dir):
    import json

    from harness.evals.paired import compare_methods

    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    farm, bar = compare_methods(run_dir, results)
    # rlp_spg - ppo per item: 0, 1, 0, 0 in both seeds (conftest VERDICTS): +25 points, se 25, df 3
    assert (farm["method"], farm["baseline"], farm["eval_set"], farm["metric"]) == (
        "rlp_spg", "ppo", "farm", "farm_win_rate")
    assert farm["difference"] == pytest.approx(25.0) and farm["standard_error"] == pytest.approx(25.0)
    assert farm["half_width"] == pytest.approx(100 * 0.25 * t.ppf(0.975, 3))
    assert farm["mde"] == pytest.approx(100 * 0.25 * (t.ppf(0.975, 3) + t.ppf(0.8, 3)))
    assert farm["per_seed"] == [25.0, 25.0] and (farm["n_seeds"], farm["n_items"]) == (2, 4)
    assert farm["verdict"] == "unresolved" and bar["eval_set"] == "bar"
    # a stage dir gone: the comparison stays, unmeasured, with its reason
    for stage in (run_dir / "stages").glob("winrate_farm-ppo*"):
        for file in stage.iterdir():
            file.unlink()
        stage.rmdir()
    gone = compare_methods(run_dir, results)[0]
    assert gone["verdict"] == "unmeasured" and math.isnan(gone["difference"]) and "not found" in gone["reason"]
