"""The drift metric split by pair kind: what the reward model gets right on its policy's own samples.

``rm_acc_step0`` and ``rm_acc_onpolicy`` are one accuracy each, and one accuracy can hide a reward model that only
spots the easy kind of pair: in the tiny world an SFT policy that often evades gives many "answer vs evasion"
pairs, which a reward model learns at once, while PPO's samples, which stop evading, are mostly "right vs wrong".
So the report splits both ends of the drift by the suite's pair kind (where its gold can tell), pooled over seeds.
"""

from __future__ import annotations

from harness.core.rm_accuracy import length_rule
from harness.report.refinement import pooled_accuracy
from harness.report.sections import Paragraph, Section, Table, plus_minus
from harness.stats import Z_975

ALL_PAIRS = "all judged pairs"
ENDS = ((0, "SFT policy (step 0)"), (-1, "final checkpoint"))


def drift_kind_section(results: dict) -> Section | None:
    """Per method with a drift curve: its reward model's accuracy on the held-out val pairs, and at step 0 and at
    the final checkpoint, overall and per pair kind, pooled over seeds, each beside the better length rule's on the
    same pairs; None when no method has kinds in its curve."""
    rows = []
    for method, entry in results["methods"].items():
        seeds = [r["details"] for r in entry["per_seed"] if "drift" in r.get("details", {})]
        curves = [details["drift"]["curve"] for details in seeds]
        if not any("by_kind" in curve[0] for curve in curves):
            continue
        val = [details["val_pairs"] for details in seeds if "val_pairs" in details]
        if val:
            rows.append(_row(method, "held-out val pairs", ALL_PAIRS, [v["reward_model"] for v in val],
                             [v["prefer_shorter"] for v in val]))
        for index, distribution in ENDS:
            points = [curve[index] for curve in curves]
            kinds = sorted({kind for point in points for kind in point.get("by_kind", {})})
            for kind in (ALL_PAIRS, *kinds):
                records = points if kind == ALL_PAIRS else [p["by_kind"][kind] for p in points
                                                            if kind in p.get("by_kind", {})]
                rows.append(_row(method, distribution, kind, records,
                                 [r["prefer_shorter"] for r in records if "prefer_shorter" in r]))
    if not rows:
        return None
    return Section("Reward-model accuracy on the policy's own samples, by pair kind", (
        Paragraph("The two ends of rm_drift, split by what separates each judged pair in gold's eyes (in the tiny "
                  "world a right answer against a wrong one, a right answer against an evasion, or form only). "
                  "Each method's own reward model scores pairs of fresh samples (two per val instruction, "
                  "temperature 1) of the policy PPO starts from and of its final checkpoint; pooled over seeds. "
                  "Beside it, the better of two rules that read length alone, \"prefer the shorter\" and \"prefer "
                  "the longer\" (in words), on the same pairs: a reward model that does not beat it may have "
                  "learnt length, not quality."),
        Table(header=("method", "samples of", "pair kind", "reward model", "length rule", "judged pairs"),
              rows=tuple(rows),
              notes=("± is the 95% half-width, 1.96 x the binomial standard error over the pooled pairs.",)),
    ))


def _row(method: str, distribution: str, kind: str, model: list[dict], shorter: list[dict]) -> tuple[str, ...]:
    """One table row: the reward model's pooled accuracy and the better length rule's (blank where no record
    holds it, as in runs made before it was measured)."""
    accuracy, error, n = pooled_accuracy(model)
    rule = ""
    if shorter:
        rule_accuracy, rule_error, _ = pooled_accuracy(shorter)
        best, name = length_rule(rule_accuracy)
        rule = f"{plus_minus(best, Z_975 * rule_error)} ({name})"
    return (method, distribution, kind, plus_minus(accuracy, Z_975 * error), rule, str(n))
