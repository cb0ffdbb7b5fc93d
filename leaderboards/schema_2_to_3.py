"""Converts a stored leaderboard from schema 2 to schema 3, in place; the committed leaderboards were converted once
with it, so their numbers come from their own files, never typed by hand.

    PYTHONPATH=. python leaderboards/schema_2_to_3.py leaderboards/tiny.json leaderboards/smollm2-gpu.json

Schema 3 stores each metric's spec (direction, unit, range) as the measuring code defines it, and per seed the
metric's values with its standard errors over evaluation items. Schema 2 stored the standard errors of win rates and
of the knowledge task as columns of their own: they become the standard errors of the metrics the check paired them
with (a set's win-rate standard error for its win rate and its length-controlled win rate, ``knowledge_stderr`` for
``knowledge_acc``), so the check computes the same tolerances from a converted file; other metrics had none (null).
The CSV is unchanged. A leaderboard rebuilt by ``--update-leaderboard`` needs none of this.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.core.rm_accuracy import ACCURACY, DRIFT
from harness.evals.evaluate import KL, PROXY_REWARD
from harness.evals.mmlu import KNOWLEDGE_ACCURACY
from harness.evals.winrate import OUTPUT_LENGTH, WIN_RATE
from harness.leaderboard import LEADERBOARD_METRICS, TOLERANCE_RULE
from harness.pipeline import TRAINING_TIME

SPECS = {"farm_win_rate": WIN_RATE, "farm_lc_win_rate": WIN_RATE, "bar_win_rate": WIN_RATE,
         "bar_lc_win_rate": WIN_RATE, "knowledge_acc": KNOWLEDGE_ACCURACY, "rm_acc_offline": ACCURACY,
         "rm_acc_step0": ACCURACY, "rm_acc_onpolicy": ACCURACY, "rm_drift": DRIFT, "proxy_reward": PROXY_REWARD,
         "kl": KL, "avg_length": OUTPUT_LENGTH, "train_wall_s": TRAINING_TIME}
# Schema 2's standard-error columns, and the metrics whose tolerance each fed.
STANDARD_ERROR_OF = {"farm_win_rate": "farm_standard_error", "farm_lc_win_rate": "farm_standard_error",
                     "bar_win_rate": "bar_standard_error", "bar_lc_win_rate": "bar_standard_error",
                     "knowledge_acc": "knowledge_stderr"}
TOLERANCE_UNITS = {"win_rate": "percent", "accuracy": "fraction", "wall_time": "seconds", "other": "other"}


def convert(record: dict) -> dict:
    if record["schema"] != 2:
        raise SystemExit(f"schema {record['schema']!r}: this converts schema 2 only")
    for metric, spec in SPECS.items():
        if record["higher_is_better"][metric] is not spec.higher_is_better:
            raise SystemExit(f"{metric}: stored direction {record['higher_is_better'][metric]} is not the code's")
    seeds = record["command"]["seeds"]
    per_seed = {method: {metric: {"values": columns[metric],
                                  "standard_errors": columns[STANDARD_ERROR_OF[metric]] if metric in STANDARD_ERROR_OF
                                  else [None] * seeds}
                         for metric in LEADERBOARD_METRICS}
                for method, columns in record["per_seed"].items()}
    return {"schema": 3, "preset": record["preset"], "command": record["command"],
            "metrics": {metric: SPECS[metric].to_json() for metric in LEADERBOARD_METRICS},
            "tolerance_rule": TOLERANCE_RULE,
            "tolerances": {TOLERANCE_UNITS[kind]: rule for kind, rule in record["tolerances"].items()},
            "per_seed": per_seed, "provenance": record["provenance"]}


if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = Path(name)
        path.write_text(json.dumps(convert(json.loads(path.read_text())), indent=1, allow_nan=False) + "\n")
        print(f"{path}: schema 3")
