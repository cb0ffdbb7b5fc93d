"""Does this run rank its methods as the paper and AlpacaFarm do? The ordering, pair by pair, from the numbers.

A source (``paper_results.yaml``, ``orderings``) ranks some methods by its AlpacaFarm simulated win rate; the run
ranks the same methods by its farm win rate (the in-distribution set). Every pair of methods both have is compared:
the run agrees on a pair when it puts the same method ahead. The note names the pairs it reverses with both gaps,
so a reader can see whether a reversal is a few tenths of a point or a real difference.
"""

from __future__ import annotations

import math
from itertools import combinations, pairwise

RUN_METRIC = "farm_win_rate"


def reference_win_rates(ordering: dict, paper_methods: dict) -> dict[str, float]:
    """The win rates a source ranks by: its own ``win_rates``, or the paper's methods' ``from_methods`` column."""
    if "win_rates" in ordering:
        return {name: float(value) for name, value in ordering["win_rates"].items()}
    column = ordering["from_methods"]
    return {name: float(row[column]) for name, row in paper_methods.items() if row.get(column) is not None}


def ranked(win_rates: dict[str, float]) -> str:
    """``a > b > c``: the methods from the highest win rate down (``=`` between equal ones, in name order)."""
    names = sorted(win_rates, key=lambda name: (-win_rates[name], name))  # equals by name, for a stable text
    text = names[0]
    for before, name in pairwise(names):
        text += f" {'=' if win_rates[name] == win_rates[before] else '>'} {name}"
    return text


def ordering_note(label: str, reference: dict[str, float], run: dict[str, float]) -> str:
    """One sentence: both orderings of the methods they share, and the pairs the run agrees and disagrees on."""
    shared = {name: run[name] for name in reference if name in run and not math.isnan(run[name])}
    if len(shared) < 2:
        return (f"Against {label} ordering: this run shares fewer than two of its methods "
                f"({', '.join(reference)}), so there is nothing to compare.")
    theirs = {name: reference[name] for name in shared}
    reversed_pairs = []
    pairs = list(combinations(sorted(shared), 2))
    for a, b in pairs:
        if theirs[a] == theirs[b]:
            continue
        ahead, behind = (a, b) if theirs[a] > theirs[b] else (b, a)
        if shared[ahead] <= shared[behind]:
            reversed_pairs.append(f"{behind} {'ties' if shared[ahead] == shared[behind] else 'beats'} {ahead} here "
                                  f"({shared[behind]:.1f} vs {shared[ahead]:.1f}), there {theirs[behind]:.1f} vs "
                                  f"{theirs[ahead]:.1f}")
    compared = sum(theirs[a] != theirs[b] for a, b in pairs)
    verdict = (("the same order on its one pair" if compared == 1 else f"the same order on all {compared} pairs")
               if not reversed_pairs else
               f"the same order on {compared - len(reversed_pairs)} of {compared} pairs; reversed: "
               + "; ".join(reversed_pairs))
    return (f"Against {label} ordering (its AlpacaFarm sim win rate; this run's {RUN_METRIC}): {ranked(theirs)} "
            f"there, {ranked(shared)} here: {verdict}.")


def ordering_notes(results: dict, paper: dict) -> list[str]:
    """One :func:`ordering_note` per source in ``paper["orderings"]`` (none without that key)."""
    run = {name: entry["metrics"].get(RUN_METRIC, {}).get("mean", math.nan)
           for name, entry in results["methods"].items()}
    return [ordering_note(ordering["label"], reference_win_rates(ordering, paper["methods"]), run)
            for ordering in paper.get("orderings", [])]
