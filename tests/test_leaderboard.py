"""Stored leaderboards: what an update writes, what loading rejects, and that a failed update changes nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from harness import leaderboard
from harness.core.rm_accuracy import DRIFT
from harness.leaderboard import (
    COUNT_COLUMNS,
    LEADERBOARD_COLUMNS,
    TOLERANCES,
    LeaderboardError,
    alpaca_eval_counts,
    load_leaderboard,
    update_leaderboard,
)
from harness.pipeline import TRAINING_TIME

def test_known_methods_are_the_registrys_and_cost_no_import_of_torch():
    from harness.registry import METHODS

    assert leaderboard.known_methods() == frozenset(METHODS)
    assert {"sft", "ppo", "best_of_n", "rlp_uml", "rlp_spg"} <= leaderboard.known_methods()


@pytest.fixture
def stored(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    csv_path, json_path = update_leaderboard(run_dir, tmp_path / "leaderboards")
    return run_dir, csv_path, json_path


def test_update_writes_one_row_per_method_and_the_per_seed_values(stored):
    _, csv_path, json_path = stored
    assert (csv_path.name, json_path.name) == ("tiny.csv", "tiny.json")
    table = pd.read_csv(csv_path)
    assert list(table.columns) == LEADERBOARD_COLUMNS
    # ranked by the headline win rate: rlp_spg (50) above ppo (42)
    assert list(table["method"]) == ["rlp_spg", "ppo"] and set(table["seeds"]) == {2}
    # Means over the fixture's two seeds: ppo farm (40 + 44) / 2 = 42, rlp_spg rm_drift (0.04 + 0.06) / 2 = 0.05.
    assert table.loc[1, "farm_win_rate"] == 42.0 and table.loc[0, "rm_drift"] == pytest.approx(0.05)
    # alpaca_eval's counts, summed over seeds (the fixture records 2 wins and 1 draw per seed, not the rest)
    assert (table.loc[1, "farm_n_wins"], table.loc[1, "farm_n_draws"]) == (4, 2)
    assert math.isnan(table.loc[1, "farm_n_total"]) and math.isnan(table.loc[1, "farm_discrete_win_rate"])
    record = json.loads(json_path.read_text())
    assert record["command"] == {"preset": "tiny", "methods": ["ppo", "rlp_spg"], "seeds": 2}
    assert record["per_seed"]["ppo"]["farm_win_rate"] == {"values": [40.0, 44.0], "standard_errors": [3.0, 3.4]}
    # each metric's spec as the run recorded it; an unbounded end of a range is null
    assert record["metrics"]["rm_drift"] == {"higher_is_better": False, "unit": "fraction", "low": -1.0, "high": 1.0}
    assert record["metrics"]["kl"] == {"higher_is_better": None, "unit": "nats", "low": None, "high": None}
    assert record["schema"] == 3
    assert record["tolerances"]["percent"] == {"floor": 5.0, "relative": 0.0, "k_se": 3.0, "cap": 8.0}
    assert record["tolerances"]["seconds"]["cap"] is None  # no cap, stored as null
    # the CSV's standard-error columns are the means of the metric's per-seed standard errors
    assert table.loc[1, "farm_standard_error"] == pytest.approx(3.2)
    # the run's paired comparisons, as results.json holds them (written by the report when the run lacked them)
    assert [(c["method"], c["baseline"], c["eval_set"]) for c in record["comparisons"]] == [
        ("rlp_spg", "ppo", "farm"), ("rlp_spg", "ppo", "bar")]
    assert "farm_standard_error" not in record["metrics"]
    assert "tolerance = min(cap, max(floor" in record["tolerance_rule"]
    assert record["provenance"]["config"]["preset"] == "tiny" and "packages" in record["provenance"]


def test_load_round_trips_and_nan_is_stored_as_null(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    results["methods"]["ppo"]["metrics"]["rm_drift"].update(mean=math.nan, values=[math.nan, math.nan])
    (run_dir / "results.json").write_text(json.dumps(results))
    _, json_path = update_leaderboard(run_dir, tmp_path / "lb")
    assert "NaN" not in json_path.read_text()  # strict JSON: NaN became null
    board = load_leaderboard("tiny", tmp_path / "lb")
    assert board.methods == ["ppo", "rlp_spg"] and board.seeds == 2
    assert math.isnan(board.table.loc[1, "rm_drift"]) and all(math.isnan(v) for v in board.per_seed["ppo"]["rm_drift"])
    assert board.per_seed["rlp_spg"]["farm_win_rate"] == [48.0, 52.0]
    assert board.tolerances == TOLERANCES and board.specs["train_wall_s"] == TRAINING_TIME
    assert board.specs["rm_drift"] == DRIFT and board.standard_errors["ppo"]["farm_win_rate"] == [3.0, 3.4]


def _rewrite_csv(path: Path, edit) -> None:
    edit(pd.read_csv(path, dtype=str)).to_csv(path, index=False)


@pytest.mark.parametrize("damage, message", [
    (lambda csv: csv.unlink(), r"tiny\.csv: no such file"),
    (lambda csv: csv.write_text(""), r"tiny\.csv: the file is empty"),
    (lambda csv: csv.write_text(",".join(LEADERBOARD_COLUMNS) + "\n"), r"tiny\.csv: the file has a header but no rows"),
    (lambda csv: _rewrite_csv(csv, lambda t: t.drop(columns="kl")), r"tiny\.csv: missing column 'kl'"),
    (lambda csv: _rewrite_csv(csv, lambda t: t.assign(rm_drift=["0.1", "lots"])),
     r"tiny\.csv: column 'rm_drift', method 'ppo': 'lots' is not a finite number"),
    (lambda csv: _rewrite_csv(csv, lambda t: t.assign(method=["ppo", "dpo2"])),
     r"tiny\.csv: unknown method 'dpo2'"),
    (lambda csv: csv.with_suffix(".json").unlink(), r"tiny\.json: no such file"),
    (lambda csv: csv.with_suffix(".json").write_text("{not json"), r"tiny\.json: not valid JSON"),
])
def test_malformed_leaderboards_raise_one_line_naming_the_file(stored, damage, message):
    _, csv_path, _ = stored
    damage(csv_path)
    with pytest.raises(LeaderboardError, match=message) as caught:
        load_leaderboard("tiny", csv_path.parent)
    assert "\n" not in str(caught.value)


def test_an_interrupted_update_leaves_the_old_leaderboard_intact(stored, tmp_path, monkeypatch, make_run_dir):
    _, csv_path, json_path = stored
    before = csv_path.read_bytes(), json_path.read_bytes()
    newer = make_run_dir(tmp_path / "newer")
    results = json.loads((newer / "results.json").read_text())
    results["methods"]["ppo"]["metrics"]["farm_win_rate"]["mean"] = 99.0
    (newer / "results.json").write_text(json.dumps(results))

    real_write_text = Path.write_text

    def write_half_then_fail(self, text, *args, **kwargs):
        if self.name.endswith(".tmp") and self.parent == csv_path.parent:
            real_write_text(self, text[: len(text) // 2])
            raise OSError("No space left on device")
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        update_leaderboard(newer, csv_path.parent)
    monkeypatch.undo()
    assert (csv_path.read_bytes(), json_path.read_bytes()) == before
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["tiny.csv", "tiny.json"]  # no temporaries left
    assert load_leaderboard("tiny", csv_path.parent).table.loc[1, "farm_win_rate"] == 42.0


def test_a_metric_is_stored_with_the_spec_its_run_recorded_whatever_its_name(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    for entry in results["methods"].values():  # a wall time recorded as better higher, at most 100 s: the record decides
        entry["metrics"]["train_wall_s"].update(higher_is_better=True, low=0.0, high=100.0)
    (run_dir / "results.json").write_text(json.dumps(results))
    update_leaderboard(run_dir, tmp_path / "lb")
    board = load_leaderboard("tiny", tmp_path / "lb")
    assert board.specs["train_wall_s"].higher_is_better is True and board.specs["train_wall_s"].high == 100.0
    for entry in results["methods"].values():
        entry["metrics"]["train_wall_s"]["higher_is_better"] = False
    results["methods"]["ppo"]["metrics"]["train_wall_s"]["higher_is_better"] = True
    (run_dir / "results.json").write_text(json.dumps(results))
    with pytest.raises(ValueError, match="metric 'train_wall_s': its methods record different specs"):
        update_leaderboard(run_dir, tmp_path / "lb")


def test_a_leaderboard_of_the_previous_schema_is_refused_in_one_line(stored):
    _, _, json_path = stored
    record = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**record, "schema": 2}))
    with pytest.raises(LeaderboardError, match=r"tiny\.json: schema 2, this harness reads schema 3; rebuild it"):
        load_leaderboard("tiny", json_path.parent)


def test_a_tolerance_rule_rejects_negative_values():
    with pytest.raises(ValueError, match=r"^floor: got -1; allowed: a number in \[0, inf\)$"):
        leaderboard.ToleranceRule(floor=-1)
    with pytest.raises(ValueError, match=r"^k_se: got inf; allowed: a number in \[0, inf\)$"):
        leaderboard.ToleranceRule(floor=1, k_se=math.inf)


def test_a_leaderboard_stored_before_counts_and_comparisons_still_loads(stored):
    _, csv_path, json_path = stored
    _rewrite_csv(csv_path, lambda t: t.drop(columns=COUNT_COLUMNS))
    record = json.loads(json_path.read_text())
    del record["comparisons"]
    json_path.write_text(json.dumps(record))
    board = load_leaderboard("tiny", csv_path.parent)
    assert board.comparisons == [] and board.table[COUNT_COLUMNS].isna().all().all()
    record["comparisons"] = "yes"
    json_path.write_text(json.dumps(record))
    with pytest.raises(LeaderboardError, match=r"tiny\.json: 'comparisons' must be a list"):
        load_leaderboard("tiny", csv_path.parent)


def test_alpaca_eval_counts_by_hand():
    per_seed = [{"details": {"eval_sets": {"farm": {"n_wins": 3, "n_draws": 1, "n_total": 5,
                                                     "discrete_win_rate": 70.0}}}},
                {"details": {"eval_sets": {"farm": {"n_wins": 2, "n_draws": 0, "n_total": 5,
                                                     "discrete_win_rate": 40.0}}}}]
    counts = alpaca_eval_counts(per_seed)
    assert (counts["farm_n_wins"], counts["farm_n_draws"], counts["farm_n_total"]) == (5, 1, 10)
    assert counts["farm_discrete_win_rate"] == 55.0 and math.isnan(counts["bar_n_wins"])
