"""The report's answer to "does RLP beat PPO?": the paired win-rate difference, and the mechanism behind it.

For each RLP variant in the run and each evaluation set: RLP - PPO in win-rate points with its 95% interval, paired
over seeds and items (:func:`harness.evals.paired.paired_difference`) from the per-item verdicts the win-rate
stages keep. Then the mechanism the paper proposes: how often SPG's synthetic pairs agree with the gold judge and
with the training annotator (the paper's Table 5: 59% against its annotator), and whether the refined reward model
judges the final RLP policy's samples better than the original reward model does (the paper's claim, which it
never measured).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from harness.evals.paired import paired_difference
from harness.report.content import resolve_stage
from harness.report.sections import Paragraph, Section, Table, plus_minus
from harness.stats import stored_number

PAPER_SPG_ANNOTATOR_ACCURACY = 0.59  # Lang et al. (2024), Table 5: SPG's synthetic pairs against their annotator

HOW = (
    "RLP - PPO is the difference of the two methods' win rates against the reference, in points, on the same "
    "instructions. For each seed and item the difference of the two verdicts (win 1, tie 0.5, loss 0) is taken; "
    "items are pooled across seeds, and the 95% interval treats seeds and items as crossed random effects: "
    "Var(mean) = (MS_seed + MS_item - MS_residual) / (seeds x items) from the two-way ANOVA mean squares, with "
    "Satterthwaite's degrees of freedom for the t quantile (one seed: the paired t-interval over items). Pairing "
    "on items cancels the difficulty both methods share; the seed term keeps the training seeds' own variation. "
    "An item without a verdict for either method in any seed is left out."
)


def rlp_vs_ppo_section(run_dir: Path, results: dict) -> Section | None:
    """The section, or None unless the run has PPO and at least one RLP variant."""
    methods = results["methods"]
    variants = [name for name in methods if name.startswith("rlp_")]
    if "ppo" not in methods or not variants:
        return None
    comparisons = ([("ppo", "sft")] if "sft" in methods else []) + [(variant, "ppo") for variant in variants]
    blocks = [Paragraph(HOW + " The first row, where SFT ran, is the baseline's own check: RLP's question means "
                        "something only in a world where PPO beats SFT."),
              difference_table(run_dir, methods, comparisons)]
    spg = spg_pair_accuracy_table(results.get("diagnostics", {}).get("rlp_spg", []))
    if spg is not None:
        blocks += [Paragraph("Mechanism, step 1: how often SPG's synthetic pairs (chosen = the reward model's "
                             "favourite of the largest cluster, rejected = an output of another cluster) agree "
                             "with each annotator, pooled over seeds."), spg]
    models = reward_model_table(methods, variants)
    if models is not None:
        blocks += [Paragraph("Mechanism, step 2: on judged pairs of fresh samples of the final RLP policy (the "
                             "second PPO's), the accuracy of the original reward model and of the refined one it "
                             "was trained against, both scored on the same pairs. RLP's premise is that the "
                             "refined model is the more accurate one there."), models]
    return Section("Does RLP beat PPO?", tuple(blocks))


def item_wins(run_dir: Path, method: str, entry: dict, eval_set: str) -> dict[int, tuple[list[str], list[float]]]:
    """Per seed: the instructions of ``eval_set`` in order and the method's share of each verdict (NaN: none).

    Read from the win-rate stage's ``annotations.json`` (alpaca_eval's file, reference first: ``preference`` 1
    means the reference won, 2 the model). Seeds whose stage dir is gone are left out.
    """
    wins = {}
    for record in entry["per_seed"]:
        details = record.get("details", {}).get("eval_sets", {}).get(eval_set)
        stage = resolve_stage(run_dir, details.get("stage", ""), method, record["seed"], eval_set) if details else None
        if stage is None:
            continue
        annotations = json.loads((stage / "annotations.json").read_text())
        wins[record["seed"]] = ([a["instruction"] for a in annotations],
                                [math.nan if a["preference"] is None else a["preference"] - 1 for a in annotations])
    return wins


def paired_items(rlp: dict, ppo: dict) -> tuple[list[list[float]], list[list[float]]] | None:
    """The two methods' verdict shares on the seeds both have, items with a verdict everywhere; None if unpaired."""
    seeds = sorted(set(rlp) & set(ppo))
    if not seeds or any(rlp[s][0] != ppo[s][0] for s in seeds) or len({tuple(rlp[s][0]) for s in seeds}) != 1:
        return None  # different instructions: nothing to pair on
    a = np.array([rlp[s][1] for s in seeds], dtype=float)
    b = np.array([ppo[s][1] for s in seeds], dtype=float)
    keep = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
    return a[:, keep].tolist(), b[:, keep].tolist()


def difference_table(run_dir: Path, methods: dict, comparisons: list[tuple[str, str]]) -> Table:
    """One row per (method, baseline) pair and evaluation set: method - baseline in points with its 95% interval."""
    eval_sets = list(methods["ppo"]["per_seed"][0].get("details", {}).get("eval_sets", {}))
    rows = []
    for method, baseline in comparisons:
        for eval_set in eval_sets:
            pairs = paired_items(item_wins(run_dir, method, methods[method], eval_set),
                                 item_wins(run_dir, baseline, methods[baseline], eval_set))
            if pairs is None or not pairs[0] or not pairs[0][0]:
                rows.append((method, baseline, eval_set, "per-item verdicts not found", "–", "–", "–", "–"))
                continue
            r = paired_difference(*pairs)
            rows.append((method, baseline, eval_set, f"{100 * r['difference']:+.1f} ± {100 * r['half_width']:.1f}",
                         f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]", _verdict(r, method, baseline),
                         str(r["n_seeds"]), str(r["n_items"])))
    return Table(header=("method", "minus", "eval set", "difference (points, ± 95%)", "95% interval", "reading",
                         "seeds", "items"), rows=tuple(rows))


def _verdict(result: dict, method: str, baseline: str) -> str:
    if result["low"] > 0:
        return f"{method} better"
    if result["high"] < 0:
        return f"{baseline} better"
    return "no difference resolved"


def pooled_agreement(records: list[dict]) -> dict:
    """SPG pair-accuracy records (:func:`harness.trainers.clustering.pair_accuracy`) pooled over seeds, with a binomial
    standard error: agreeing pairs / decisive judgements (ties left out)."""
    agree = sum(r["n_agree"] for r in records)
    decisive = sum(r["n"] - r["n_ties"] for r in records)
    accuracy = agree / decisive if decisive else math.nan
    error = math.sqrt(accuracy * (1 - accuracy) / decisive) if decisive else math.nan
    return {"accuracy": accuracy, "standard_error": error, "decisive": decisive,
            "ties": sum(r["n_ties"] for r in records)}


def spg_pair_accuracy_table(diagnostics: list[dict]) -> Table | None:
    """SPG's synthetic pairs against each annotator measured, beside the paper's figure; None without SPG."""
    by_annotator: dict[str, list[dict]] = {}
    for seed in diagnostics:
        for annotator, record in seed.get("pair_accuracy", {}).items():
            by_annotator.setdefault(annotator, []).append(record)
    if not by_annotator:
        return None
    rows = []
    for annotator, records in by_annotator.items():
        pooled = pooled_agreement(records)
        paper = f"{PAPER_SPG_ANNOTATOR_ACCURACY:.2f}" if annotator == "training" else "–"
        rows.append((annotator, plus_minus(pooled["accuracy"], pooled["standard_error"]), str(pooled["decisive"]),
                     str(pooled["ties"]), paper))
    return Table(header=("annotator", "agreement with SPG's pairs", "decisive pairs", "ties", "paper (Table 5)"),
                 rows=tuple(rows),
                 notes=("gold: the noise-free judge; training: the simulated annotator of the preference split, "
                        "the paper's reference for its 59%.",))


def reward_model_table(methods: dict, variants: list[str]) -> Table | None:
    """Per RLP variant: the original and refined reward models' accuracy on the final policy's judged pairs."""
    rows = []
    for variant in variants:
        seeds = [r["details"]["reward_models_on_policy"] for r in methods[variant]["per_seed"]
                 if "reward_models_on_policy" in r.get("details", {})]
        if not seeds:
            continue
        original = _mean_with_error([s["original"]["accuracy"] for s in seeds],
                                    [s["original"]["standard_error"] for s in seeds])
        refined = _mean_with_error([s["refined"]["accuracy"] for s in seeds],
                                   [s["refined"]["standard_error"] for s in seeds])
        gain = _mean_with_error([s["refined_minus_original"]["difference"] for s in seeds],
                                [s["refined_minus_original"]["standard_error"] for s in seeds])
        rows.append((variant, plus_minus(*original), plus_minus(*refined), plus_minus(*gain),
                     str(sum(s["original"]["n"] for s in seeds)), str(len(seeds))))
    if not rows:
        return None
    return Table(header=("RLP variant", "original RM accuracy", "refined RM' accuracy", "RM' - RM (paired)",
                         "judged pairs", "seeds"), rows=tuple(rows),
                 notes=("Means over seeds ± standard error (each seed's binomial or paired error, combined as "
                        "independent: sqrt(sum of squares) / seeds). A pair counts when the model scores the gold "
                        "judge's preferred sample higher; gold ties are left out.",))


def _mean_with_error(values: list[float | None], errors: list[float | None]) -> tuple[float, float]:
    """Mean over seeds and the standard error of that mean from each seed's own error; NaN where a seed has no
    number (``results.json`` stores NaN as null)."""
    values, errors = [stored_number(v) for v in values], [stored_number(e) for e in errors]
    n = len(values)
    return sum(values) / n, math.sqrt(sum(e * e for e in errors)) / n
