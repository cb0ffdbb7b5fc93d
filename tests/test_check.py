"""The regression check: tolerance and verdict by hand, and the command's exit status on real files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness import check, leaderboard
from harness.check import EXIT_BAD_INPUT, EXIT_OK, EXIT_REGRESSION, tolerance, verdict
from harness.leaderboard import ToleranceRule, update_leaderboard
from test_report import make_run_dir


@pytest.fixture(autouse=True)
def registry_methods(monkeypatch):
    # The real registry imports torch and every method (seconds); these tests are about the comparison.
    monkeypatch.setattr(leaderboard, "known_methods", lambda: frozenset({"sft", "ppo", "rlp_uml", "rlp_spg"}))


@pytest.fixture
def stored(tmp_path):
    """A fixture run and a leaderboard made from that very run."""
    run_dir = make_run_dir(tmp_path)
    csv_path, _ = update_leaderboard(run_dir, tmp_path / "leaderboards")
    return run_dir, csv_path


def _set_stored(csv_path: Path, method: str, metric: str, value: float | str) -> None:
    table = pd.read_csv(csv_path, dtype=str)
    table.loc[table["method"] == method, metric] = str(value)  # as a CSV cell; "nan" reads back as NaN
    table.to_csv(csv_path, index=False)


def _check(run_dir: Path, csv_path: Path) -> int:
    return check.main(["--run", str(run_dir), "--leaderboards", str(csv_path.parent)])


def test_tolerance_by_hand():
    rule = ToleranceRule(floor=5.0, relative=0.0, k_std=3.0, k_se=2.0)
    # rlp_spg farm win rate: seeds 48, 52 -> sample std = sqrt(((-2)^2 + 2^2) / 1) = 2.828; 3 * 2.828 = 8.485;
    # standard error 3.2 -> 2 * 3.2 = 6.4; floor 5. The largest term wins: 8.485.
    assert tolerance(rule, 50.0, [48.0, 52.0], 3.2) == pytest.approx(8.485, abs=1e-3)
    # One seed: no std; se 3.0 -> 6.0 beats the floor.
    assert tolerance(rule, 50.0, [50.0], 3.0) == pytest.approx(6.0)
    # Nothing but the floor (NaN seeds are ignored, no standard error).
    assert tolerance(rule, 50.0, [50.0, math.nan]) == 5.0
    # Wall time: 1.0 * |40| = 40 s beats the 30 s floor and 3 * std(40, 40) = 0.
    assert tolerance(ToleranceRule(floor=30.0, relative=1.0), 40.0, [40.0, 40.0]) == 40.0


def test_verdict_by_hand():
    assert verdict(50.0, 41.0, True, 8.5) == "regression"  # 9 points worse, tolerance 8.5
    assert verdict(50.0, 42.0, True, 8.5) == "ok"  # 8 points worse: within
    assert verdict(50.0, 59.0, True, 8.5) == "improved"
    assert verdict(0.05, 0.11, False, 0.05) == "regression"  # lower is better: 0.06 higher is worse
    assert verdict(0.05, -0.01, False, 0.05) == "improved"
    assert verdict(1.0, 100.0, None, 0.1) == "info"  # no direction never fails
    assert verdict(math.nan, math.nan, True, 1.0) == "ok"
    assert verdict(math.nan, 0.5, True, 1.0) == verdict(0.5, math.nan, None, 1.0) == "missing"


def test_an_unchanged_run_passes(stored, capsys):
    run_dir, csv_path = stored
    assert _check(run_dir, csv_path) == EXIT_OK
    out = capsys.readouterr().out
    assert "rlp_spg    farm_win_rate" in out and "REGRESSION" not in out and out.rstrip().endswith("PASS")


# rlp_spg farm_win_rate: the run's mean is 50.0 and the tolerance 8.485 (test_tolerance_by_hand).
# rlp_spg rm_drift (lower is better): mean 0.05, std(0.04, 0.06) = 0.01414, 3 * 0.01414 = 0.042 < floor 0.05.
@pytest.mark.parametrize("metric, stored_value, expected", [
    ("farm_win_rate", 50.0 + 9.0, EXIT_REGRESSION),  # the run now sits 9 points below the stored value
    ("farm_win_rate", 50.0 + 8.0, EXIT_OK),  # 8 points below: inside the tolerance
    ("farm_win_rate", 50.0 - 9.0, EXIT_OK),  # the run is better than stored: improved, passes
    ("rm_drift", 0.05 - 0.06, EXIT_REGRESSION),  # the run's drift is 0.06 higher than stored: worse
    ("rm_drift", 0.05 + 0.06, EXIT_OK),
    ("kl", 1.1 * 100, EXIT_OK),  # no direction: reported, never a failure
])
def test_a_perturbed_stored_value_fails_only_on_the_worse_side(stored, capsys, metric, stored_value, expected):
    run_dir, csv_path = stored
    _set_stored(csv_path, "rlp_spg", metric, stored_value)
    assert _check(run_dir, csv_path) == expected
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"rlp_spg    {metric} "))
    verdicts = {EXIT_REGRESSION: "REGRESSION", EXIT_OK: ("ok", "improved", "info")}[expected]
    assert line.split()[-1] in verdicts


def test_a_value_missing_on_one_side_fails(stored, capsys):
    run_dir, csv_path = stored
    _set_stored(csv_path, "ppo", "rm_acc_onpolicy", float("nan"))
    assert _check(run_dir, csv_path) == EXIT_REGRESSION
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ppo        rm_acc_onpolicy"))
    assert line.split()[2:] == ["nan", "0.59", "0.05", "MISSING"]  # stored, now, tolerance (the floor), verdict
    results = json.loads((run_dir / "results.json").read_text())
    del results["methods"]["rlp_spg"]
    (run_dir / "results.json").write_text(json.dumps(results))
    _set_stored(csv_path, "ppo", "rm_acc_onpolicy", 0.59)
    assert _check(run_dir, csv_path) == EXIT_REGRESSION
    assert "rlp_spg    (all)" in capsys.readouterr().out


def _drop_column(csv_path: Path) -> None:
    pd.read_csv(csv_path).drop(columns="knowledge_acc").to_csv(csv_path, index=False)


@pytest.mark.parametrize("damage, message", [
    (_drop_column, "tiny.csv: missing column 'knowledge_acc'"),
    (lambda csv: _set_stored(csv, "ppo", "kl", "high"), "tiny.csv: column 'kl', method 'ppo': 'high' is not a number"),
    (lambda csv: csv.write_text(""), "tiny.csv: the file is empty"),
    (lambda csv: csv.unlink(), "tiny.csv: no such file"),
])
def test_a_malformed_leaderboard_exits_2_with_one_line(stored, capsys, damage, message):
    run_dir, csv_path = stored
    damage(csv_path)
    assert _check(run_dir, csv_path) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_a_bad_run_dir_exits_2(stored, capsys, tmp_path):
    _, csv_path = stored
    assert _check(tmp_path / "nowhere", csv_path) == EXIT_BAD_INPUT
    assert "nowhere/results.json: no such file" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"preset": "tiny", "methods": ')
    assert _check(broken, csv_path) == EXIT_BAD_INPUT
    assert "broken/results.json: not valid JSON" in capsys.readouterr().err


def test_without_run_it_reruns_the_stored_command(stored, monkeypatch, tmp_path):
    run_dir, csv_path = stored
    calls = []

    def fake_run(argv):  # stands in for a training run: leaves the fixture's results in --out
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        shutil.copy(run_dir / "results.json", out / "results.json")
        return 0

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("harness.run.main", fake_run)
    assert check.main(["--preset", "tiny", "--leaderboards", str(csv_path.parent)]) == EXIT_OK
    assert calls == [["--preset", "tiny", "--methods", "ppo", "rlp_spg", "--seeds", "2",
                      "--out", "runs/check-tiny"]]

    monkeypatch.setattr("harness.run.main", lambda argv: 2)  # a rerun that fails is no comparison
    assert check.main(["--leaderboards", str(csv_path.parent)]) == EXIT_BAD_INPUT
