"""The report's analysis sections (harness/report/overoptimisation.py, rlp_vs_ppo.py) on the fixture run of
test_report, whose numbers are chosen so every cell can be worked out by hand."""

from __future__ import annotations

import json

import pytest

from harness import results_json
from harness.report import write_reports
from harness.report.rlp_vs_ppo import paired_items, pooled_agreement


@pytest.fixture(scope="module")
def reports(tmp_path_factory, make_run_dir):
    run_dir = make_run_dir(tmp_path_factory.mktemp("sections"))
    markdown_path, html_path = write_reports(run_dir)
    return run_dir, markdown_path.read_text(), html_path.read_text()


def _rows(markdown: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines()
            if line.startswith(f"| `{first_cell}` |")]


def test_rlp_minus_ppo_is_paired_over_seeds_and_items(reports):
    _, markdown, html = reports
    assert "## Does RLP beat PPO?" in markdown and "<h2>Does RLP beat PPO?</h2>" in html
    assert "crossed random effects" in markdown  # the report says how the interval is computed
    # Per item, rlp_spg - ppo = 0, 1 (the second item: spg wins, ppo loses), 0, 0 in both seeds: mean 0.25.
    # Seed means equal (MS_seed 0), no residual; item means 0, 1, 0, 0: MS_item = 2 * (3 * 0.0625 + 0.5625) / 3
    # = 0.5; Var = 0.5 / 8 = 0.0625, se 0.25; df = 0.25 / (0.25 / 3) = 3, t = 3.1824: +-0.7956.
    farm, bar = [row for row in _rows(markdown, "rlp_spg") if row[2] in ("farm", "bar")]
    assert farm == ["`rlp_spg`", "ppo", "farm", "+25.0 ± 79.6", "\\[-54.6, +104.6\\]", "no difference resolved",
                    "2", "4"]
    assert bar[2] == "bar" and bar[3] == "+25.0 ± 79.6"


def test_the_mechanism_tables_show_spg_pair_accuracy_and_both_reward_models(reports):
    _, markdown, _ = reports
    gold, training = _rows(markdown, "gold")[0], _rows(markdown, "training")[0]
    # gold: 13 of 18 decisive = 0.722, se sqrt(0.722 * 0.278 / 18) = 0.106; training 12 / 20 = 0.6, se 0.110
    assert gold[1:] == ["0.722 ± 0.106", "18", "2", "–"]
    assert training[1:] == ["0.600 ± 0.110", "20", "0", "0.59"]
    # original 0.55, 0.65 -> 0.600 ± sqrt(2 * 0.05^2) / 2 = 0.035; refined 0.650 ± 0.035; paired 0.05 ± 0.014
    models = [row for row in _rows(markdown, "rlp_spg") if len(row) == 6][0]
    assert models[1:] == ["0.600 ± 0.035", "0.650 ± 0.035", "0.050 ± 0.014", "80", "2"]


def test_overoptimisation_section_shows_the_fits_and_the_plot(reports, parse_html):
    run_dir, markdown, html = reports
    assert "## Over-optimisation" in markdown and "](plots/overoptimisation.png)" in markdown
    assert (run_dir / "plots" / "overoptimisation.png").read_bytes()[:4] == b"\x89PNG"
    bon = next(row for row in _rows(markdown, "best_of_n") if row[1] == "mean")
    ppo = next(row for row in _rows(markdown, "ppo") if len(row) == 9 and row[1] == "mean")
    # exact curves: bon alpha 3, beta 1, d* 1.5, KL 2.25, +2.25; RL alpha 1, beta 0.5, d* e = 2.72, KL 7.39, +1.36
    assert bon[2:] == ["d (alpha - beta d)", "3", "1", "1.5", "2.25", "+2.25", "4"]
    assert ppo[2:] == ["d (alpha - beta log d)", "1", "0.5", "2.72", "7.39", "+1.36", "4"]
    assert len([row for row in _rows(markdown, "best_of_n") if row[1].startswith("seed")]) == 2
    text = "".join(parse_html(html).text)
    assert "Gold win rate and proxy reward against sqrt(KL)" in text and "d (alpha - beta log d)" in text


def test_sections_are_left_out_when_the_run_has_nothing_for_them(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    del results["overoptimisation"], results["methods"]["ppo"]
    (run_dir / "results.json").write_text(json.dumps(results))
    markdown = write_reports(run_dir)[0].read_text()
    assert "## Over-optimisation" not in markdown and "## Does RLP beat PPO?" not in markdown


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
    models = [row for row in _rows(markdown, "rlp_spg") if len(row) == 6][0]
    assert models[1:3] == ["–", "0.650 ± 0.035"]


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
