"""The report's over-optimisation section: gold win rate and proxy reward against sqrt(KL), with the fits.

Reads ``results["overoptimisation"]`` (:func:`harness.evals.overoptimisation.summarise`): the curves averaged over
seeds, Gao, Schulman & Hilton (2022)'s forms fitted to them, and each seed's own fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure as MplFigure

from harness.evals.overoptimisation import FORM_NAMES, form_value
from harness.report.plots import finish, method_colour
from harness.report.sections import Figure, Paragraph, Section, Table
from harness.stats import Z_975, stored_number

CURVE_LABELS = {"best_of_n": "best-of-n (SFT samples, RM picks)", "ppo": "PPO checkpoints (the run's ppo)",
                "grpo": "GRPO checkpoints (the run's grpo)"}
FORM_TEXT = {"bon": "d (alpha - beta d)", "rl": "d (alpha - beta log d)"}

EXPLANATION = (
    "How far optimising against the reward model helps the gold judge. Each point is a policy: best-of-n of the "
    "SFT policy for n = 1, 2, 4, ... (the first n of one set of samples per farm instruction; KL = log n - (n-1)/n) "
    "and every saved checkpoint of a PPO run from SFT: the run's own, or, when eval.overoptimisation_ppo_kl_coef "
    "is set (the appendix's resolved config), one of its own at that lower KL coefficient, long enough to pass the "
    "gold peak that a tuned PPO stops near (KL as PPO logged it; step 0 is the SFT policy), and, when grpo runs, "
    "every saved checkpoint of the run's GRPO (its KL per sequence: TRL's per-token KL times the mean response "
    "length). Gold: the "
    "judge's win rate against the reference on the farm set. Proxy: the reward model's mean score of the chosen "
    "best-of-n samples (farm instructions, evaluation temperature), and PPO's (GRPO's) logged rollout reward "
    "(unlabeled instructions, temperature 1), so the proxy curves share a trend, not a scale. The lines are Gao, "
    "Schulman & Hilton (2022)'s forms fitted by least squares to the gold win rate relative to d = 0 "
    "(d = sqrt(KL)): R_bon(d) = d (alpha - beta d) for best-of-n, R_RL(d) = d (alpha - beta log d) for PPO and "
    "GRPO. "
    "Over-optimisation shows as a gold curve that peaks (d* below) while the proxy keeps rising."
)


def overoptimisation_section(run_dir: Path, results: dict) -> Section | None:
    """The section, or None for a run without over-optimisation curves; draws ``plots/overoptimisation.png``."""
    summary = results.get("overoptimisation")
    if not summary or not summary["mean"]["curves"]:
        return None
    plot_dir = Path(run_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    labels = curve_labels(run_dir)
    figure = plot_curves(summary["mean"]["curves"], summary["mean"]["fits"], labels)
    figure.savefig(plot_dir / "overoptimisation.png", dpi=100)
    seeds = len(summary["per_seed"])
    return Section("Over-optimisation", (
        Paragraph(EXPLANATION + f" Curves and fits are means over {seeds} seed{'s' * (seeds != 1)}; error bars: "
                  "± 1.96 x the mean gold win rate's standard error over items, as reported per point. The points "
                  "at d = 0 of the best-of-n and PPO curves are the same SFT policy judged on two sample sets "
                  "(best-of-n's n = 1 sample and PPO's step-0 evaluation), so they differ by sampling noise. "
                  f"The PPO curve is {labels['ppo']}."),
        Figure("Gold win rate and proxy reward against sqrt(KL)", "plots/overoptimisation.png"),
        fit_table(summary),
    ))


def fit_table(summary: dict) -> Table:
    """One row per fitted curve: the fit of the mean curve, then each seed's."""
    rows = []
    fits = [("mean", summary["mean"]["fits"])] + [(f"seed {s['seed']}", s["fits"]) for s in summary["per_seed"]]
    for label, by_curve in fits:
        for curve, fit in by_curve.items():
            rows.append((curve, label, *_fit_cells(fit)))
    return Table(
        header=("curve", "over", "form R(d)", "alpha", "beta", "peak d*", "KL at peak", "gain at peak (points)",
                "points"),
        rows=tuple(rows),
        notes=("R is the gold win rate minus its value at d = 0, in points; d = sqrt(KL). Peak: d* = alpha / "
               "(2 beta) for best-of-n, exp(alpha / beta - 1) for PPO and GRPO; '–' where the fitted curve has no peak.",),
    )


def _fit_cells(fit: dict | None) -> tuple[str, ...]:
    """alpha, beta, d* and KL at 2 decimals, the gain in points at 1: one rule for the table."""
    if fit is None:
        return ("too few points to fit", "–", "–", "–", "–", "–", "–")
    peak = fit["peak_d"]
    return (FORM_TEXT[fit["form"]], f"{fit['alpha']:.2f}", f"{fit['beta']:.2f}",
            "–" if peak is None else f"{peak:.2f}", "–" if peak is None else f"{peak ** 2:.2f}",
            "–" if peak is None else f"{fit['peak_r']:+.1f}", str(fit["n_points"]))


def curve_labels(run_dir: Path) -> dict[str, str]:
    """Each curve's legend label; PPO's names its run: the run's own ppo, or the separate PPO trained at
    ``eval.overoptimisation_ppo_kl_coef`` (read from the run's ``config.yaml``), which is not the results table's."""
    labels = dict(CURVE_LABELS)
    config = Path(run_dir) / "config.yaml"
    kl_coef = None
    if config.is_file():
        kl_coef = ((yaml.safe_load(config.read_text()) or {}).get("eval") or {}).get("overoptimisation_ppo_kl_coef")
    if kl_coef is not None:
        labels["ppo"] = f"PPO checkpoints (its own run at kl_coef {kl_coef}, not the table's ppo)"
    return labels


def plot_curves(curves: dict[str, list[dict]], fits: dict[str, dict | None],
                labels: dict[str, str] = CURVE_LABELS) -> MplFigure:
    """Two panels against sqrt(KL): gold win rate (± 95%, fitted curve dashed) and proxy reward; one colour per
    curve (the method's, :func:`harness.report.plots.method_colour`), the legend below the panels."""
    fig = MplFigure(figsize=(10, 4.6))
    gold_ax, proxy_ax = fig.subplots(1, 2)
    for name, points in curves.items():
        d = [p["sqrt_kl"] for p in points]
        gold = [p["gold_win_rate"] for p in points]
        errors = [Z_975 * stored_number(p.get("standard_error")) for p in points]  # null in results.json: NaN
        colour = method_colour(name)
        label = labels.get(name, name)
        gold_ax.errorbar(d, gold, yerr=errors, marker="o", capsize=3, color=colour, label=label)
        fit = fits.get(name)
        if fit is not None:
            grid = np.linspace(0, max(d), 100)
            start = next(p["gold_win_rate"] for p in points if p["kl"] == 0)
            gold_ax.plot(grid, start + form_value(fit["form"], grid, fit["alpha"], fit["beta"]), linestyle="--",
                         color=colour, label=f"{label}: fit {FORM_NAMES[fit['form']]}")
        proxy_ax.plot(d, [p["proxy_reward"] for p in points], marker="o", color=colour, label=label)
    gold_ax.set_title("gold: error bars ± 95% over items", fontsize=9)
    proxy_ax.set_title("proxy: RM scores, own scale per curve", fontsize=9)
    return finish(fig, "sqrt(KL to the SFT policy)",
                  {gold_ax: "gold win rate vs reference (%)", proxy_ax: "proxy reward (RM score)"})
