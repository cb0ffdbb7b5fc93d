"""The report's figures, as PNG files: win rates, reward-model drift, PPO curves, SPG confidences.

Figures are drawn with matplotlib's object API (``Figure`` rendered by the Agg canvas), never through pyplot,
so no global backend or figure registry is touched and a run on a headless machine needs no display.

Rules every figure keeps, so they read at a glance: one colour per method in every figure
(:func:`method_colour`), the legend below the panels (never on the data), chance lines where a quantity has one,
axes ranged to the data, and what each error bar is in the figure's title (its caption in the reports).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

from matplotlib.figure import Figure

from harness.leaderboard import finite_mean
from harness.stats import Z_975

# One colour per method in every figure (matplotlib's tab10, colour-blind safer than its defaults' order).
METHOD_COLOURS = {"sft": "#7f7f7f", "ppo": "#1f77b4", "rlp_uml": "#2ca02c", "rlp_spg": "#d62728",
                  "best_of_n": "#9467bd", "dpo": "#8c564b", "expert_iteration": "#e377c2", "grpo": "#ff7f0e",
                  "online_rlhf": "#17becf", "online_rlhf_gold": "#9edae5"}
OTHER_COLOURS = ("#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")  # plug-ins, by name hash
CHANCE_ACCURACY = 0.5  # a coin flip's pairwise accuracy
CHARACTERS_PER_INCH = 13  # legend text at font size 8, with its marker: how many label columns fit a figure


def method_colour(name: str) -> str:
    """The colour of ``name`` in every figure: its own for built-in methods, else one fixed by a hash of its name
    (the same in every run and every figure)."""
    return METHOD_COLOURS.get(name) or OTHER_COLOURS[zlib.crc32(name.encode()) % len(OTHER_COLOURS)]


def make_plots(results: dict, plot_dir: Path) -> dict[str, Path]:
    """Draws every figure the run has data for.

    Args:
        results: the run's parsed ``results.json``.
        plot_dir: where the PNGs go (created if missing).

    Returns:
        Figure caption -> PNG path, in display order; a figure without data (no PPO method, no SPG) is left out.
    """
    plot_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "win_rate.png": plot_win_rates,
        "rm_drift.png": plot_drift,
        "ppo.png": plot_ppo,
        "spg_confidence.png": plot_spg_confidence,
    }
    written = {}
    for name, draw in figures.items():
        drawn = draw(results)
        if drawn is not None:
            caption, fig = drawn
            fig.savefig(plot_dir / name, dpi=100, metadata={"Title": caption})
            written[caption] = plot_dir / name
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
    """Labels each axis of ``fig`` (``ylabels``: axis -> its y label), puts one legend for the whole figure below
    the panels (each label once), and lays the figure out around it."""
    handles, labels = [], []
    for ax, ylabel in ylabels.items():
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    longest = max(map(len, labels), default=1)
    columns = max(1, min(3, len(labels), int(fig.get_figwidth() * CHARACTERS_PER_INCH / longest)))
    rows = math.ceil(len(labels) / columns)
    legend_height = (0.32 * rows + 0.15) / fig.get_figheight()  # inches per legend row, as a share of the figure
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_height if labels else 0, 1, 1))
    return fig


def _padded(low: float, high: float, share: float = 0.08) -> tuple[float, float]:
    """``(low, high)`` widened by ``share`` of its span on each side (at least 1% of the value's size)."""
    pad = max((high - low) * share, 0.01 * max(abs(low), abs(high), 1e-9))
    return low - pad, high + pad


def plot_win_rates(results: dict) -> tuple[str, Figure] | None:
    """Grouped bars: win rate per method and evaluation set with its 95% interval (over seeds; one seed: 1.96 x
    the standard error over items), the y axis ranged to the bars and the 50% reference line."""
    methods = results["methods"]
    eval_sets = list(dict.fromkeys(eval_set for entry in methods.values() for record in entry["per_seed"]
                                   for eval_set in record.get("details", {}).get("eval_sets", {})))
    if not eval_sets:
        return None
    fig = Figure(figsize=(max(5.0, 1.5 + 0.6 * len(eval_sets) * len(methods)), 4.2))
    ax = fig.subplots()
    width = 0.8 / len(methods)
    single_seed = False
    extremes = [50.0]
    for i, (name, entry) in enumerate(methods.items()):
        means, errors = [], []
        for eval_set in eval_sets:
            metric = entry["metrics"].get(f"{eval_set}_win_rate",  # as harness.evals.evaluate names it
                                          {"mean": math.nan, "ci95": math.nan, "standard_errors": []})
            error = metric["ci95"]
            if math.isnan(error):
                error, single_seed = Z_975 * finite_mean(metric["standard_errors"]), True
            means.append(metric["mean"])
            errors.append(error)
            extremes += [v for v in (metric["mean"] - (error if not math.isnan(error) else 0),
                                     metric["mean"] + (error if not math.isnan(error) else 0)) if not math.isnan(v)]
        positions = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(eval_sets))]
        ax.bar(positions, means, width, yerr=errors, capsize=3, label=name, color=method_colour(name))
    ax.axhline(50, color="grey", linewidth=0.8, linestyle=":", label="50: as good as the reference")
    low, high = _padded(max(0.0, min(extremes)), min(100.0, max(extremes)))
    ax.set_ylim(max(0.0, low), min(100.0, high))
    ax.set_xticks(range(len(eval_sets)), eval_sets)
    bars = "95% interval from one seed's items (1.96 x SE)" if single_seed else "95% interval over seeds"
    caption = f"Win rate against the reference, per evaluation set (error bars: {bars}; y axis not from 0)"
    return caption, finish(fig, None, {ax: "win rate vs reference (%)"})


def plot_drift(results: dict) -> tuple[str, Figure] | None:
    """Per method: the reward model's accuracy on judged pairs of policy samples at each checkpoint of its policy
    optimisation (PPO's, or GRPO's), mean over seeds; its fall from step 0 (the SFT policy) is the drift.

    The dashed lines are the reward models' accuracies on held-out preference pairs, another distribution, for
    reference: one line per distinct value, labelled with every method that shares it (PPO and GRPO train against
    the same reward model). The dotted line is chance.
    """
    fig = Figure(figsize=(7, 4.4))
    ax = fig.subplots()
    offline: dict[float, list[str]] = {}
    for name, entry in results["methods"].items():
        curves = [r["details"]["drift"]["curve"] for r in entry["per_seed"] if "drift" in r.get("details", {})]
        if not curves:
            continue
        steps, accuracy = mean_by_step(curves, "accuracy")
        ax.plot(steps, accuracy, marker="o", color=method_colour(name), label=f"{name}: its own samples")
        value = entry["metrics"].get("rm_acc_offline", {"mean": math.nan})["mean"]
        if not math.isnan(value):
            offline.setdefault(round(value, 6), []).append(name)
    if not ax.lines:
        return None
    for value, names in offline.items():
        ax.axhline(value, color=method_colour(names[0]), linestyle="--", linewidth=1,
                   label=f"held-out pairs: {', '.join(names)}")
    ax.axhline(CHANCE_ACCURACY, color="black", linestyle=":", linewidth=1, label="chance (0.5)")
    values = [y for line in ax.lines for y in line.get_ydata() if not math.isnan(y)]
    ax.set_ylim(*_padded(min(values), max(values)))
    caption = ("Reward-model accuracy on judged pairs of each policy's samples over its optimisation steps, mean "
               "over seeds (no error bars; dashed: held-out pairs; dotted: chance)")
    return caption, finish(fig, "optimisation step (each method's own PPO or GRPO)", {ax: "reward-model accuracy"})


def plot_ppo(results: dict) -> tuple[str, Figure] | None:
    """Proxy reward, KL to the SFT policy and the share of rollouts cut off before eos, over the optimisation
    steps, per method (mean over seeds).

    Each method's proxy reward is its own reward model's score (RLP's are their refined models'), so the first
    panel compares trends, not levels. The third panel is the collapse check: a policy that earns the truncation
    penalty on many rollouts learns to stop early, whatever the reward model prefers; its axis is ranged to the
    data.
    """
    fig = Figure(figsize=(12, 4.2))
    reward_ax, kl_ax, truncated_ax = fig.subplots(1, 3)
    drawn = False
    highest_cut = 0.0
    for name, entry in results["methods"].items():
        histories = [r["details"]["ppo_history"] for r in entry["per_seed"]
                     if r.get("details", {}).get("ppo_history")]
        if not histories:
            continue
        colour = method_colour(name)
        reward_ax.plot(*mean_by_step(histories, "proxy_reward"), color=colour, label=name)
        kl_ax.plot(*mean_by_step(histories, "kl"), color=colour, label=name)
        steps, cut = mean_by_step(histories, "truncated")
        truncated_ax.plot(steps, cut, color=colour, label=name)
        highest_cut = max([highest_cut, *(c for c in cut if not math.isnan(c))])
        drawn = True
    if not drawn:
        return None
    truncated_ax.set_ylim(0, max(0.05, 1.1 * highest_cut))
    reward_ax.set_title("each method's own reward model: trends, not levels", fontsize=9)
    caption = ("Proxy reward (each method's own reward model), KL to the SFT policy and the share of rollouts cut "
               "off, over optimisation steps, mean over seeds (no error bars)")
    return caption, finish(fig, "optimisation step", {reward_ax: "proxy reward", kl_ax: "KL to SFT policy",
                                                      truncated_ax: "share of rollouts cut off"})


def plot_spg_confidence(results: dict) -> tuple[str, Figure] | None:
    """Histogram of SPG's confidence (largest cluster / samples) over instructions, pooled over seeds, with the
    confidence threshold below which an instruction gets no synthetic pair."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    pooled = 0
    thresholds = set()
    for name, seeds in results.get("diagnostics", {}).items():
        counts: dict[float, int] = {}
        for diagnostics in seeds:
            for confidence, count in diagnostics.get("confidence_histogram", {}).items():
                counts[float(confidence)] = counts.get(float(confidence), 0) + int(count)
            if diagnostics.get("confidence_threshold") is not None:
                thresholds.add(float(diagnostics["confidence_threshold"]))
        if counts:
            ax.bar(sorted(counts), [counts[c] for c in sorted(counts)], width=0.05, alpha=0.8,
                   color=method_colour(name), label=f"{name} ({len(seeds)} seeds pooled)")
            pooled = max(pooled, len(seeds))
    if not pooled:
        return None
    for threshold in sorted(thresholds):
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1,
                   label=f"confidence threshold {threshold:g}: pairs only at or above")
    caption = (f"SPG confidence of policy samples over instructions, pooled over {pooled} seed"
               f"{'s' * (pooled != 1)} (counts, no error bars; dashed: the threshold)")
    return caption, finish(fig, "confidence c(x) = largest cluster / samples", {ax: "instructions"})
