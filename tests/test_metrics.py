"""Metric records: what they accept, their JSON round trip through results.json, and the held-out accuracy of a
policy with and without a reward model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness import results_json
from harness.core.metrics import Metric, MetricError, MetricSpec
from harness.core.rm_accuracy import ACCURACY, DRIFT
from harness.core.types import TrainedPolicy
from harness.evals.evaluate import held_out_accuracy
from harness.leaderboard import load_results
from harness.pipeline import aggregate


@pytest.mark.parametrize("spec, message", [
    (dict(higher_is_better=1, unit="percent"), "higher_is_better: must be true, false or null, got 1"),
    (dict(higher_is_better=True, unit="points"), "unit: 'points' is not a unit; allowed: percent, fraction"),
    (dict(higher_is_better=True, unit="fraction", low=1.0, high=0.0), "low: 1.0 is above high 0.0"),
    (dict(higher_is_better=None, unit="nats", low=math.nan), "low: must be a number or null (unbounded), got nan"),
])
def test_a_spec_refuses_what_no_metric_can_be(spec, message):
    with pytest.raises(MetricError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MetricSpec(**spec)


def test_a_metric_round_trips_through_strict_json():
    unbounded = Metric(math.nan, MetricSpec(None, "nats"), n=None)
    text = results_json.dumps({"kl": unbounded, "drift": Metric(0.2, DRIFT, 0.05, 40)})
    stored = json.loads(text)
    assert stored["kl"] == {"value": None, "standard_error": None, "n": None, "higher_is_better": None,
                            "unit": "nats", "low": None, "high": None}
    back = Metric.from_json(stored["kl"])
    assert math.isnan(back.value) and back.spec == unbounded.spec and back.spec.high == math.inf
    assert Metric.from_json(stored["drift"]) == Metric(0.2, DRIFT, 0.05, 40)
    with pytest.raises(MetricError, match="unit: missing"):
        Metric.from_json({"value": 1.0, "higher_is_better": True})


def test_results_json_keeps_each_metrics_spec_standard_errors_and_n(tmp_path):
    odd = MetricSpec(higher_is_better=False, unit="reward", low=0.0)  # an unusual metric, lower is better
    per_seed = {"m": [{"seed": s, "points_of_pain": Metric(v, odd, se, 10), "details": {}}
                      for s, (v, se) in enumerate([(2.0, 0.5), (math.nan, math.nan)])]}
    results = aggregate("tiny", 2, per_seed)
    (tmp_path / "results.json").write_text(results_json.dumps(results))
    loaded = load_results(tmp_path)
    summary = loaded["methods"]["m"]["metrics"]["points_of_pain"]
    assert summary["mean"] == 2.0 and summary["n"] == 1 and summary["values"][0] == 2.0
    assert summary["standard_errors"][0] == 0.5 and math.isnan(summary["standard_errors"][1])
    assert MetricSpec.from_json(summary) == odd
    assert Metric.from_json(loaded["methods"]["m"]["per_seed"][1]["points_of_pain"]).n == 10
    per_seed["m"][1]["points_of_pain"] = Metric(1.0, ACCURACY)
    with pytest.raises(ValueError, match="metric 'points_of_pain': its seeds record different specs"):
        aggregate("tiny", 2, per_seed)


def test_held_out_accuracy_is_the_reward_stages_and_missing_without_a_reward_model(tmp_path):
    assert math.isnan(held_out_accuracy(TrainedPolicy("dpo", Path("policy"))).value)
    assert held_out_accuracy(TrainedPolicy("dpo", Path("policy"))).spec == ACCURACY
    (tmp_path / "metrics.json").write_text(json.dumps({"val": {"accuracy": 0.75, "standard_error": 0.05, "n": 80}}))
    assert held_out_accuracy(TrainedPolicy("sft", Path("policy"), reward_model=tmp_path)) == Metric(0.75, ACCURACY,
                                                                                                   0.05, 80)
