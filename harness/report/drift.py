"""The drift metric split by pair kind: what the reward model gets right on its policy's own samples.

``rm_acc_step0`` and ``rm_acc_onpolicy`` are one accuracy each, and one accuracy can hide a reward model that only
spots the easy kind of pair: in the tiny world an SFT policy that often evades gives many "answer vs evasion"
pairs, which a reward model learns at once, while PPO's samples, which stop evading, are mostly "right vs wrong".
So the report splits both ends of the drift by the suite's pair kind (where its gold can tell), pooled over seeds.
"""

from __future__ import annotations

from harness.report.refinement import pooled_accuracy
from harness.report.sections import Paragraph, Section, Table, plus_minus
from harness.stats import Z_975

ALL_PAIRS = "all judged pairs"
ENDS = ((0, "SFT policy (step 0)"), (-1, "final checkpoint"))


def drift_kind_section(results: dict) -> Section | None:
    """Per method with a drift curve: its reward model's accuracy at step 0 and at the final checkpoint, overall
    and per pair kind, pooled over seeds; None when no method has kinds in its curve."""
    rows = []
    for method, entry in results["methods"].items():
        curves = [r["details"]["drift"]["curve"] for r in entry["per_seed"] if "drift" in r.get("details", {})]
        if not any("by_kind" in curve[0] for curve in curves):
            continue
        for index, distribution in ENDS:
            points = [curve[index] for curve in curves]
            kinds = sorted({kind for point in points for kind in point.get("by_kind", {})})
            for kind in (ALL_PAIRS, *kinds):
                records = points if kind == ALL_PAIRS else [p["by_kind"][kind] for p in points
                                                            if kind in p.get("by_kind", {})]
                accuracy, error, n = pooled_accuracy(records)
                rows.append((method, distribution, kind, plus_minus(accuracy, Z_975 * error), str(n)))
    if not rows:
        return None
    return Section("Reward-model accuracy on the policy's own samples, by pair kind", (
        Paragraph("The two ends of rm_drift, split by what separates each judged pair in gold's eyes: a right "
                  "answer against a wrong one, a right answer against an evasion, or form (padding) only. Each "
                  "method's own reward model scores pairs of fresh samples (two per val instruction, temperature "
                  "1) of the policy PPO starts from and of its final checkpoint; pooled over seeds."),
        Table(header=("method", "samples of", "pair kind", "accuracy", "judged pairs"), rows=tuple(rows),
              notes=("± is the 95% half-width, 1.96 x the binomial standard error over the pooled pairs.",)),
    ))
