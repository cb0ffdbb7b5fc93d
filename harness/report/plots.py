"""The report's figures, as PNG files: win rates, reward-model drift, PPO curves, SPG confidences.

Figures are drawn with matplotlib's object API (``Figure`` rendered by the Agg canvas), never through pyplot,
so no global backend or figure registry is touched and a run on a headless machine needs no display.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from harness.leaderboard import finite_mean


def make_plots(results: dict, plot_dir: Path) -> dict[str, Path]:
    """Draws every figure the run has data for.

    Args:
        results: the run's parsed ``results.json``.
        plot_dir: where the PNGs go (created if missing).

    Returns:
        Figure title -> PNG path, in display order; a figure without data (no PPO method, no SPG) is left out.
    """
    plot_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "Win rate against the reference": (plot_win_rates, "win_rate.png"),
        "Reward-model accuracy on policy samples over PPO": (plot_drift, "rm_drift.png"),
        "Proxy reward, KL and cut-off responses over PPO steps": (plot_ppo, "ppo.png"),
        "SPG confidence of policy samples": (plot_spg_confidence, "spg_confidence.png"),
    }
    written = {}
    for title, (draw, name) in figures.items():
        fig = draw(results)
        if fig is not None:
            fig.savefig(plot_dir / name, dpi=100)
            written[title] = plot_dir / name
    return written


def mean_by_step(series: list[list[dict]], key: str) -> tuple[list[int], list[float]]:
    """Averages ``key`` over seeds at each step, ignoring NaN (a seed's curve may lack a value at a step).

    Args:
        series: one list of records per seed, each record holding ``step`` and ``key``.
        key: the value to average.

    Returns:
        The sorted steps and the mean at each (NaN where no seed has a value).
    """
    by_step: dict[int, list[float]] = {}
    for records in series:
        for record in records:
            value = record.get(key)
            by_step.setdefault(int(record["step"]), [])
            if value is not None and not math.isnan(value):
                by_step[int(record["step"])].append(float(value))
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) if by_step[s] else math.nan for s in steps]


def finish(fig: Figure, xlabel: str | None, ylabels: dict) -> Figure:
    """Labels each axis of ``fig`` (``ylabels``: axis -> its y label), adds the legends and lays the figure out."""
    for ax, ylabel in ylabels.items():
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_win_rates(results: dict) -> Figure | None:
    """Grouped bars: win rate per method and evaluation set, with the 95% interval (or ± SE for one seed)."""
    methods = results["methods"]
    eval_sets = list(dict.fromkeys(eval_set for entry in methods.values() for record in entry["per_seed"]
                                   for eval_set in record.get("details", {}).get("eval_sets", {})))
    if not eval_sets:
        return None
    fig = Figure(figsize=(max(4.0, 1.5 + 0.8 * len(eval_sets) * len(methods)), 3.6))
    ax = fig.subplots()
    width = 0.8 / len(methods)
    single_seed = False
    for i, (name, entry) in enumerate(methods.items()):
        means, errors = [], []
        for eval_set in eval_sets:
            metric = entry["metrics"].get(f"{eval_set}_win_rate",  # as harness.evals.evaluate names it
                                          {"mean": math.nan, "ci95": math.nan, "standard_errors": []})
            error = metric["ci95"]
            if math.isnan(error):
                error, single_seed = finite_mean(metric["standard_errors"]), True
            means.append(metric["mean"])
            errors.append(error)
        positions = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(eval_sets))]
        ax.bar(positions, means, width, yerr=errors, capsize=3, label=name)
    ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")  # as good as the reference
    ax.set_ylim(0, 100)
    ax.set_xticks(range(len(eval_sets)), eval_sets)
    ax.set_title("error bars: " + ("± standard error (one seed)" if single_seed else "95% interval over seeds"),
                 fontsize=9)
    return finish(fig, None, {ax: "win rate vs reference (%)"})


def plot_drift(results: dict) -> Figure | None:
    """Per method: the reward model's accuracy on judged pairs of policy samples at each PPO checkpoint.

    The curve starts at step 0 (the SFT policy), and its fall from there to the last checkpoint is the drift; the
    dashed line of the same colour is that reward model's accuracy on held-out preference pairs, another
    distribution, for reference.
    """
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    drawn = False
    for name, entry in results["methods"].items():
        curves = [r["details"]["drift"]["curve"] for r in entry["per_seed"] if "drift" in r.get("details", {})]
        if not curves:
            continue
        steps, accuracy = mean_by_step(curves, "accuracy")
        (line,) = ax.plot(steps, accuracy, marker="o", label=f"{name}: on-policy")
        offline = entry["metrics"].get("rm_acc_offline", {"mean": math.nan})["mean"]
        if not math.isnan(offline):
            ax.axhline(offline, color=line.get_color(), linestyle="--", label=f"{name}: offline (held-out pairs)")
        drawn = True
    if not drawn:
        return None
    return finish(fig, "PPO step", {ax: "reward-model accuracy"})


def plot_ppo(results: dict) -> Figure | None:
    """Proxy reward, KL to the SFT policy and the share of rollouts cut off before eos, over PPO steps, per method
    (mean over seeds).

    The third panel is the collapse check: a policy that earns the truncation penalty on many rollouts learns to
    stop early, whatever the reward model prefers.
    """
    fig = Figure(figsize=(12, 3.4))
    reward_ax, kl_ax, truncated_ax = fig.subplots(1, 3)
    drawn = False
    for name, entry in results["methods"].items():
        histories = [r["details"]["ppo_history"] for r in entry["per_seed"]
                     if r.get("details", {}).get("ppo_history")]
        if not histories:
            continue
        reward_ax.plot(*mean_by_step(histories, "proxy_reward"), label=name)
        kl_ax.plot(*mean_by_step(histories, "kl"), label=name)
        truncated_ax.plot(*mean_by_step(histories, "truncated"), label=name)
        drawn = True
    if not drawn:
        return None
    truncated_ax.set_ylim(-0.02, 1.02)
    return finish(fig, "PPO step", {reward_ax: "proxy reward", kl_ax: "KL to SFT policy",
                                    truncated_ax: "share of rollouts cut off"})


def plot_spg_confidence(results: dict) -> Figure | None:
    """Histogram of SPG's confidence (largest cluster / samples) over instructions, summed over seeds."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    drawn = False
    for name, seeds in results.get("diagnostics", {}).items():
        counts: dict[float, int] = {}
        for diagnostics in seeds:
            for confidence, count in diagnostics.get("confidence_histogram", {}).items():
                counts[float(confidence)] = counts.get(float(confidence), 0) + int(count)
        if counts:
            ax.bar(sorted(counts), [counts[c] for c in sorted(counts)], width=0.05, alpha=0.7, label=name)
            drawn = True
    if not drawn:
        return None
    return finish(fig, "confidence c(x) = largest cluster / samples", {ax: "instructions"})
