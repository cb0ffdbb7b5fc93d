"""The table a run prints when it ends: the headline metrics in 120 columns, then RLP - PPO on the farm set.

The full set of columns stays in ``leaderboard.csv``, ``results.json`` and the reports; this table shows the
columns that answer the harness's question (does RLP beat PPO?) and as many others as fit. Numbers follow the
reports' precision rule (:func:`harness.report.content.format_value`), so the two never disagree.
"""

from __future__ import annotations

import math
import textwrap

from harness.evals.mmlu import knowledge_label
from harness.report.content import format_value, headline_cell, recorded_direction, recorded_unit
from harness.stats import method_difference

WIDTH = 120

# In order of importance: the columns are shown in this order, and those that do not fit are left out from the end.
COLUMNS = ("farm_win_rate", "bar_win_rate", "knowledge_acc", "rm_drift", "rm_acc_onpolicy", "rm_acc_step0",
           "rm_acc_offline", "kl", "proxy_reward", "avg_length")

ARROWS = {True: " ↑", False: " ↓", None: ""}

HEADLINE = "farm_win_rate"  # the set the RLP - PPO lines compare on
BASELINE = "ppo"


def format_table(results: dict, width: int = WIDTH) -> str:
    """The console table of a run's ``results.json``, at most ``width`` characters wide.

    Each cell is the mean over seeds ± its 95% interval; with one seed, ± one seed's standard error over items
    where the metric has one (marked †). Headers carry the metric's direction: ↑ higher is better, ↓ lower.
    """
    methods = results["methods"]
    seeds = results.get("seeds", 1)
    grid = {name: [_cell(entry["metrics"].get(column)) for column in COLUMNS] for name, entry in methods.items()}
    names = [knowledge_label(results) if column == "knowledge_acc" else column for column in COLUMNS]
    headers = [name + ARROWS[recorded_direction(methods, column)] for name, column in zip(names, COLUMNS)]
    widths = [max([len(h), *(len(cells[i]) for cells in grid.values())]) for i, h in enumerate(headers)]
    name_width = max([len("method"), *map(len, methods)])

    shown = []
    used = name_width
    for i, w in enumerate(widths):
        if used + 2 + w > width:
            break
        shown.append(i)
        used += 2 + w

    def row(first: str, cells: list[str]) -> str:
        return first.ljust(name_width) + "".join("  " + cells[i].rjust(widths[i]) for i in shown)

    lines = [row("method", headers), "-" * used]
    lines += [row(name, cells) for name, cells in grid.items()]
    left_out = [COLUMNS[i] for i in range(len(COLUMNS)) if i not in shown]
    notes = [
        "↑ higher is better, ↓ lower. " + (f"± 95% interval over {seeds} seeds." if seeds > 1 else
                                           "± † one seed's standard error over evaluation items."),
        (f"Not shown: {', '.join(left_out)}. " if left_out else "") + "Every column: leaderboard.csv, report.html.",
        *rlp_vs_ppo_lines(results),
    ]
    lines += [wrapped for note in notes for wrapped in textwrap.wrap(note, width, subsequent_indent="  ")]
    return "\n".join(lines)


def rlp_vs_ppo_lines(results: dict) -> list[str]:
    """One line per RLP variant of the run: its farm win rate minus PPO's, with the interval or standard error."""
    variants = [name for name in results["methods"] if name.startswith("rlp_")]
    unit = recorded_unit(results["methods"], HEADLINE)
    lines = []
    for name in variants:
        difference = method_difference(results, name, BASELINE, HEADLINE)
        label = f"{name} - {BASELINE}, {HEADLINE}:"
        if difference is None:
            lines.append(f"{label} not available ({BASELINE} is not in this run; add it to --methods)")
            continue
        error = "" if math.isnan(difference.error) else f" ± {format_value(unit, difference.error)}"
        lines.append(f"{label} {_signed(unit, difference.estimate)}{error} points ({difference.describe()})")
    return lines


def _signed(unit: str | None, value: float) -> str:
    text = format_value(unit, value)
    return text if text.startswith("-") else "+" + text


def _cell(summary: dict | None) -> str:
    """``mean ± interval``, ``mean ± se†`` with one seed, the mean alone, or ``-`` where there is no value."""
    cell = headline_cell(summary)
    return cell.text + ("†" if cell.standard_error else "")
