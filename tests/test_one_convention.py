"""One results.json, every output: the console, both reports, the stored leaderboard and the check print the same
interval, MDE and verdict for the same comparison, because each prints the one stored record."""

from __future__ import annotations

import json

from harness import check, results_json
from harness.console_table import format_table
from harness.evals.paired import compare_methods
from harness.leaderboard import update_leaderboard
from harness.report import write_reports
from harness.report.markdown import APPENDIX


def test_every_output_prints_the_same_interval_for_the_same_comparison(tmp_path, make_run_dir, capsys):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    results["comparisons"] = compare_methods(run_dir, results)  # as the pipeline stores them
    # a stored record whose numbers no estimator would recompute: an output that recomputed would disagree
    stored = results["comparisons"][0]
    stored.update(difference=3.4, low=-1.2, high=8.0, mde=6.5, verdict="unresolved")
    (run_dir / "results.json").write_text(results_json.dumps(results))
    expected = "rlp_spg - ppo, farm_win_rate: +3.4 [-1.2, +8.0], MDE 6.5 points: unresolved"

    console = " ".join(format_table(results).split())  # wrapped at 120 columns: compare without line breaks
    markdown_path, html_path = write_reports(run_dir)
    leaderboards = tmp_path / "leaderboards"
    update_leaderboard(run_dir, leaderboards)
    assert check.main(["--run", str(run_dir), "--leaderboards", str(leaderboards)]) == 0
    checked = capsys.readouterr().out

    assert expected in console
    markdown, html = markdown_path.read_text(), html_path.read_text()
    assert expected.replace("_", "\\_").replace("[", "\\[").replace("]", "\\]") in markdown  # escaped as text
    assert "| `rlp_spg` | ppo | farm | +3.4 \\[-1.2, +8.0\\], MDE 6.5 | unresolved |" in markdown
    assert f"<li>{expected}</li>" in html and "<td>+3.4 [-1.2, +8.0], MDE 6.5</td>" in html
    assert f"  {expected}" in checked.split("paired comparisons, this run:")[1]
    assert f"  {expected}" in checked.split("paired comparisons, stored leaderboard:")[1]
    stored_json = json.loads((leaderboards / "tiny.json").read_text())["comparisons"][0]
    assert (stored_json["difference"], stored_json["low"], stored_json["high"], stored_json["mde"]) == (
        3.4, -1.2, 8.0, 6.5)
    # and one footnote says what the interval is, in the console, the report and the check alike
    convention = "± and [low, high] are 95% intervals"
    assert convention in console and convention in markdown and convention in checked
    assert APPENDIX in markdown
