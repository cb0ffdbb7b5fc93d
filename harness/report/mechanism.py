"""The mechanism behind RLP's result: do its synthetic pairs and refined reward models do what the paper claims?

Whether RLP beats PPO is the verdict's (:mod:`harness.report.verdict`, from the run's stored comparisons). This
section shows why: how often SPG's synthetic pairs agree with the gold judge and with the training annotator (the
paper's Table 5: 59% against its annotator), and whether the refined reward model judges the final RLP policy's
samples better than the original reward model does (the paper's claim, which it never measured).
"""

from __future__ import annotations

import math

from harness.report.sections import Paragraph, Section, Table, plus_minus
from harness.stats import Z_975, stored_number

PAPER_SPG_ANNOTATOR_ACCURACY = 0.59  # Lang et al. (2024), Table 5: SPG's synthetic pairs against their annotator


def mechanism_section(results: dict) -> Section | None:
    """The section, or None unless the run has an RLP variant with SPG pairs or refined reward models measured."""
    methods = results["methods"]
    variants = [name for name in methods if name.startswith("rlp_")]
    blocks = []
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
    return Section("RLP's mechanism", tuple(blocks)) if blocks else None


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
        rows.append((annotator, plus_minus(pooled["accuracy"], Z_975 * pooled["standard_error"]),
                     str(pooled["decisive"]), str(pooled["ties"]), paper))
    return Table(header=("annotator", "agreement with SPG's pairs (± 95%)", "decisive pairs", "ties",
                         "paper (Table 5)"),
                 rows=tuple(rows),
                 notes=("gold: the noise-free judge; training: the simulated annotator of the preference split, "
                        "the paper's reference for its 59%. ± is 1.96 x the binomial standard error of the pooled "
                        "agreement.",))


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
        rows.append((variant, *(plus_minus(mean, Z_975 * error) for mean, error in (original, refined, gain)),
                     str(sum(s["original"]["n"] for s in seeds)), str(len(seeds))))
    if not rows:
        return None
    return Table(header=("RLP variant", "original RM accuracy", "refined RM' accuracy", "RM' - RM (paired)",
                         "judged pairs", "seeds"), rows=tuple(rows),
                 notes=("Means over seeds ± the 95% half-width, 1.96 x the standard error of the mean (each seed's "
                        "binomial or paired error, combined as independent: sqrt(sum of squares) / seeds). A pair "
                        "counts when the model scores the gold "
                        "judge's preferred sample higher; gold ties are left out.",))


def _mean_with_error(values: list[float | None], errors: list[float | None]) -> tuple[float, float]:
    """Mean over seeds and the standard error of that mean from each seed's own error; NaN where a seed has no
    number (``results.json`` stores NaN as null)."""
    values, errors = [stored_number(v) for v in values], [stored_number(e) for e in errors]
    n = len(values)
    return sum(values) / n, math.sqrt(sum(e * e for e in errors)) / n
