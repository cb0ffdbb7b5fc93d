"""The statistics every output of a run shares, and how they are written: one convention, printed one way.

The convention (:data:`INTERVAL_CONVENTION`, the footnote the console, the reports and the check all print): ``±``
is always the half-width of a 95% interval and ``[low, high]`` that interval.

- A method's value of a metric: the mean over seeds ± the Student t half-width over seeds (:func:`t_half_width`,
  what ``results.json`` stores as ``ci95``); with one seed, ± 1.96 x the metric's own standard error over
  evaluation items (:func:`one_seed_half_width`), marked †. Wall times get no interval: they measure the machine.
- A difference of two methods' win rates: paired over seeds and items (:mod:`harness.evals.paired`), computed once
  per run and stored in ``results.json`` under ``comparisons``; :func:`comparison_text` writes one.

Kept free of torch, pandas and the rest of the harness so the console table, the reports and the regression check
can all use it, and so a reader can check each number by hand.
"""

from __future__ import annotations

import math

Z_975 = 1.959964  # the normal 0.975 quantile: the one-seed interval's

INTERVAL_CONVENTION = (
    "± and [low, high] are 95% intervals. A method's value: mean over seeds ± the Student t half-width over seeds "
    "(one seed: ± 1.96 x its standard error over evaluation items, marked †); wall times have none. A difference "
    "A - B of two methods' win rates, in points: paired over seeds and items as crossed random effects "
    "(Satterthwaite's degrees of freedom), computed once per run and stored in results.json's 'comparisons'; "
    "MDE: the difference that design detects with 80% power in a two-sided 5% test, (t_0.975 + t_0.80) x SE. "
    "Verdict: better or worse when the interval excludes 0, else unresolved."
)


def t_half_width(values: list[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean of ``values``; NaN with fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan
    from scipy.stats import t  # deferred: scipy is slow to import and most callers never need it

    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def one_seed_half_width(standard_error: float) -> float:
    """The 95% half-width of one seed's value from its standard error over evaluation items (normal quantile)."""
    return Z_975 * standard_error


def signed(value: float, decimals: int = 1) -> str:
    """``+1.2`` / ``-1.2`` / ``–`` (missing): the one way a difference is written."""
    return "–" if value is None or math.isnan(value) else f"{value:+.{decimals}f}"


def comparison_text(record: dict) -> str:
    """``+9.1 [+3.8, +14.4], MDE 7.9`` (points) for one stored comparison; its ``reason`` if it was not
    measured. Every output prints a comparison through this function, so all print the same interval."""
    if math.isnan(stored_number(record.get("difference"))):
        return str(record.get("reason", "not measured"))
    return (f"{signed(record['difference'])} [{signed(record['low'])}, {signed(record['high'])}], "
            f"MDE {stored_number(record['mde']):.1f}")


def comparison_line(record: dict) -> str:
    """``rlp_uml - ppo, farm_win_rate: +0.2 [-4.7, +5.1], MDE 6.8 points: unresolved``."""
    label = f"{record['method']} - {record['baseline']}, {record['metric']}:"
    if math.isnan(stored_number(record.get("difference"))):
        return f"{label} {comparison_text(record)}"
    return f"{label} {comparison_text(record)} points: {record['verdict']}"


def comparisons_on(results: dict, metric: str) -> list[dict]:
    """The run's stored comparisons (``results["comparisons"]``) of ``metric``, in stored order."""
    return [c for c in results.get("comparisons", []) if c.get("metric") == metric]


def stored_number(value: object) -> float:
    """A value read from ``results.json`` as a float; NaN for null (how the file stores NaN), missing or
    non-numbers."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
