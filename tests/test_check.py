"""The regression check: tolerance and verdict by hand, and the command's exit status on real files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness import check
from harness.check import EXIT_BAD_INPUT, EXIT_OK, EXIT_REGRESSION, tolerance, verdict
from harness.leaderboard import ToleranceRule, load_leaderboard, update_leaderboard


@pytest.fixture
def stored(tmp_path, make_run_dir):
    """A fixture run and a leaderboard made from that very run."""
    run_dir = make_run_dir(tmp_path)
    csv_path, _ = update_leaderboard(run_dir, tmp_path / "leaderboards")
    return run_dir, csv_path


def _set_stored(csv_path: Path, method: str, metric: str, value: float | str) -> None:
    """Moves a stored mean to ``value`` in the CSV and its per-seed values in the JSON by the same amount, so the
    two files still agree (NaN: every seed missing; text: written to the CSV alone)."""
    table = pd.read_csv(csv_path, dtype=str)
    old = float(table.loc[table["method"] == method, metric].iloc[0])
    table.loc[table["method"] == method, metric] = str(value)  # as a CSV cell; "nan" reads back as NaN
    table.to_csv(csv_path, index=False)
    if isinstance(value, str):
        return
    json_path = csv_path.with_suffix(".json")
    record = json.loads(json_path.read_text())
    seeds = record["per_seed"][method][metric]
    seeds["values"] = [None if math.isnan(value) else value if math.isnan(old) else v + value - old
                       for v in seeds["values"]]
    json_path.write_text(json.dumps(record))


def _check(run_dir: Path, csv_path: Path) -> int:
    return check.main(["--run", str(run_dir), "--leaderboards", str(csv_path.parent)])


def test_tolerance_by_hand():
    rule = ToleranceRule(floor=5.0, relative=0.0, k_se=3.0)
    # rlp_spg farm win rate: seeds 48, 52 -> sample sd = sqrt(((-2)^2 + 2^2) / 1) = 2.828; evaluation standard
    # error 3.2; two seeds compared: se = sqrt(2.828^2 + 3.2^2) / sqrt(2) = sqrt(18.24) / 1.414 = 3.020; 3 * se = 9.06.
    assert tolerance(rule, 50.0, [48.0, 52.0], 3.2, 2) == pytest.approx(9.060, abs=1e-3)
    # The same with the win-rate cap of 8 points: the cap wins.
    assert tolerance(ToleranceRule(floor=5.0, k_se=3.0, cap=8.0), 50.0, [48.0, 52.0], 3.2, 2) == 8.0
    # Seed 0 alone compared (m = 1): se = 4.271, 3 * se = 12.8, capped at 8.
    assert tolerance(ToleranceRule(floor=5.0, k_se=3.0, cap=8.0), 48.0, [48.0, 52.0], 3.2, 1) == 8.0
    # One stored seed: no spread; se 1.0 -> 3.0 is below the floor of 5.
    assert tolerance(rule, 50.0, [50.0], 1.0, 1) == 5.0
    # Nothing but the floor (NaN seeds are ignored, no evaluation standard error).
    assert tolerance(rule, 50.0, [50.0, math.nan]) == 5.0
    # Wall time: 1.0 * |40| = 40 s beats the 30 s floor and 3 * se(40, 40) = 0.
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


# rlp_spg farm_win_rate: the run's mean is 50.0 and the tolerance the 8-point cap (test_tolerance_by_hand).
# rlp_spg rm_drift (lower is better): mean 0.05, sd(0.04, 0.06) = 0.01414, se = 0.01, 3 * se = 0.03 < floor 0.05.
@pytest.mark.parametrize("metric, stored_value, expected", [
    ("farm_win_rate", 50.0 + 9.0, EXIT_REGRESSION),  # the run now sits 9 points below the stored value
    ("farm_win_rate", 50.0 + 7.0, EXIT_OK),  # 7 points below: inside the tolerance
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


@pytest.mark.parametrize("higher_is_better, expected", [(False, EXIT_OK), (True, EXIT_REGRESSION)])
def test_a_metric_is_judged_by_the_direction_its_record_carries(tmp_path, capsys, make_run_dir, higher_is_better,
                                                                  expected):
    # rm_drift recorded both ways: the run's drift of 0.05 against a stored 0.11 is better when lower is better, and
    # 0.06 worse (tolerance 0.05) when the record says higher is better. Its name decides nothing.
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    for entry in results["methods"].values():
        entry["metrics"]["rm_drift"]["higher_is_better"] = higher_is_better
    (run_dir / "results.json").write_text(json.dumps(results))
    csv_path, _ = update_leaderboard(run_dir, tmp_path / "leaderboards")
    _set_stored(csv_path, "rlp_spg", "rm_drift", 0.05 + 0.06)
    assert _check(run_dir, csv_path) == expected
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("rlp_spg    rm_drift "))
    assert line.split()[-1] == ("improved" if expected == EXIT_OK else "REGRESSION")


def test_the_tolerance_rule_and_standard_error_come_from_the_record(stored, capsys):
    run_dir, csv_path = stored
    out = _check_output(run_dir, csv_path, capsys)
    # rlp_spg farm_win_rate: its unit (percent) takes the 8-point cap over 3 * se = 9.06 (test_tolerance_by_hand,
    # where se counts its own standard errors 3.2, 3.2).
    line = next(line for line in out if line.startswith("rlp_spg    farm_win_rate "))
    assert line.split()[2:] == ["50", "50", "8", "ok"]
    # kl has no direction and another unit: the 'other' rule, 0.1 * 1.1 = 0.11 against 3 * sd(1.0, 1.2) / sqrt(2)
    line = next(line for line in out if line.startswith("rlp_spg    kl "))
    assert line.split()[-2:] == ["0.3", "info"]


def _check_output(run_dir: Path, csv_path: Path, capsys) -> list[str]:
    capsys.readouterr()
    _check(run_dir, csv_path)
    return capsys.readouterr().out.splitlines()


def test_a_value_missing_on_one_side_fails(stored, capsys):
    run_dir, csv_path = stored
    _set_stored(csv_path, "ppo", "rm_acc_onpolicy", float("nan"))
    assert _check(run_dir, csv_path) == EXIT_REGRESSION
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ppo        rm_acc_onpolicy"))
    assert line.split()[2:] == ["nan", "0.59", "0.05", "MISSING"]  # stored, now, tolerance (the floor), verdict
    # A run's missing value written as null (strict JSON) reads the same as NaN: missing, not a crash.
    _set_stored(csv_path, "ppo", "rm_acc_onpolicy", 0.59)
    results = json.loads((run_dir / "results.json").read_text())
    results["methods"]["ppo"]["metrics"]["kl"].update(mean=None, values=[None, None])
    (run_dir / "results.json").write_text(json.dumps(results))
    assert _check(run_dir, csv_path) == EXIT_REGRESSION
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ppo        kl "))
    assert line.split()[-1] == "MISSING"


def test_a_run_of_some_of_the_methods_is_checked_on_those_and_says_so(stored, capsys):
    run_dir, csv_path = stored
    results = json.loads((run_dir / "results.json").read_text())
    del results["methods"]["rlp_spg"]
    (run_dir / "results.json").write_text(json.dumps(results))
    assert _check(run_dir, csv_path) == EXIT_OK
    out = capsys.readouterr().out
    assert "rlp_spg    " not in out and "ppo        farm_win_rate" in out
    assert "not in this run, not checked (not a failure): rlp_spg" in out
    assert "compared: 1 of the leaderboard's 2 methods (ppo) on seeds 0-1" in out


def test_a_leaderboards_caveat_is_printed_with_the_comparison(stored, capsys):
    run_dir, csv_path = stored
    _edit_json(csv_path, lambda r: r.update(caveat="made by older code; rerun before trusting it"))
    assert _check(run_dir, csv_path) == EXIT_OK
    assert "caveat of the stored leaderboard: made by older code; rerun before trusting it" in capsys.readouterr().out


def test_the_stored_smollm2_gpu_leaderboard_says_not_to_trust_it():
    leaderboard = load_leaderboard("smollm2-gpu", Path("leaderboards"))
    assert "older code" in leaderboard.caveat and "rerun" in leaderboard.caveat


def test_a_one_seed_run_is_compared_with_the_stored_value_of_its_seed(stored, capsys, tmp_path, make_run_dir):
    _, csv_path = stored
    one_seed = make_run_dir(tmp_path / "one", seeds=1)  # seed 0: ppo farm 40.0, while the stored mean is 42.0
    assert _check(one_seed, csv_path) == EXIT_OK
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ppo        farm_win_rate"))
    assert line.split()[2:4] == ["40", "40"]


def test_a_run_with_no_method_of_the_leaderboard_exits_2(stored, capsys):
    run_dir, csv_path = stored
    results = json.loads((run_dir / "results.json").read_text())
    results["methods"] = {"sft": results["methods"]["ppo"]}
    (run_dir / "results.json").write_text(json.dumps(results))
    assert _check(run_dir, csv_path) == EXIT_BAD_INPUT
    assert "the run has none of the leaderboard's methods (rlp_spg, ppo)" in capsys.readouterr().err


def _stored_run(board_dir: Path, run_dir: Path, seeds: int | None = None, methods: list[str] | None = None,
                farm_drop: dict[str, float] | None = None) -> Path:
    """A run dir whose results are the stored leaderboard's own per-seed values (first ``seeds`` seeds, some
    ``methods``), with ``farm_drop[method]`` win-rate points taken off that method's farm win rate in every seed."""
    record = json.loads((board_dir / "tiny.json").read_text())
    seeds = seeds or record["command"]["seeds"]
    methods_out = {}
    for method in methods or record["command"]["methods"]:
        metrics = {}
        for metric, stored in record["per_seed"][method].items():
            values = [math.nan if v is None else v for v in stored["values"][:seeds]]
            if metric == "farm_win_rate":
                values = [v - (farm_drop or {}).get(method, 0.0) for v in values]
            finite = [v for v in values if not math.isnan(v)]
            metrics[metric] = {"mean": sum(finite) / len(finite) if finite else math.nan, "values": values,
                               "standard_errors": stored["standard_errors"][:seeds], **record["metrics"][metric]}
        methods_out[method] = {"metrics": metrics}
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"preset": "tiny", "seeds": seeds, "methods": methods_out}))
    return run_dir


STORED = Path(__file__).parent.parent / "leaderboards"
STORED_METHODS = json.loads((STORED / "tiny.json").read_text())["command"]["methods"]


@pytest.mark.parametrize("seeds, methods", [(None, None), (1, ["ppo", "rlp_spg"])],
                         ids=["the stored command", "the quick start (2 methods, 1 seed)"])
def test_the_stored_tiny_leaderboard_catches_a_10_point_farm_drop_in_any_method(tmp_path, capsys, seeds, methods):
    assert check.main(["--run", str(_stored_run(STORED, tmp_path / "same", seeds, methods)),
                       "--leaderboards", str(STORED)]) == EXIT_OK
    for method in methods or STORED_METHODS:
        run_dir = _stored_run(STORED, tmp_path / method, seeds, methods, farm_drop={method: 10.0})
        capsys.readouterr()
        assert check.main(["--run", str(run_dir), "--leaderboards", str(STORED)]) == EXIT_REGRESSION, method
        failing = [line.split()[:2] for line in capsys.readouterr().out.splitlines() if line.endswith("REGRESSION")]
        assert failing == [[method, "farm_win_rate"]]


def _drop_column(csv_path: Path) -> None:
    pd.read_csv(csv_path).drop(columns="knowledge_acc").to_csv(csv_path, index=False)


def _edit_json(csv_path: Path, edit) -> None:
    json_path = csv_path.with_suffix(".json")
    record = json.loads(json_path.read_text())
    edit(record)
    json_path.write_text(json.dumps(record))


def _replace_in_json(csv_path: Path, old: str, new: str) -> None:
    json_path = csv_path.with_suffix(".json")
    text = json_path.read_text()
    assert old in text
    json_path.write_text(text.replace(old, new, 1))


def _per_seed(method: str, metric: str, values: list) -> callable:
    return lambda record: record["per_seed"][method][metric].update(values=values)


# Each of these once let the check pass a PPO farm win rate of 0, count nonsense as "improved", or crash with exit 1.
@pytest.mark.parametrize("damage, message", [
    (lambda csv: _set_stored(csv, "ppo", "farm_standard_error", "inf"),
     "tiny.csv: column 'farm_standard_error', method 'ppo': 'inf' is not a finite number"),
    (lambda csv: _set_stored(csv, "ppo", "farm_standard_error", "1e309"),
     "column 'farm_standard_error', method 'ppo': '1e309' is not a finite number"),
    (lambda csv: _replace_in_json(csv, '"floor": 5.0', '"floor": Infinity'),
     "tiny.json: not valid JSON (Infinity is not a JSON number)"),
    (lambda csv: _edit_json(csv, lambda r: r["metrics"]["farm_win_rate"].update(higher_is_better=False)),
     "results.json: method 'ppo' records 'farm_win_rate' as {'higher_is_better': True, 'unit': 'percent', 'low': "
     "0.0, 'high': 100.0}, the leaderboard as {'higher_is_better': False,"),
    (lambda csv: _edit_json(csv, lambda r: r["metrics"]["rm_drift"].update(higher_is_better="no")),
     "tiny.json: metrics.rm_drift.higher_is_better: must be true, false or null, got 'no'"),
    (lambda csv: _edit_json(csv, lambda r: r["metrics"]["kl"].update(unit="furlongs")),
     "tiny.json: metrics.kl.unit: 'furlongs' is not a unit; allowed: percent, fraction"),
    (lambda csv: _edit_json(csv, lambda r: r["metrics"].pop("kl")), "tiny.json: metrics.kl: missing"),
    (lambda csv: _replace_in_json(csv, '"tolerances": {', '"tolerances": {}, "tolerances": {'),
     "tiny.json: not valid JSON (key 'tolerances' is given twice in one object)"),
    (lambda csv: _set_stored(csv, "ppo", "farm_win_rate", -50.0), "ppo farm_win_rate = -50.0 is outside [0.0, 100.0]"),
    (lambda csv: _set_stored(csv, "ppo", "farm_win_rate", "-inf"), "'-inf' is not a finite number"),
    (lambda csv: _set_stored(csv, "ppo", "seeds", "3"), "tiny.csv: column 'seeds' says [2.0, 3.0], the JSON's command 2"),
    (lambda csv: _replace_in_json(csv, "[\n     40.0", "[Infinity"), "not valid JSON (Infinity is not a JSON number)"),
    (lambda csv: _edit_json(csv, _per_seed("ppo", "farm_win_rate", [40.0])),
     "tiny.json: per_seed.ppo.farm_win_rate.values has 1 values for 2 seeds"),
    (lambda csv: _edit_json(csv, lambda r: r["per_seed"]["ppo"]["farm_win_rate"].update(standard_errors=[3.0, -1])),
     "tiny.json: ppo farm_standard_error = -1.0 is outside [0.0, 100.0]"),
    (lambda csv: _edit_json(csv, _per_seed("ppo", "farm_win_rate", [10.0, 14.0])),
     "tiny.csv: ppo farm_win_rate = 42.0, but the mean of its per-seed values in tiny.json is 12.0"),
    (lambda csv: _edit_json(csv, lambda r: r["tolerances"].pop("other")), "tiny.json: no tolerance rule 'other'"),
    (lambda csv: _edit_json(csv, _per_seed("ppo", "farm_win_rate", ["40", 44.0])), "'40' is not a finite number"),
    (lambda csv: _edit_json(csv, lambda r: r["tolerances"]["percent"].update(cap=1.0)),
     "tolerances.percent.cap: got 1.0; allowed: null or at least floor (5.0)"),
    (lambda csv: _edit_json(csv, lambda r: r.update(schema=1)), "tiny.json: schema 1, this harness reads schema 3"),
    (lambda csv: _edit_json(csv, lambda r: r.update(caveat=3)), "tiny.json: 'caveat' must be a non-empty string"),
    (_drop_column, "tiny.csv: missing column 'knowledge_acc'"),
    (lambda csv: _set_stored(csv, "ppo", "kl", "high"), "tiny.csv: column 'kl', method 'ppo': 'high' is not a"),
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


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(kl=1.5), "method 'ppo', metric 'kl': expected an object with a 'mean', got 1.5"),
    (lambda m: m["kl"].update(values=[math.inf, 0.0]), "not valid JSON (Infinity is not a JSON number)"),
    (lambda m: m["kl"].update(values=["2", 0.0]), "metric 'kl': 'values' must hold finite numbers or null"),
    (lambda m: m["kl"].update(mean="2.2"), "metric 'kl': 'mean' must be a finite number or null"),
    (lambda m: m["kl"].pop("unit"), "metric 'kl': unit: missing (results.json written before metrics carried"),
])
def test_a_malformed_run_exits_2_with_one_line(stored, capsys, edit, message):
    run_dir, csv_path = stored
    results = json.loads((run_dir / "results.json").read_text())
    edit(results["methods"]["ppo"]["metrics"])
    (run_dir / "results.json").write_text(json.dumps(results))
    assert _check(run_dir, csv_path) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_preset_that_is_a_path_is_refused(stored, capsys):
    run_dir, csv_path = stored
    assert check.main(["--preset", "../../tiny", "--leaderboards", str(csv_path.parent)]) == EXIT_BAD_INPUT
    assert ("preset: got '../../tiny'; allowed: a name of letters, digits, '-' and '_' (not a path)"
            in capsys.readouterr().err)


def test_a_bad_run_dir_exits_2(stored, capsys, tmp_path):
    _, csv_path = stored
    assert _check(tmp_path / "nowhere", csv_path) == EXIT_BAD_INPUT
    assert "nowhere/results.json: no such file" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"preset": "tiny", "methods": ')
    assert _check(broken, csv_path) == EXIT_BAD_INPUT
    assert "broken/results.json: not valid JSON" in capsys.readouterr().err


def fake_reruns(monkeypatch, run_dir: Path) -> list[list[str]]:
    """Replaces ``harness.run.main`` by a stand-in for a training run that leaves ``run_dir``'s results in ``--out``;
    returns the list each call's argv is appended to."""
    calls = []

    def fake_run(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        shutil.copy(run_dir / "results.json", out / "results.json")
        return 0

    monkeypatch.setattr("harness.run.main", fake_run)
    return calls


def test_without_run_it_reruns_the_stored_command(stored, monkeypatch, tmp_path):
    run_dir, csv_path = stored
    monkeypatch.chdir(tmp_path)
    calls = fake_reruns(monkeypatch, run_dir)
    assert check.main(["--preset", "tiny", "--leaderboards", str(csv_path.parent)]) == EXIT_OK
    assert calls == [["--preset", "tiny", "--methods", "ppo", "rlp_spg", "--seeds", "2",
                      "--out", "runs/check-tiny", "--cache", "runs/check-tiny/stages", "--overwrite"]]

    monkeypatch.setattr("harness.run.main", lambda argv: 2)  # a rerun that fails is no comparison
    assert check.main(["--leaderboards", str(csv_path.parent)]) == EXIT_BAD_INPUT


def test_seeds_reruns_the_first_seeds_of_the_stored_command_only(stored, monkeypatch, tmp_path, capsys):
    run_dir, csv_path = stored
    monkeypatch.chdir(tmp_path)
    calls = fake_reruns(monkeypatch, run_dir)
    assert check.main(["--preset", "tiny", "--leaderboards", str(csv_path.parent), "--seeds", "1"]) == EXIT_OK
    assert calls[0][calls[0].index("--seeds") + 1] == "1"
    for bad in (["--seeds", "3"], ["--seeds", "0"], ["--seeds", "1", "--run", str(run_dir)]):
        assert check.main(["--preset", "tiny", "--leaderboards", str(csv_path.parent), *bad]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip()
        assert err.startswith("harness.check: error: --seeds: got") and "allowed: 1 to 2" in err and "\n" not in err
    assert len(calls) == 1  # a bad --seeds trains nothing
