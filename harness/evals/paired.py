"""The difference of two methods' win rates on the same items over the same seeds, with a 95% interval.

Two methods evaluated on one evaluation set for several training seeds give, per seed s and item i, the
difference ``D[s, i]`` of their verdicts against the reference (1 win, 0.5 tie, 0 loss). Items are shared by the
seeds, so the pairs are crossed, not nested: an item that is hard for both methods in one seed is hard in every
seed, and seed luck moves every item of that seed. :func:`paired_difference` treats both as random effects of a
balanced two-way layout (``D = mu + a_s + b_i + e_si``), whose mean has variance
``sigma_a^2 / S + sigma_b^2 / I + sigma_e^2 / (S I)``, estimated from the ANOVA mean squares::

    Var(mean D) = (MS_seed + MS_item - MS_residual) / (S I)

with Satterthwaite's degrees of freedom for the t quantile. With one seed this is the paired t-interval over
items. Pairing on items removes the item difficulty both methods share, so the interval is much narrower than
one built from the two win rates' separate errors. (The console's RLP - PPO line has only each seed's win rate and
standard error, so it pairs on seeds alone: :func:`harness.stats.paired_difference`.)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def paired_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict:
    """Mean of ``a - b`` over seeds and items, its standard error and 95% interval (two-way crossed design).

    Args:
        a: per seed, per item: method A's share of the verdict against the reference (1 win, 0.5 tie, 0 loss); the
            same items, in the same order, for every seed.
        b: method B's, on the same seeds and items.

    Returns:
        ``difference`` (mean of a - b), ``standard_error``, ``df`` (Satterthwaite; ``I - 1`` for one seed),
        ``half_width`` (t quantile * standard error), ``low``, ``high``, ``n_seeds``, ``n_items``. The standard
        error and interval are NaN with one item.

    Raises:
        ValueError: the two differ in shape, a seed has another number of items, or a value is not finite.
    """
    from scipy.stats import t

    try:
        d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    except ValueError:
        raise ValueError("a and b must hold one equally long row of items per seed") from None
    if d.ndim != 2 or np.shape(a) != np.shape(b) or d.size == 0:
        raise ValueError(f"a and b must both be seeds x items, got shapes {np.shape(a)} and {np.shape(b)}")
    if not np.isfinite(d).all():
        raise ValueError("a and b must be finite (leave out items without a verdict for every seed)")
    seeds, items = d.shape
    variance, df = _variance_of_mean(d)
    se = math.sqrt(variance) if not math.isnan(variance) else math.nan
    half = float(t.ppf(0.975, df)) * se if df > 0 and se > 0 else (0.0 if se == 0 else math.nan)
    mean = float(d.mean())
    return {"difference": mean, "standard_error": se, "df": df, "half_width": half, "low": mean - half,
            "high": mean + half, "n_seeds": seeds, "n_items": items}


def _variance_of_mean(d: np.ndarray) -> tuple[float, float]:
    """(Var(mean d), degrees of freedom) for the seeds x items differences ``d``; see the module docstring."""
    seeds, items = d.shape
    if items < 2:
        return math.nan, math.nan
    if seeds == 1:
        return float(d[0].var(ddof=1)) / items, float(items - 1)
    grand, rows, columns = d.mean(), d.mean(axis=1), d.mean(axis=0)
    df_seed, df_item, df_residual = seeds - 1, items - 1, (seeds - 1) * (items - 1)
    ms_seed = items * float(((rows - grand) ** 2).sum()) / df_seed
    ms_item = seeds * float(((columns - grand) ** 2).sum()) / df_item
    ms_residual = float(((d - rows[:, None] - columns[None, :] + grand) ** 2).sum()) / df_residual
    combined = ms_seed + ms_item - ms_residual
    if combined <= ms_residual:
        # Seed and item effects too small to tell from noise (the estimate can even go negative): fall back to the
        # variance of a layout without them, never below what the residual noise alone gives.
        return ms_residual / (seeds * items), float(df_residual)
    satterthwaite = combined**2 / (ms_seed**2 / df_seed + ms_item**2 / df_item + ms_residual**2 / df_residual)
    return combined / (seeds * items), satterthwaite
