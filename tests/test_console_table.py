"""The console table and its comparison lines: width, one precision rule, directions, ranking, the stored
comparisons printed as stored."""

from __future__ import annotations

import pytest

from harness.console_table import COLUMNS, format_table
from harness.evals.paired import comparison_pairs


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


ALL_COLUMNS = ["farm_win_rate", "farm_standard_error", "bar_win_rate", "bar_standard_error", "knowledge_acc",
               "knowledge_stderr", "rm_acc_offline", "rm_acc_step0", "rm_acc_onpolicy", "rm_drift", "proxy_reward", "kl",
               "avg_length"]


def _comparison(method: str, baseline: str, difference: float) -> dict:
    """A stored comparison record as harness.evals.paired.compare_methods writes it (points)."""
    return {"method": method, "baseline": baseline, "eval_set": "farm", "metric": "farm_win_rate",
            "difference": difference, "standard_error": 2.0, "half_width": 4.0, "low": difference - 4.0,
            "high": difference + 4.0, "mde": 5.6, "df": 30.0, "per_seed": [difference], "n_seeds": 1,
            "n_items": 30, "verdict": "better" if difference > 4.0 else "unresolved"}


def _wide_run(results_of, seeds: int) -> dict:
    """Four methods with long numbers in every column: the widest table a run can produce."""
    values = {"farm_win_rate": 43.958333, "farm_standard_error": 2.3185, "bar_win_rate": 15.41666,
              "bar_standard_error": 1.82, "knowledge_acc": 0.99583333, "knowledge_stderr": 0.0041666, "rm_acc_offline": 0.66,
              "rm_acc_step0": 0.66, "rm_acc_onpolicy": 0.2979448766, "rm_drift": 0.3620551234,
              "proxy_reward": -1234.0614, "kl": 1234.915336192, "avg_length": 1039.727}
    results = results_of({m: {k: [v * (1 + 0.1 * s + 0.01 * i) for s in range(seeds)] for k, v in values.items()}
                          for i, m in enumerate(("sft", "ppo", "rlp_uml", "rlp_spg"))})
    results["comparisons"] = [_comparison(m, b, 1.0 + i) for i, (m, b) in
                              enumerate(comparison_pairs(list(results["methods"])))]
    return results


@pytest.mark.parametrize("seeds", [1, 3])
def test_table_fits_120_columns_and_ends_with_every_method_against_ppo_and_sft(results_of, seeds):
    lines = format_table(_wide_run(results_of, seeds)).splitlines()
    assert max(len(line) for line in lines) <= 120, "\n".join(lines)
    assert [line.split(",")[0] for line in lines[-5:]] == ["ppo - sft", "rlp_uml - ppo", "rlp_spg - ppo",
                                                          "rlp_uml - sft", "rlp_spg - sft"]
    assert "farm_win_rate ↑" in lines[0] and "rm_drift ↓" in lines[0]


def test_comparison_lines_print_the_stored_interval_mde_and_verdict(results_of):
    lines = format_table(_wide_run(results_of, 3)).splitlines()
    assert "ppo - sft, farm_win_rate: +1.0 [-3.0, +5.0], MDE 5.6 points: unresolved" in lines
    assert "rlp_spg - sft, farm_win_rate: +5.0 [+1.0, +9.0], MDE 5.6 points: better" in lines


def test_rows_are_ranked_by_the_headline_win_rate(results_of):
    # the fixture's win rates grow with the method's index: rlp_spg highest, sft lowest
    lines = format_table(_wide_run(results_of, 1)).splitlines()
    assert [line.split()[0] for line in lines[2:6]] == ["rlp_spg", "rlp_uml", "ppo", "sft"]


def test_one_precision_rule_and_one_interval_convention(results_of):
    one_seed = " ".join(format_table(_wide_run(results_of, 1)).split())
    # win rates to 0.1 point, accuracies to 0.001; one seed: ± 1.96 x the standard error over items, marked †:
    # 1.96 x 2.3185 = 4.54, 1.96 x 0.0041666 = 0.0082
    assert "44.0 ± 4.5†" in one_seed and "0.996 ± 0.008†" in one_seed
    assert "± and [low, high] are 95% intervals" in one_seed and "1.96 x its standard error" in one_seed


def test_a_results_json_without_comparisons_says_why(results_of):
    results = results_of({"rlp_spg": {"farm_win_rate": [30.0], "farm_standard_error": [3.0]}})
    assert "this results.json predates them" in format_table(results)
    results["comparisons"] = []
    assert format_table(results).endswith("neither ppo nor sft to compare with (add them to --methods).")


def test_directions_match_the_leaderboard(results_of, metric_specs):
    header = format_table(_wide_run(results_of, 1)).splitlines()[0].split("  ")
    names = [cell.strip() for cell in header if cell.strip()]
    for name in names[1:]:
        label, _, arrow = name.partition(" ")
        assert label in COLUMNS, name  # every metric under its one name, knowledge_acc included
        assert arrow == {True: "↑", False: "↓", None: ""}[metric_specs[label].higher_is_better], name
