"""The report's first screen: the answer (PPO - SFT, each RLP variant - PPO), the warnings, every comparison.

Built from the run's stored comparisons (``results["comparisons"]``, :func:`harness.evals.paired.compare_methods`),
written by :func:`harness.stats.comparison_line` as the console writes them, and from the metrics' per-seed values
for the flags. Three sections, shown before the results table:

- **Verdict**: PPO - SFT (RLP's question means something only where PPO beats SFT), each RLP variant - PPO, then
  every other method - PPO, on the headline win rate. Where the run has the positive control
  (:data:`POSITIVE_CONTROL`, RLP's supervised counterpart, labelled by the training annotator), the headroom
  ``online_rlhf - ppo`` and each RLP variant's share of it recovered; where it has the gold-label ceiling
  (:data:`GOLD_CEILING`), ``online_rlhf_gold - ppo``, the most that labels on the policy's samples gained here.
- **Flags**: what should stop a reader trusting a number: a reward model below chance, seeds that disagree more
  than their evaluation noise allows, a refined reward model less accurate than the one it replaced.
- **Paired comparisons**: every method against PPO and against SFT on every evaluation set, with per-seed values.
"""

from __future__ import annotations

import math

from harness.evals.paired import seeds_for_mde
from harness.report.sections import Bullets, Paragraph, Section, Table
from harness.stats import comparison_line, comparison_text, comparisons_on, signed, stored_number

HEADLINE = "farm_win_rate"  # the metric the verdict is read on: the in-distribution set's win rate
POSITIVE_CONTROL = "online_rlhf"  # RLP's supervised counterpart; its lead over PPO is the headroom RLP can win
GOLD_CEILING = "online_rlhf_gold"  # the same with noise-free labels: the most on-policy labels can gain here
CHANCE = {"rm_acc_offline": 0.5, "rm_acc_step0": 0.5, "rm_acc_onpolicy": 0.5}  # a coin flip's pairwise accuracy
KL_SPREAD = 2.0  # a method's per-seed KL differing by this factor or more: its seeds did not train alike
TARGET_MDE = 3.0  # points: the size of the paper's claims (RLP-UML +2.3, RLP-SPG +3.4 over PPO on AlpacaFarm)


def is_rlp(name: str) -> bool:
    """RLP's variants are named ``rlp_*``."""
    return name.startswith("rlp_")


def verdict_section(results: dict) -> Section:
    """The answer on the headline metric, then the flags."""
    by_pair = {(c["method"], c["baseline"]): c for c in comparisons_on(results, HEADLINE)}
    methods = list(results["methods"])
    lines = []
    if "ppo" not in methods:
        lines.append("No ppo in this run: RLP's question (does it beat PPO?) needs it; add it to --methods.")
    for pair in [("ppo", "sft"), *((m, "ppo") for m in methods if is_rlp(m))]:
        if pair in by_pair:
            lines.append(comparison_line(by_pair[pair]))
    lines += headroom_lines(by_pair, [m for m in methods if is_rlp(m)])
    others = [by_pair[(m, "ppo")] for m in methods
              if (m, "ppo") in by_pair and not is_rlp(m) and m not in (POSITIVE_CONTROL, GOLD_CEILING)]
    lines += [comparison_line(c) for c in others]
    if not by_pair and "comparisons" not in results:
        lines.append("No paired comparisons in results.json (written before the harness stored them).")
    problems = flags(results)
    blocks = [Bullets(tuple(lines))] if lines else []
    blocks += [Paragraph("Flags:" if problems else "Flags: none (no reward model below chance, no seeds that "
                         "disagree beyond their evaluation noise, no refined reward model worse than its original)."),
               *([Bullets(tuple(problems))] if problems else [])]
    return Section("Verdict", tuple(blocks))


def headroom_lines(by_pair: dict[tuple[str, str], dict], variants: list[str]) -> list[str]:
    """With the positive control in the run: ``headroom: online_rlhf - ppo ...`` and each RLP variant's share of
    it, ``(rlp - ppo) / (online_rlhf - ppo)``, from the point estimates; no share where no headroom is resolved.
    With the gold-label ceiling, its line first: ``ceiling (gold labels): online_rlhf_gold - ppo ...``."""
    ceiling = by_pair.get((GOLD_CEILING, "ppo"))
    lines = [f"ceiling (gold labels): {comparison_line(ceiling)}"] if ceiling else []
    headroom = by_pair.get((POSITIVE_CONTROL, "ppo"))
    if headroom is None:
        return lines
    lines.append(f"headroom: {comparison_line(headroom)}")
    if headroom["verdict"] != "better":
        return lines + [f"No headroom resolved ({POSITIVE_CONTROL} does not beat ppo), so no RLP variant's share "
                        "of it is computed."]
    for variant in variants:
        gain = by_pair.get((variant, "ppo"))
        if gain is not None and not math.isnan(stored_number(gain["difference"])):
            share = gain["difference"] / headroom["difference"]
            lines.append(f"{variant} recovers {100 * share:.0f}% of the headroom ({signed(gain['difference'])} of "
                         f"{signed(headroom['difference'])} points; point estimates)")
    return lines


def flags(results: dict) -> list[str]:
    """Plain-text warnings: reward models below chance, unstable seeds, refined reward models worse than their
    original."""
    found = []
    for name, entry in results["methods"].items():
        metrics = entry["metrics"]
        for metric, chance in CHANCE.items():
            summary = metrics.get(metric)
            if summary is None or not summary["mean"] < chance:  # NaN is not below
                continue
            high = summary["mean"] + stored_number(summary.get("ci95"))
            resolved = "its whole 95% interval" if high < chance else "its mean, not its whole interval,"
            found.append(f"{name}: {metric} = {summary['mean']:.3f} is below chance ({chance}): {resolved} is "
                         "under a coin flip's accuracy.")
        found += _unstable(name, metrics)
        gains = [stored_number(r.get("details", {}).get("reward_models_on_policy", {})
                               .get("refined_minus_original", {}).get("difference")) for r in entry["per_seed"]]
        gains = [g for g in gains if not math.isnan(g)]
        if gains and sum(gains) / len(gains) < 0:
            found.append(f"{name}: its refined reward model is less accurate than the original on its final "
                         f"policy's samples ({sum(gains) / len(gains):+.3f} mean over seeds), against RLP's premise.")
    return found


def _unstable(name: str, metrics: dict) -> list[str]:
    """Seeds that disagree: KL differing by :data:`KL_SPREAD` x or more, or a headline win rate whose seeds span
    more than twice one seed's 95% evaluation interval (more than evaluation noise explains)."""
    found = []
    kl = [v for v in metrics.get("kl", {}).get("values", []) if not math.isnan(stored_number(v))]
    if len(kl) > 1 and min(kl) > 0 and max(kl) / min(kl) >= KL_SPREAD:
        found.append(f"{name}: seeds unstable, KL per seed {' / '.join(f'{v:.2f}' for v in kl)} "
                     f"({max(kl) / min(kl):.1f}x between the extremes).")
    summary = metrics.get(HEADLINE)
    if summary is not None:
        values = [v for v in map(stored_number, summary["values"]) if not math.isnan(v)]
        errors = [e for e in map(stored_number, summary["standard_errors"]) if not math.isnan(e)]
        if len(values) > 1 and errors:
            allowed = 2 * 1.96 * sum(errors) / len(errors)
            if max(values) - min(values) > allowed:
                found.append(f"{name}: seeds unstable, {HEADLINE} per seed "
                             f"{' / '.join(f'{v:.1f}' for v in values)}: a spread of {max(values) - min(values):.1f} "
                             f"points, more than twice one seed's 95% evaluation interval ({allowed:.1f}).")
    return found


def comparisons_section(results: dict) -> Section | None:
    """Every stored comparison, on every evaluation set, with its per-seed differences; None without any."""
    comparisons = results.get("comparisons", [])
    if not comparisons:
        return None
    rows = tuple((c["method"], c["baseline"], c["eval_set"], *_cells(c)) for c in comparisons)
    return Section("Paired comparisons", (
        Paragraph("Every method against PPO and against SFT, on each evaluation set's win rate, in points: the "
                  "difference of the two methods' verdicts (win 1, tie 0.5, loss 0) on the same instructions, its "
                  "95% interval and minimum detectable effect (see the footnote on intervals under Results). "
                  f"Seeds for MDE {TARGET_MDE:g}: how many seeds the same items would need for a minimum detectable "
                  f"effect of {TARGET_MDE:g} points (the size of the paper's claims), projected from this run's "
                  "seed, item and residual variances (more than 100: 'over 100'; one seed: '–', no seed variance)."),
        Table(header=("method", "minus", "eval set", "difference [95% interval], MDE", "verdict", "per seed",
                      "seeds", "items", f"seeds for MDE {TARGET_MDE:g}"), rows=rows),
    ))


def _cells(c: dict) -> tuple[str, ...]:
    per_seed = " / ".join(signed(v) for v in c.get("per_seed", [])) or "–"
    components = c.get("variance_components")
    needed = seeds_for_mde(components, c["n_items"], TARGET_MDE)
    seeds = "–" if components is None else "over 100" if needed is None else str(needed)
    return comparison_text(c), c["verdict"], per_seed, str(c["n_seeds"]), str(c["n_items"]), seeds
