"""The few statistics every table of a run shares: the interval over seeds and the difference of two methods.

Kept free of torch, pandas and the rest of the harness so the console table, the reports and the regression check
can all use it, and so a reader can check each number by hand.

:func:`paired_difference` needs only each seed's aggregate and standard error (what ``results.json`` holds), so the
console line works from a run's results alone. The report's "Does RLP beat PPO?" table reads the per-item verdicts
as well and pairs on items too (:func:`harness.evals.paired.paired_difference`), a narrower interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def t_half_width(values: list[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean of ``values``; NaN with fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan
    from scipy.stats import t  # deferred: scipy is slow to import and most callers never need it

    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(t.ppf(0.975, n - 1) * sd / math.sqrt(n))


@dataclass(frozen=True)
class Difference:
    """``treatment - control`` of one metric, with its uncertainty.

    Attributes:
        estimate: the mean difference.
        error: with several seeds, the half-width of the 95% t-interval of the per-seed differences (paired by
            seed, so what both methods share within a seed cancels); with one seed, the standard error of the
            difference, ``sqrt(se_treatment**2 + se_control**2)`` from the two evaluations' own standard errors
            over items. NaN when it cannot be computed.
        seeds: the number of seeds both methods have.
    """

    estimate: float
    error: float
    seeds: int

    @property
    def is_interval(self) -> bool:
        """True if ``error`` is a 95% interval over seeds, False if it is one seed's standard error."""
        return self.seeds > 1

    def describe(self) -> str:
        """What ``error`` is, in words, for a table's footnote."""
        if self.is_interval:
            return f"± 95% interval, paired over {self.seeds} seeds"
        return "± one seed's standard error, sqrt(se1² + se2²) of the two evaluations"


def paired_difference(treatment: dict[int, float], control: dict[int, float],
                      treatment_se: dict[int, float] | None = None,
                      control_se: dict[int, float] | None = None) -> Difference | None:
    """``treatment - control`` over the seeds both have, paired by seed.

    Args:
        treatment: seed -> value of the method being compared (an RLP variant).
        control: seed -> value of the baseline (PPO).
        treatment_se: seed -> the treatment's standard error over evaluation items; used with one seed only.
        control_se: the same for the control.

    Returns:
        The difference, or None when the two share no seed with a finite value on both sides.
    """
    seeds = sorted(s for s in treatment.keys() & control.keys()
                   if math.isfinite(treatment[s]) and math.isfinite(control[s]))
    if not seeds:
        return None
    differences = [treatment[s] - control[s] for s in seeds]
    estimate = sum(differences) / len(differences)
    if len(seeds) > 1:
        return Difference(estimate, t_half_width(differences), len(seeds))
    (seed,) = seeds
    se = [(treatment_se or {}).get(seed, math.nan), (control_se or {}).get(seed, math.nan)]
    return Difference(estimate, math.sqrt(se[0] ** 2 + se[1] ** 2), 1)


def method_difference(results: dict, treatment: str, control: str, metric: str) -> Difference | None:
    """``treatment - control`` of ``metric`` in a run's ``results.json``, paired by seed (see :func:`paired_difference`).

    The standard errors for one seed are the metric's own per-seed standard errors over evaluation items. None if
    either method or the metric is missing.
    """
    methods = results.get("methods", {})
    if treatment not in methods or control not in methods:
        return None

    def by_seed(method: str, key: str) -> dict[int, float]:
        summary = methods[method].get("metrics", {}).get(metric)
        return {} if summary is None else {seed: stored_number(v) for seed, v in enumerate(summary.get(key, []))}

    return paired_difference(by_seed(treatment, "values"), by_seed(control, "values"),
                             by_seed(treatment, "standard_errors"), by_seed(control, "standard_errors"))


def stored_number(value: object) -> float:
    """A value read from ``results.json`` as a float; NaN for null (how the file stores NaN), missing or
    non-numbers."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
