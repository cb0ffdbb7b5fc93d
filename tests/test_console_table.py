"""The console table and the RLP - PPO line: width, one precision rule, directions, intervals, hand-checked maths."""

from __future__ import annotations

import math

import pytest

from harness.console_table import COLUMNS, format_table
from harness.evals.mmlu import knowledge_label
from harness.stats import method_difference, paired_difference, t_half_width

T_975_2DF = 4.302652730  # Student t quantile 0.975 with 2 degrees of freedom (three seeds)


@pytest.fixture
def results_of(fixture_metrics):
    """``results_of(per_seed)``: a results.json with the given per-seed values (metrics and their standard errors,
    named as in conftest's run-dir fixture): means and intervals computed as the pipeline does."""
    from harness.pipeline import aggregate

    def build(per_seed: dict[str, dict[str, list[float]]]) -> dict:
        records = {m: [{"seed": s, **fixture_metrics(values, s)} for s in range(len(next(iter(values.values()))))]
                   for m, values in per_seed.items()}
        return aggregate("tiny", len(next(iter(records.values()))), records)

    return build


def test_paired_difference_by_hand_over_three_seeds():
    # per-seed differences 4, 6, 11: mean 7, sample sd sqrt(((-3)^2 + (-1)^2 + 4^2) / 2) = sqrt(13)
    rlp = {0: 34.0, 1: 40.0, 2: 51.0}
    ppo = {0: 30.0, 1: 34.0, 2: 40.0}
    difference = paired_difference(rlp, ppo)
    assert difference.estimate == pytest.approx(7.0)
    assert difference.error == pytest.approx(T_975_2DF * math.sqrt(13) / math.sqrt(3))  # 8.957
    assert difference.seeds == 3 and difference.is_interval


def test_pairing_cancels_what_a_seed_shares():
    # both methods move together from seed to seed: unpaired intervals are wide, the paired one is zero
    difference = paired_difference({0: 10.0, 1: 50.0}, {0: 8.0, 1: 48.0})
    assert difference.estimate == pytest.approx(2.0) and difference.error == pytest.approx(0.0)
    assert t_half_width([10.0, 50.0]) > 100


def test_one_seed_combines_the_two_standard_errors():
    difference = paired_difference({0: 30.0}, {0: 20.0}, {0: 3.0}, {0: 4.0})
    assert (difference.estimate, difference.error, difference.is_interval) == (10.0, 5.0, False)


def test_seeds_without_a_value_on_both_sides_are_left_out():
    assert paired_difference({0: 1.0}, {1: 2.0}) is None
    difference = paired_difference({0: 5.0, 1: math.nan, 2: 7.0}, {0: 1.0, 1: 2.0, 2: 1.0})
    assert difference.seeds == 2 and difference.estimate == pytest.approx(5.0)


def test_method_difference_reads_per_seed_values_and_standard_errors(results_of):
    results = results_of({"ppo": {"farm_win_rate": [20.0], "farm_standard_error": [4.0]},
                        "rlp_spg": {"farm_win_rate": [26.0], "farm_standard_error": [3.0]}})
    difference = method_difference(results, "rlp_spg", "ppo", "farm_win_rate")
    assert (difference.estimate, difference.error) == (6.0, 5.0)
    assert method_difference(results, "rlp_uml", "ppo", "farm_win_rate") is None


ALL_COLUMNS = ["farm_win_rate", "farm_standard_error", "bar_win_rate", "bar_standard_error", "knowledge_acc",
               "knowledge_stderr", "rm_acc_offline", "rm_acc_step0", "rm_acc_onpolicy", "rm_drift", "proxy_reward", "kl",
               "avg_length"]


def _wide_run(results_of, seeds: int) -> dict:
    """Four methods with long numbers in every column: the widest table a run can produce."""
    values = {"farm_win_rate": 43.958333, "farm_standard_error": 2.3185, "bar_win_rate": 15.41666,
              "bar_standard_error": 1.82, "knowledge_acc": 0.99583333, "knowledge_stderr": 0.0041666, "rm_acc_offline": 0.66,
              "rm_acc_step0": 0.66, "rm_acc_onpolicy": 0.2979448766, "rm_drift": 0.3620551234,
              "proxy_reward": -1234.0614, "kl": 1234.915336192, "avg_length": 1039.727}
    return results_of({m: {k: [v * (1 + 0.1 * s + 0.01 * i) for s in range(seeds)] for k, v in values.items()}
                     for i, m in enumerate(("sft", "ppo", "rlp_uml", "rlp_spg"))})


@pytest.mark.parametrize("seeds", [1, 3])
def test_table_fits_120_columns_and_ends_with_one_rlp_line_per_variant(results_of, seeds):
    lines = format_table(_wide_run(results_of, seeds)).splitlines()
    assert max(len(line) for line in lines) <= 120, "\n".join(lines)
    assert [line.split(",")[0] for line in lines[-2:]] == ["rlp_uml - ppo", "rlp_spg - ppo"]
    assert "farm_win_rate ↑" in lines[0] and "rm_drift ↓" in lines[0]


def test_one_precision_rule_and_the_interval_kind_said(results_of):
    one_seed = format_table(_wide_run(results_of, 1))
    # win rates to 0.1 point, accuracies to 0.001, with the standard error marked † for one seed
    assert "44.0 ± 2.3†" in one_seed and "0.996 ± 0.004†" in one_seed
    assert "± † one seed's standard error" in one_seed
    # 43.958 * (1.03 - 1.01) = 0.88; sqrt((2.3185 * 1.03)^2 + (2.3185 * 1.01)^2) = 3.34
    assert "rlp_spg - ppo, farm_win_rate: +0.9 ± 3.3 points (± one seed's standard error" in one_seed
    three = format_table(_wide_run(results_of, 3))
    assert "± 95% interval over 3 seeds" in three and "paired over 3 seeds" in three


def test_a_run_without_ppo_says_so_instead_of_a_number(results_of):
    results = results_of({"rlp_spg": {"farm_win_rate": [30.0], "farm_standard_error": [3.0]}})
    assert format_table(results).splitlines()[-1] == ("rlp_spg - ppo, farm_win_rate: not available (ppo is not in "
                                                      "this run; add it to --methods)")


def test_directions_match_the_leaderboard(results_of, metric_specs):
    header = format_table(_wide_run(results_of, 1)).splitlines()[0].split("  ")
    names = [cell.strip() for cell in header if cell.strip()]
    shown = [knowledge_label(_wide_run(results_of, 1)) if c == "knowledge_acc" else c for c in COLUMNS]  # as format_table names
    for name in names[1:]:
        label, _, arrow = name.partition(" ")
        column = COLUMNS[shown.index(label)]
        assert arrow == {True: "↑", False: "↓", None: ""}[metric_specs[column].higher_is_better], name
