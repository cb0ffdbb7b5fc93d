"""The report's refinement and mechanism section (harness/report/refinement.py): per-seed refinement counts, r and
r' pooled over seeds on both distributions and by pair kind, and UML's loss curve, on the fixture run."""

from __future__ import annotations

import json
import math

import pytest

from harness.core.rm_accuracy import credit_accuracy, paired_accuracy_difference
from harness.report import write_reports
from harness.report.refinement import pooled_accuracy, pooled_difference

# Per seed, per pair: (original's credit, refined's credit); None is a judge tie.
CREDITS = [[(0, 1), (0, 1), (1, 1), (1, 1), None], [(0, 1), (1, 1)]]


def comparison(credits: list) -> dict:
    original = [None if c is None else c[0] for c in credits]
    refined = [None if c is None else c[1] for c in credits]
    record = {"original": credit_accuracy(original), "refined": credit_accuracy(refined),
              "refined_minus_original": paired_accuracy_difference(refined, original)}
    return {**record, "by_kind": {"right vs wrong": record}}


def test_pooled_difference_equals_the_paired_difference_over_all_pairs_at_once():
    records = [comparison(seed)["refined_minus_original"] for seed in CREDITS]
    pooled = paired_accuracy_difference([1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 1])  # differences 1, 1, 0, 0, 1, 0
    # by hand: mean 1/2, sample variance 6 * 1/4 / 5 = 0.3, standard error sqrt(0.3 / 6) = 0.2236
    assert pooled_difference(records) == pytest.approx((0.5, math.sqrt(0.3 / 6)))
    assert pooled_difference(records) == pytest.approx((pooled["difference"], pooled["standard_error"]))
    # a seed with one pair has no standard error of its own, yet adds its pair to the pool
    one = paired_accuracy_difference([1], [0])
    assert math.isnan(one["standard_error"])
    assert pooled_difference([records[1], one]) == pytest.approx(
        tuple(paired_accuracy_difference([1, 1, 1], [0, 1, 0])[k] for k in ("difference", "standard_error")))
    assert pooled_accuracy([comparison(seed)["original"] for seed in CREDITS]) == pytest.approx(
        (0.5, math.sqrt(0.25 / 6), 6))


@pytest.fixture(scope="module")
def markdown(tmp_path_factory, make_run_dir):
    run_dir = make_run_dir(tmp_path_factory.mktemp("mechanism"))
    results = json.loads((run_dir / "results.json").read_text())
    for seed, record in enumerate(results["methods"]["rlp_spg"]["per_seed"]):
        record["details"]["reward_models_held_out"] = comparison(CREDITS[seed])
        record["details"]["reward_models_on_policy"] = comparison(CREDITS[1 - seed])
    results["diagnostics"]["rlp_spg"] = [
        {"seed": s, "n_instructions": 500, "n_accepted": 241 + s, "n_pairs": 222 + s,
         "share_of_reward_data": (222 + s) / (4222 + s), "chosen_longer_share": 0.4, "chosen_shorter_share": 0.1,
         "score_spread_vs_r": [2.304, None][s]}  # seed 1's PPO used raw scores
        for s in range(2)]
    results["diagnostics"]["rlp_uml"] = [
        {"seed": s, "view_pairs": 498, "instructions": 500,
         "mib_curve": [{"step": i, "bt_loss": 0.7 - 0.01 * i, "mib_loss": 2.0 - 0.1 * i} for i in range(5)]}
        for s in range(2)]
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir, write_reports(run_dir)[0].read_text()


def _rows(markdown: str, method: str, columns: int) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines()
            if line.startswith(f"| `{method}` |")]
    return [row for row in rows if len(row) == columns]


def test_the_section_shows_per_seed_counts_both_distributions_kinds_and_the_uml_curve(markdown):
    run_dir, text = markdown
    assert "## Reward learning on policy: the refinement and its mechanism" in text
    assert _rows(text, "rlp_spg", 11) == [
        ["`rlp_spg`", "0", "500", "241", "222", "0.05", "0.40", "0.10", "–", "–", "2.30x"],
        ["`rlp_spg`", "1", "500", "242", "223", "0.05", "0.40", "0.10", "–", "–", "–"]]
    # both distributions pool the same six decisive pairs: r 3 of 6 (se 0.204), r' 6 of 6, r' - r 0.5 (se 0.224);
    # ± is the 95% half-width: 1.96 x 0.204 = 0.400, 1.96 x 0.224 = 0.438
    held_out, final = _rows(text, "rlp_spg", 7)[:2]
    assert held_out == ["`rlp_spg`", "first PPO policy (held out)", "0.500 ± 0.400", "1.000 ± 0.000",
                        "+0.500 ± 0.438", "6", "2"]
    assert final[1] == "final policy" and final[2:] == held_out[2:]
    kinds = [row for row in _rows(text, "rlp_spg", 7) if row[2] == "right vs wrong"]
    assert [row[1] for row in kinds] == ["first PPO policy (held out)", "final policy"]
    assert kinds[0][3:] == ["0.500 ± 0.400", "1.000 ± 0.000", "+0.500 ± 0.438", "6"]
    assert "](plots/uml_mib_loss.png)" in text
    assert (run_dir / "plots" / "uml_mib_loss.png").read_bytes()[:4] == b"\x89PNG"


def test_the_section_is_left_out_without_a_method_that_refines_the_reward_model(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    del results["methods"]["rlp_spg"]
    (run_dir / "results.json").write_text(json.dumps(results))
    assert "Reward learning on policy" not in write_reports(run_dir)[0].read_text()
