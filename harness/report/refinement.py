"""The report's look inside reward learning on policy: what each refinement added to the reward model's data, and
whether the refined reward model judges the policy's outputs better than the original one.

Three methods refine the reward model r on samples of the first PPO policy: RLP-UML (a multi-view loss), RLP-SPG
(synthetic pairs) and online RLHF (fresh training-annotator labels, the positive control). For each: per seed, how
many instructions were sampled and how many pairs the refinement added, their share of the refined model's data
and whether their chosen outputs are longer; then r and the refined r' on judged pairs of held-out samples of (a)
the first PPO policy, the distribution r' was refined on (the paper's claim), and (b) the final policy, which was
optimised against r'; by pair kind where the suite can tell; and UML's multi-view loss over its training steps.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure as MplFigure

from harness.report.labels import shown_name
from harness.report.plots import finish
from harness.report.sections import Figure, Paragraph, Section, Table, plus_minus
from harness.stats import Z_975, stored_number

REFINING_METHODS = ("rlp_uml", "rlp_spg", "online_rlhf", "online_rlhf_gold")
HALF_WIDTH = ("± is the 95% half-width, 1.96 x the standard error over the pooled pairs (binomial for an accuracy, "
              "paired for r' - r).")
# (details key, what the pairs are samples of)
DISTRIBUTIONS = (("reward_models_held_out", "first PPO policy (held out)"),
                 ("reward_models_on_policy", "final policy"))

EXPLANATION = (
    "r is the reward model trained on the preference split; r' is the one each method refined on samples of the "
    "first PPO policy and ran its second PPO against. Both score the same judged pairs of fresh samples (two per "
    "instruction, temperature 1) on val instructions that none of the refinement's instructions repeat: (a) of the "
    "first PPO policy, the distribution r' was refined on, where RLP claims r' is the better judge; (b) of the "
    "final policy, which was optimised against r', so r' may be exploited there by construction. A pair counts "
    "when a model scores the judge's preferred sample higher (half for equal scores); judge ties are left out. "
    "Pairs are pooled over seeds, and the standard error of r' - r is the paired one over pairs: it does not hold "
    "the variation of training r' with another seed."
)


def refinement_section(run_dir: Path, results: dict) -> Section | None:
    """The section, or None unless a method that refines the reward model ran; draws ``plots/uml_mib_loss.png``
    when RLP-UML recorded its loss curve."""
    methods, diagnostics = results["methods"], results.get("diagnostics", {})
    present = [name for method in REFINING_METHODS if (name := shown_name(results, method)) in methods]
    if not present:
        return None
    blocks: list = [Paragraph("Per seed: the instructions of U sampled from the first PPO policy (10 samples "
                              "each in the paper), the pairs each refinement added to the preference split D and "
                              "their share of the refined reward model's data, and how often a pair's chosen output "
                              "has more (or fewer) words than its rejected one: a length preference carried over "
                              "from r would show as more longer than shorter."),
                    refinement_table(diagnostics, present)]
    accuracy, by_kind = accuracy_table(methods, present), kind_table(methods, present)
    if accuracy is not None:
        blocks += [Paragraph(EXPLANATION), accuracy]
    if by_kind is not None:
        blocks += [Paragraph("The same pairs by what separates the two samples in the suite's gold: a right answer "
                             "against a wrong one, a right answer against an evasion, or form (padding) only."),
                   by_kind]
    curves = {seed.get("seed"): seed["mib_curve"]
              for seed in diagnostics.get(shown_name(results, "rlp_uml"), []) if seed.get("mib_curve")}
    if curves:
        plot_dir = Path(run_dir) / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_mib_curves(curves).savefig(plot_dir / "uml_mib_loss.png", dpi=100)
        blocks += [Paragraph("RLP-UML's refined reward model over its training steps, one line per seed: the "
                             "multi-view loss L_M it adds (weighted by lambda) beside the Bradley-Terry loss. An "
                             "L_M that does not fall has not moved the representation."),
                   Figure("RLP-UML: L_M and the Bradley-Terry loss per step", "plots/uml_mib_loss.png")]
    return Section("Reward learning on policy: the refinement and its mechanism", tuple(blocks))


def refinement_table(diagnostics: dict, methods: list[str]) -> Table:
    """One row per method and seed: what its refinement drew from the first PPO policy's samples."""
    rows = []
    for method in methods:
        for seed in diagnostics.get(method, []):
            added = seed.get("n_pairs", seed.get("view_pairs"))
            gold = seed.get("gold_agreement") or {}
            rows.append((method, str(seed.get("seed", "–")),
                         _count(seed.get("n_instructions", seed.get("instructions"))),
                         _count(seed.get("n_accepted")),
                         _count(added) + (" view pairs" if "view_pairs" in seed else ""),
                         _share(seed.get("share_of_reward_data")),
                         _share(seed.get("chosen_longer_share")), _share(seed.get("chosen_shorter_share")),
                         _share(gold.get("accuracy")), _share(seed.get("gold_tie_share")),
                         _share(seed.get("score_spread_vs_r"), unit="x")))
    return Table(header=("method", "seed", "instructions sampled", "accepted", "pairs added", "share of r' data",
                         "chosen longer", "chosen shorter", "labels agree with gold", "gold ties",
                         "r' spread / r's"),
                 rows=tuple(rows),
                 notes=("accepted: SPG's instructions whose largest cluster holds at least gamma of the samples. UML "
                        "adds view pairs to a loss of their own, not pairs to D. Agreement with gold: online RLHF's "
                        "training-annotator labels on the pairs gold ranks (1 - its flip rate).",
                        "r' spread / r's: the standard deviation of r' over that of r on the SFT policy's samples, "
                        "which each PPO standardised its scores by (ppo.reward_normalization_samples; – where it "
                        "did not). Unstandardised, a spread k times r's would weigh the second PPO's scores k times "
                        "more against its KL penalty, as a kl_coef k times smaller would."))


def accuracy_table(methods: dict, present: list[str]) -> Table | None:
    """Per method and distribution: r and r' pooled over seeds, r' - r paired; None without any record."""
    rows = []
    for method in present:
        for key, distribution in DISTRIBUTIONS:
            records = _records(methods[method], key)
            if records:
                rows.append((method, distribution, *_comparison_cells(records), str(len(records))))
    if not rows:
        return None
    return Table(header=("method", "samples of", "r accuracy", "r' accuracy", "r' - r (paired)", "judged pairs",
                         "seeds"), rows=tuple(rows), notes=(HALF_WIDTH,))


def kind_table(methods: dict, present: list[str]) -> Table | None:
    """The accuracy table split by pair kind; None where the suite told no kinds."""
    rows = []
    for method in present:
        for key, distribution in DISTRIBUTIONS:
            records = _records(methods[method], key)
            kinds = sorted({kind for record in records for kind in record.get("by_kind", {})})
            for kind in kinds:
                per_kind = [record["by_kind"][kind] for record in records if kind in record.get("by_kind", {})]
                rows.append((method, distribution, kind, *_comparison_cells(per_kind)))
    if not rows:
        return None
    return Table(header=("method", "samples of", "pair kind", "r accuracy", "r' accuracy", "r' - r (paired)",
                         "judged pairs"), rows=tuple(rows), notes=(HALF_WIDTH,))


def pooled_accuracy(records: list[dict]) -> tuple[float, float, int]:
    """Accuracy records (:func:`harness.core.rm_accuracy.pairwise_accuracy`) pooled over seeds: credit / pairs, its
    binomial standard error and the pairs."""
    n = sum(int(r["n"]) for r in records)
    credit = sum(stored_number(r["accuracy"]) * r["n"] for r in records if r["n"])
    accuracy = credit / n if n else math.nan
    return accuracy, math.sqrt(accuracy * (1 - accuracy) / n) if n else math.nan, n


def pooled_difference(records: list[dict]) -> tuple[float, float]:
    """Paired differences (:func:`harness.core.rm_accuracy.paired_accuracy_difference`) pooled over seeds, exactly
    as if computed on all pairs at once: each seed's mean, standard error and n give back its sum and sum of
    squares. Returns the mean difference and its standard error (NaN with fewer than two pairs)."""
    n = total = squares = 0.0
    for record in records:
        k, mean, error = int(record["n"]), stored_number(record["difference"]), stored_number(record["standard_error"])
        if not k:
            continue
        n, total = n + k, total + k * mean
        squares += k * mean ** 2 + ((k - 1) * k * error ** 2 if k > 1 else 0.0)
    if n < 2:
        return (total / n if n else math.nan), math.nan
    mean = total / n
    return mean, math.sqrt(max(squares - n * mean ** 2, 0.0) / (n - 1) / n)


def plot_mib_curves(curves: dict[int, list[dict]]) -> MplFigure:
    """L_M and the Bradley-Terry loss against the step, one line per seed (``curves``: seed -> records)."""
    fig = MplFigure(figsize=(10, 3.4))
    mib_ax, bt_ax = fig.subplots(1, 2)
    for seed, curve in curves.items():
        steps = [record["step"] for record in curve]
        mib_ax.plot(steps, [stored_number(record.get("mib_loss")) for record in curve], label=f"seed {seed}")
        bt_ax.plot(steps, [stored_number(record.get("bt_loss")) for record in curve], label=f"seed {seed}")
    return finish(fig, "reward-model step", {mib_ax: "L_M (multi-view loss)", bt_ax: "Bradley-Terry loss"})


def _records(entry: dict, key: str) -> list[dict]:
    return [r["details"][key] for r in entry["per_seed"] if key in r.get("details", {})]


def _comparison_cells(records: list[dict]) -> tuple[str, str, str, str]:
    original = pooled_accuracy([r["original"] for r in records])
    refined = pooled_accuracy([r["refined"] for r in records])
    difference = pooled_difference([r["refined_minus_original"] for r in records])
    return (plus_minus(original[0], Z_975 * original[1]), plus_minus(refined[0], Z_975 * refined[1]),
            _signed(difference[0], Z_975 * difference[1]), str(original[2]))


def _signed(value: float, error: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:+.3f}" if math.isnan(error) else f"{value:+.3f} ± {error:.3f}"


def _count(value: object) -> str:
    return "–" if value is None else str(value)


def _share(value: object, unit: str = "") -> str:
    number = stored_number(value)
    return "–" if math.isnan(number) else f"{number:.2f}{unit}"
