"""The report's sections (harness/report/verdict.py, overoptimisation.py, mechanism.py) on the fixture run of
test_report, whose numbers are chosen so every cell can be worked out by hand."""

from __future__ import annotations

import json

import pytest

from harness import results_json
from harness.evals.paired import paired_items
from harness.report import write_reports
from harness.report.mechanism import pooled_agreement
from harness.report.verdict import flags, headroom_lines, verdict_section


@pytest.fixture(scope="module")
def reports(tmp_path_factory, make_run_dir):
    run_dir = make_run_dir(tmp_path_factory.mktemp("sections"))
    markdown_path, html_path = write_reports(run_dir)
    return run_dir, markdown_path.read_text(), html_path.read_text()


def _rows(markdown: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines()
            if line.startswith(f"| `{first_cell}` |")]


def test_the_report_opens_with_the_verdict_from_the_stored_comparisons(reports):
    _, markdown, html = reports
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Verdict", "## Results", "## Paired comparisons"]
    assert html.index("<h2>Verdict</h2>") < html.index("<h2>Results</h2>") < html.index(
        "<h2>Paired comparisons</h2>")
    # Per item, rlp_spg - ppo = 0, 1 (the second item: spg wins, ppo loses), 0, 0 in both seeds: mean 0.25.
    # Seed means equal (MS_seed 0), no residual; item means 0, 1, 0, 0: MS_item = 2 * (3 * 0.0625 + 0.5625) / 3
    # = 0.5; Var = 0.5 / 8 = 0.0625, se 0.25; df = 0.25 / (0.25 / 3) = 3, t = 3.1824: +-0.7956; MDE (3.1824 +
    # 0.9785) x 0.25 = 1.040.
    assert "- rlp\\_spg - ppo, farm\\_win\\_rate: +25.0 \\[-54.6, +104.6\\], MDE 104.0 points: unresolved" in markdown
    assert "<li>rlp_spg - ppo, farm_win_rate: +25.0 [-54.6, +104.6], MDE 104.0 points: unresolved</li>" in html
    # Seeds for MDE 3: no seed variance, the item variance (0.5 - 0) / 2 = 0.25, i.e. 2500 points squared, over 4
    # items is a standard error of 25 points whatever the seeds: more than 100.
    farm, bar = [row for row in _rows(markdown, "rlp_spg") if len(row) == 9]
    assert farm == ["`rlp_spg`", "ppo", "farm", "+25.0 \\[-54.6, +104.6\\], MDE 104.0", "unresolved",
                    "+25.0 / +25.0", "2", "4", "over 100"]
    assert bar[2] == "bar" and bar[3] == farm[3]


def test_flags_name_below_chance_unstable_seeds_and_a_worse_refined_model(reports):
    run_dir, _, _ = reports
    results = json.loads((run_dir / "results.json").read_text())
    found = flags(results)
    # both methods' step-0 accuracies (0.45/0.47 and 0.40/0.42) are below 0.5; the fixture's seeds agree
    assert [f.split(":")[0] for f in found] == ["ppo", "rlp_spg"] and all("rm_acc_step0" in f for f in found)
    ppo = results["methods"]["ppo"]["metrics"]
    ppo["kl"]["values"] = [0.65, 2.46, 2.57]  # the SPG: 4.0x between the extremes
    ppo["farm_win_rate"]["values"] = [20.0, 40.0]  # a spread of 20 > 2 x 1.96 x 3.2 = 12.5
    for record in results["methods"]["rlp_spg"]["per_seed"]:
        record["details"]["reward_models_on_policy"]["refined_minus_original"]["difference"] = -0.04
    found = flags(results)
    assert "ppo: seeds unstable, KL per seed 0.65 / 2.46 / 2.57 (4.0x between the extremes)." in found
    assert any(f.startswith("ppo: seeds unstable, farm_win_rate per seed 20.0 / 40.0") for f in found)
    assert "rlp_spg: its refined reward model is less accurate than the original" in found[-1]


def _stored(method: str, baseline: str, difference: float, low: float) -> dict:
    return {"method": method, "baseline": baseline, "metric": "farm_win_rate", "eval_set": "farm",
            "difference": difference, "low": low, "high": 2 * difference - low, "mde": 3.0, "per_seed": [],
            "verdict": "better" if low > 0 else "unresolved"}


def test_the_positive_control_adds_the_headroom_and_each_variant_s_share():
    by_pair = {("online_rlhf", "ppo"): _stored("online_rlhf", "ppo", 10.0, 4.0),
               ("rlp_uml", "ppo"): _stored("rlp_uml", "ppo", 2.5, -1.0)}
    assert headroom_lines(by_pair, ["rlp_uml"]) == [
        "headroom: online_rlhf - ppo, farm_win_rate: +10.0 [+4.0, +16.0], MDE 3.0 points: better",
        "rlp_uml recovers 25% of the headroom (+2.5 of +10.0 points; point estimates)"]
    by_pair[("online_rlhf", "ppo")] = _stored("online_rlhf", "ppo", 1.0, -2.0)
    assert headroom_lines(by_pair, ["rlp_uml"])[1].startswith("No headroom resolved")
    assert headroom_lines({}, ["rlp_uml"]) == []  # no positive control in the run: no headroom line
    results = {"methods": {m: {"metrics": {}, "per_seed": []} for m in ("ppo", "online_rlhf", "rlp_uml")},
               "comparisons": [_stored("online_rlhf", "ppo", 10.0, 4.0), _stored("rlp_uml", "ppo", 2.5, -1.0)]}
    lines = verdict_section(results).blocks[0].items
    assert lines[0].startswith("rlp_uml - ppo") and lines[1].startswith("headroom: online_rlhf - ppo")
    assert len(lines) == 3  # the positive control is not listed again among the other methods
    by_pair[("online_rlhf_gold", "ppo")] = _stored("online_rlhf_gold", "ppo", 4.0, 1.0)
    assert headroom_lines(by_pair, [])[0] == ("ceiling (gold labels): online_rlhf_gold - ppo, farm_win_rate: +4.0 "
                                              "[+1.0, +7.0], MDE 3.0 points: better")
    assert headroom_lines({("online_rlhf_gold", "ppo"): by_pair[("online_rlhf_gold", "ppo")]}, [])[0].startswith(
        "ceiling (gold labels)")  # the ceiling alone, without the control


def test_the_mechanism_tables_show_spg_pair_accuracy_and_both_reward_models_pooled(reports):
    _, markdown, _ = reports
    gold, training = _rows(markdown, "gold")[0], _rows(markdown, "training")[0]
    # gold: 13 of 18 decisive = 0.722, se sqrt(0.722 * 0.278 / 18) = 0.106; training 12 / 20 = 0.6, se 0.110
    # ± 95%: 1.96 x 0.106 = 0.207, 1.96 x 0.110 = 0.215
    assert gold[1:] == ["0.722 ± 0.207", "18", "2", "–"]
    assert training[1:] == ["0.600 ± 0.215", "20", "0", "0.59"]
    # the refinement section pools the seeds' 2 x 40 pairs: r 0.55, 0.65 -> 0.600, binomial se
    # sqrt(0.6 x 0.4 / 80) = 0.0548, ± 1.96 x 0.0548 = 0.107; r' 0.65 -> se 0.0533, ± 0.105; r' - r: each seed
    # +0.05 with se 0.02 over 40 pairs; pooled exactly the same mean with about half the variance of the mean,
    # se ~ 0.02 / sqrt(2) = 0.0141, ± 0.028
    models = [row for row in _rows(markdown, "rlp_spg") if len(row) == 7][0]
    assert models[1:] == ["final policy", "0.600 ± 0.107", "0.650 ± 0.105", "+0.050 ± 0.028", "80", "2"]


def test_overoptimisation_section_shows_the_fits_and_the_plot(reports, parse_html):
    run_dir, markdown, html = reports
    assert "## Over-optimisation" in markdown and "](plots/overoptimisation.png)" in markdown
    assert (run_dir / "plots" / "overoptimisation.png").read_bytes()[:4] == b"\x89PNG"
    bon = next(row for row in _rows(markdown, "best_of_n") if row[1] == "mean")
    ppo = next(row for row in _rows(markdown, "ppo") if len(row) == 9 and row[1] == "mean")
    # exact curves: bon alpha 3, beta 1, d* 1.5, KL 2.25, +2.25; RL alpha 1, beta 0.5, d* e = 2.72, KL 7.39, +1.36;
    # one rounding rule: 2 decimals, the gain in points at 1
    assert bon[2:] == ["d (alpha - beta d)", "3.00", "1.00", "1.50", "2.25", "+2.3", "4"]
    assert ppo[2:] == ["d (alpha - beta log d)", "1.00", "0.50", "2.72", "7.39", "+1.4", "4"]
    assert len([row for row in _rows(markdown, "best_of_n") if row[1].startswith("seed")]) == 2
    text = "".join(parse_html(html).text)
    assert "Gold win rate and proxy reward against sqrt(KL)" in text and "d (alpha - beta log d)" in text


def test_sections_are_left_out_when_the_run_has_nothing_for_them(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    del results["overoptimisation"], results["methods"]["ppo"]
    (run_dir / "results.json").write_text(json.dumps(results))
    markdown = write_reports(run_dir)[0].read_text()
    assert "## Over-optimisation" not in markdown and "## Paired comparisons" not in markdown
    assert "No ppo in this run" in markdown


def test_numbers_stored_as_null_show_as_missing(tmp_path, make_run_dir):
    """results.json stores NaN as null (harness.results_json): a seed whose reward models were measured on no
    decisive pair, and a curve point without a standard error, leave a dash, not a failed report."""
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    for record in results["methods"]["rlp_spg"]["per_seed"]:
        record["details"]["reward_models_on_policy"]["original"].update(accuracy=None, standard_error=None)
    results["overoptimisation"]["mean"]["curves"]["best_of_n"][0]["standard_error"] = None
    (run_dir / "results.json").write_text(results_json.dumps(results))
    markdown = write_reports(run_dir)[0].read_text()
    models = [row for row in _rows(markdown, "rlp_spg") if len(row) == 7][0]
    assert models[2:4] == ["–", "0.650 ± 0.105"]


def test_items_pair_only_on_the_same_instructions_and_drop_missing_verdicts():
    nan = float("nan")
    rlp = {0: (["a", "b", "c"], [1.0, nan, 0.5]), 1: (["a", "b", "c"], [1.0, 1.0, 0.0])}
    ppo = {0: (["a", "b", "c"], [0.0, 1.0, 0.5]), 1: (["a", "b", "c"], [1.0, 0.0, 0.0]), 2: (["a"], [1.0])}
    # seed 2 has no RLP run; item b lacks a verdict in seed 0, so it goes for every seed
    assert paired_items(rlp, ppo) == ([[1.0, 0.5], [1.0, 0.0]], [[0.0, 0.5], [1.0, 0.0]])
    assert paired_items({0: (["x"], [1.0])}, {0: (["y"], [1.0])}) is None


def test_pooled_agreement_by_hand():
    pooled = pooled_agreement([{"n": 4, "n_ties": 1, "n_agree": 3}, {"n": 2, "n_ties": 2, "n_agree": 0}])
    assert (pooled["accuracy"], pooled["decisive"], pooled["ties"]) == (1.0, 3, 3)
    assert pooled["standard_error"] == 0.0


def test_the_drift_by_pair_kind_pools_both_ends_over_seeds():
    from harness.report.drift import drift_kind_section

    def point(step, accuracy, n, **kinds):
        return {"step": step, "accuracy": accuracy, "n": n,
                "by_kind": {k.replace("_", " "): {"accuracy": a, "n": m} for k, (a, m) in kinds.items()}}

    curves = [[point(0, 0.8, 10, answer_vs_evasion=(1.0, 5), right_vs_wrong=(0.6, 5)),
               point(8, 0.5, 10, right_vs_wrong=(0.5, 10))],
              [point(0, 0.6, 10, answer_vs_evasion=(0.8, 5), right_vs_wrong=(0.4, 5)),
               point(8, 0.5, 10, right_vs_wrong=(0.5, 10))]]
    results = {"methods": {"sft": {"per_seed": [{"details": {}}]},
                           "ppo": {"per_seed": [{"details": {"drift": {"curve": c}}} for c in curves]}}}
    rows = drift_kind_section(results).blocks[1].rows
    # step 0, all pairs: (8 + 6) / 20 = 0.7, 1.96 x sqrt(0.7 x 0.3 / 20) = 0.201; answer vs evasion (5 + 4) / 10 =
    # 0.9, 1.96 x sqrt(0.09 / 10) = 0.186; right vs wrong (3 + 2) / 10 = 0.5, 1.96 x sqrt(0.025) = 0.310
    # a run made before the length rule was measured leaves its column blank
    assert rows[:3] == (("ppo", "SFT policy (step 0)", "all judged pairs", "0.700 ± 0.201", "", "20"),
                        ("ppo", "SFT policy (step 0)", "answer vs evasion", "0.900 ± 0.186", "", "10"),
                        ("ppo", "SFT policy (step 0)", "right vs wrong", "0.500 ± 0.310", "", "10"))
    assert rows[3:] == (("ppo", "final checkpoint", "all judged pairs", "0.500 ± 0.219", "", "20"),
                        ("ppo", "final checkpoint", "right vs wrong", "0.500 ± 0.219", "", "20"))
    assert drift_kind_section({"methods": {"sft": {"per_seed": [{"details": {}}]}}}) is None


def test_the_length_rule_stands_beside_the_reward_model_on_the_same_pairs():
    from harness.report.drift import drift_kind_section

    def seed(val_rm, val_shorter, step0_shorter):
        point = {"step": 0, "accuracy": 0.6, "n": 10, "prefer_shorter": {"accuracy": step0_shorter, "n": 10},
                 "by_kind": {"concision only": {"accuracy": 0.5, "n": 4, "prefer_shorter": {"accuracy": 1.0, "n": 4}}}}
        return {"details": {"drift": {"curve": [point]},
                            "val_pairs": {"reward_model": {"accuracy": val_rm, "n": 20},
                                          "prefer_shorter": {"accuracy": val_shorter, "n": 20}}}}

    results = {"methods": {"ppo": {"per_seed": [seed(0.7, 0.8, 0.3), seed(0.6, 0.6, 0.1)]}}}
    rows = drift_kind_section(results).blocks[1].rows
    # val: RM (14 + 12) / 40 = 0.65, 1.96 x sqrt(0.65 x 0.35 / 40) = 0.148; "prefer the shorter" (16 + 12) / 40 =
    # 0.7, 1.96 x sqrt(0.21 / 40) = 0.142
    assert rows[0] == ("ppo", "held-out val pairs", "all judged pairs", "0.650 ± 0.148", "0.700 ± 0.142 (shorter)",
                       "40")
    # step 0: "prefer the shorter" (3 + 1) / 20 = 0.2, so "prefer the longer" earns 0.8, 1.96 x sqrt(0.16 / 20)
    # = 0.175; concision-only pairs all go to the shorter by construction
    assert rows[1][4] == "0.800 ± 0.175 (longer)" and rows[2][2:5] == ("concision only", "0.500 ± 0.346",
                                                                        "1.000 ± 0.000 (shorter)")
