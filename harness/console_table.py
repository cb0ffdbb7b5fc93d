"""The table a run prints when it ends: the headline metrics in 120 columns, then every method against PPO and SFT.

The full set of columns stays in ``leaderboard.csv``, ``results.json`` and the reports; this table shows the
columns that answer the harness's question (does RLP beat PPO?) and as many others as fit. Numbers follow the
reports' precision rule (:func:`harness.report.content.format_value`), and the comparisons are the run's stored
ones written by :func:`harness.stats.comparison_line`, so the two never disagree.
"""

from __future__ import annotations

import textwrap

from harness.evals.mmlu import knowledge_label
from harness.leaderboard import ranked_methods
from harness.report.content import headline_cell, recorded_direction
from harness.report.labels import relabelled
from harness.stats import INTERVAL_CONVENTION, comparison_line, comparisons_on

WIDTH = 120

# In order of importance: the columns are shown in this order, and those that do not fit are left out from the end.
COLUMNS = ("farm_win_rate", "bar_win_rate", "knowledge_acc", "rm_drift", "rm_acc_onpolicy", "rm_acc_step0",
           "rm_acc_offline", "kl", "proxy_reward", "avg_length")

ARROWS = {True: " ↑", False: " ↓", None: ""}

HEADLINE = "farm_win_rate"  # the metric the comparison lines are on


def format_table(results: dict, width: int = WIDTH) -> str:
    """The console table of a run's ``results.json``, at most ``width`` characters wide.

    Each cell is the mean over seeds ± the half-width of its 95% interval (:data:`harness.stats.INTERVAL_CONVENTION`;
    one seed: from the standard error over items, marked †). Headers carry the metric's direction: ↑ higher is
    better, ↓ lower. Then one line per stored comparison of :data:`HEADLINE` (every method against PPO and SFT).
    """
    results = relabelled(results)
    methods = results["methods"]
    grid = {name: [_cell(methods[name]["metrics"].get(column)) for column in COLUMNS]
            for name in ranked_methods(methods)}
    headers = [column + ARROWS[recorded_direction(methods, column)] for column in COLUMNS]
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
        "↑ higher is better, ↓ lower. " + INTERVAL_CONVENTION,
        f"Ranked by {HEADLINE}. knowledge_acc: task {knowledge_label(results)}. "
        + (f"Not shown: {', '.join(left_out)}. " if left_out else "") + "Every column: leaderboard.csv, report.html.",
        *comparison_lines(results),
    ]
    lines += [wrapped for note in notes for wrapped in textwrap.wrap(note, width, subsequent_indent="  ")]
    return "\n".join(lines)


def comparison_lines(results: dict) -> list[str]:
    """One line per stored comparison on the headline metric, or why there is none."""
    comparisons = comparisons_on(results, HEADLINE)
    if comparisons:
        return [comparison_line(c) for c in comparisons]
    if "comparisons" not in results:
        return ["No paired comparisons: this results.json predates them; harness.report.write_reports adds them "
                "from the run's win-rate stages."]
    return ["No paired comparisons: the run has neither ppo nor sft to compare with (add them to --methods)."]


def _cell(summary: dict | None) -> str:
    """``mean ± interval``, ``mean ± se†`` with one seed, the mean alone, or ``-`` where there is no value."""
    cell = headline_cell(summary)
    return cell.text + ("†" if cell.standard_error else "")
