"""The mechanism behind RLP's result: do its synthetic pairs and refined reward models do what the paper claims?

Whether RLP beats PPO is the verdict's (:mod:`harness.report.verdict`, from the run's stored comparisons). This
section shows how often SPG's synthetic pairs agree with the gold judge and with the training annotator (the
paper's Table 5: 59% against its annotator); whether the refined reward models judge better than the original one
is :mod:`harness.report.refinement`'s.
"""

from __future__ import annotations

import math

from harness.report.labels import shown_name
from harness.report.sections import Paragraph, Section, Table, plus_minus
from harness.stats import Z_975, stored_number

PAPER_SPG_ANNOTATOR_ACCURACY = 0.59  # Lang et al. (2024), Table 5: SPG's synthetic pairs against their annotator


def mechanism_section(results: dict) -> Section | None:
    """The section, or None unless RLP-SPG ran and its pairs were judged."""
    blocks = []
    spg = spg_pair_accuracy_table(results.get("diagnostics", {}).get(shown_name(results, "rlp_spg"), []))
    if spg is not None:
        blocks += [Paragraph("How often SPG's synthetic pairs (chosen = the reward model's "
                             "favourite of the largest cluster, rejected = an output of another cluster) agree "
                             "with each annotator, pooled over seeds."), spg]
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
