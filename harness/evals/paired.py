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
one built from the two win rates' separate errors.

This is the harness's one convention for comparing two methods: :func:`compare_methods` computes every comparison
of a run once (each method against PPO and against SFT, on each evaluation set), ``results.json`` stores them under
``comparisons``, and the console, the reports, the stored leaderboard and the check all print those records, so
they cannot disagree. Why this estimate rather than the t-interval of the per-seed differences: every method
answers the same items, so item difficulty is shared and cancels, and with three seeds the seed t-interval has 2
degrees of freedom (t = 4.30) however many items were judged; the crossed estimate keeps the seed term and earns
its degrees of freedom from both sources (Satterthwaite).

Each comparison also carries its minimum detectable effect (MDE): the true difference the same design would
detect with 80% power in a two-sided 5% test, ``(t_0.975,df + t_0.80,df) x SE`` from the same standard error and
degrees of freedom as the interval (``(1.96 + 0.84) x SE`` as df grows). An unresolved difference with a small MDE
says "no effect of that size"; with a large one, "this run cannot tell". Each record also keeps the ANOVA estimates
of the three variance components (:func:`variance_components`), from which :func:`seeds_for_mde` projects how many
seeds the same items would need for a target MDE: the budget question an unresolved comparison raises.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.evals.winrate import find_stage

BASELINES = ("ppo", "sft")  # every method of a run is compared with each of these the run has
POWER = 0.80  # of the minimum detectable effect, in a two-sided test at 5%
POINTS = ("difference", "standard_error", "half_width", "low", "high", "mde")  # shares of a verdict, as points


def paired_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict:
    """Mean of ``a - b`` over seeds and items, its standard error and 95% interval (two-way crossed design).

    Args:
        a: per seed, per item: method A's share of the verdict against the reference (1 win, 0.5 tie, 0 loss); the
            same items, in the same order, for every seed.
        b: method B's, on the same seeds and items.

    Returns:
        ``difference`` (mean of a - b), ``standard_error``, ``df`` (Satterthwaite; ``I - 1`` for one seed),
        ``half_width`` (t quantile * standard error), ``low``, ``high``, ``mde`` (:func:`minimum_detectable_effect`),
        ``n_seeds``, ``n_items``, ``per_seed`` (each seed's mean of a - b), ``components``
        (:func:`variance_components`; None with one seed or one item). The standard error, interval and MDE are
        NaN with one item.

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
    half = _times_se(float(t.ppf(0.975, df)) if df > 0 else math.nan, se)
    mean = float(d.mean())
    return {"difference": mean, "standard_error": se, "df": df, "half_width": half, "low": mean - half,
            "high": mean + half, "mde": minimum_detectable_effect(se, df), "n_seeds": seeds, "n_items": items,
            "per_seed": d.mean(axis=1).tolist(),
            "components": variance_components(d) if seeds > 1 and items > 1 else None}


def minimum_detectable_effect(standard_error: float, df: float) -> float:
    """The true difference detected with 80% power by a two-sided 5% t-test: ``(t_0.975,df + t_0.80,df) x SE``.

    ``df`` infinite gives the normal case, ``(1.960 + 0.842) x SE``; NaN where the standard error is.
    """
    from scipy.stats import t

    if not df > 0:
        return math.nan
    return _times_se(float(t.ppf(0.975, df) + t.ppf(POWER, df)), standard_error)


def _times_se(quantile: float, se: float) -> float:
    """``quantile x se``: 0 for a zero standard error (no spread at all), NaN where either is unknown."""
    if se == 0:
        return 0.0
    return quantile * se if math.isfinite(quantile) and math.isfinite(se) else math.nan


def _variance_of_mean(d: np.ndarray) -> tuple[float, float]:
    """(Var(mean d), degrees of freedom) for the seeds x items differences ``d``; see the module docstring."""
    seeds, items = d.shape
    if items < 2:
        return math.nan, math.nan
    if seeds == 1:
        return float(d[0].var(ddof=1)) / items, float(items - 1)
    df_seed, df_item, df_residual = seeds - 1, items - 1, (seeds - 1) * (items - 1)
    ms_seed, ms_item, ms_residual = _mean_squares(d)
    combined = ms_seed + ms_item - ms_residual
    if combined <= ms_residual:
        # Seed and item effects too small to tell from noise (the estimate can even go negative): fall back to the
        # variance of a layout without them, never below what the residual noise alone gives.
        return ms_residual / (seeds * items), float(df_residual)
    satterthwaite = combined**2 / (ms_seed**2 / df_seed + ms_item**2 / df_item + ms_residual**2 / df_residual)
    return combined / (seeds * items), satterthwaite


def _mean_squares(d: np.ndarray) -> tuple[float, float, float]:
    """(MS_seed, MS_item, MS_residual) of the seeds x items differences ``d`` (at least 2 of each)."""
    seeds, items = d.shape
    grand, rows, columns = d.mean(), d.mean(axis=1), d.mean(axis=0)
    ms_seed = items * float(((rows - grand) ** 2).sum()) / (seeds - 1)
    ms_item = seeds * float(((columns - grand) ** 2).sum()) / (items - 1)
    ms_residual = float(((d - rows[:, None] - columns[None, :] + grand) ** 2).sum()) / ((seeds - 1) * (items - 1))
    return ms_seed, ms_item, ms_residual


def variance_components(d: np.ndarray) -> dict[str, float]:
    """Method-of-moments estimates of the seed, item and residual variances of ``D = mu + a_s + b_i + e_si``.

    From the expected mean squares ``E[MS_seed] = I sigma_a^2 + sigma_e^2``, ``E[MS_item] = S sigma_b^2 +
    sigma_e^2``, ``E[MS_residual] = sigma_e^2``; a negative estimate (noise) is set to 0.
    """
    seeds, items = d.shape
    ms_seed, ms_item, ms_residual = _mean_squares(d)
    return {"seed": max(0.0, (ms_seed - ms_residual) / items), "item": max(0.0, (ms_item - ms_residual) / seeds),
            "residual": ms_residual}


def projected_mde(components: dict[str, float], seeds: int, items: int) -> float:
    """The MDE a comparison with these variance components would have over ``seeds`` seeds and ``items`` items:
    ``Var(mean D) = sigma_a^2 / S + sigma_b^2 / I + sigma_e^2 / (S I)``, with the degrees of freedom Satterthwaite
    gives the expected mean squares (the interval's own recipe, on the projected design)."""
    a, b, e = components["seed"], components["item"], components["residual"]
    ms = (items * a + e, seeds * b + e, e)
    dfs = (seeds - 1, items - 1, (seeds - 1) * (items - 1))
    combined = ms[0] + ms[1] - ms[2]
    denominator = sum(m**2 / df for m, df in zip(ms, dfs))
    df = combined**2 / denominator if denominator > 0 else math.inf
    return minimum_detectable_effect(math.sqrt(combined / (seeds * items)), df)


def seeds_for_mde(components: dict[str, float] | None, items: int, target: float, most: int = 100) -> int | None:
    """The fewest seeds (2 to ``most``) whose :func:`projected_mde` on the same items is at most ``target``; None
    without components or when even ``most`` seeds fall short (the item term alone may keep it above)."""
    if components is None:
        return None
    return next((s for s in range(2, most + 1) if projected_mde(components, s, items) <= target), None)


def verdict(low: float, high: float) -> str:
    """One word for a 95% interval of ``method - baseline``: ``better`` (above 0), ``worse`` (below 0), else
    ``unresolved``; ``unmeasured`` without an interval."""
    if math.isnan(low) or math.isnan(high):
        return "unmeasured"
    return "better" if low > 0 else "worse" if high < 0 else "unresolved"


def comparison_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """(method, baseline) pairs of a run: each method against each of :data:`BASELINES` it has, PPO - SFT once
    (not SFT - PPO as well), baselines' own comparison first."""
    pairs = [(a, b) for a, b in (("ppo", "sft"),) if a in methods and b in methods]
    for baseline in BASELINES:
        if baseline in methods:
            pairs += [(m, baseline) for m in methods if m not in BASELINES]
    return pairs


def compare_methods(run_dir: Path, results: dict) -> list[dict]:
    """Every comparison of a run (:func:`comparison_pairs`) on each evaluation set's win rate, in points.

    Read from the per-item verdicts of the win-rate stages (``annotations.json``) the results record. A pair whose
    verdicts are not found (a stage dir gone) or do not share instructions is kept, with NaN numbers, verdict
    ``unmeasured`` and the ``reason``.

    Returns:
        One record per (method, baseline, eval set): ``method``, ``baseline``, ``eval_set``, ``metric`` (the
        win-rate metric's name), and :func:`paired_difference`'s figures times 100 (``difference``,
        ``standard_error``, ``half_width``, ``low``, ``high``, ``mde``, ``per_seed``), ``df``, ``n_seeds``,
        ``n_items``, ``variance_components`` (in points squared; None with one seed) and the :func:`verdict`.
    """
    methods = results["methods"]
    records = []
    for method, baseline in comparison_pairs(list(methods)):
        eval_sets = list(dict.fromkeys(name for m in (method, baseline) for r in methods[m].get("per_seed", [])
                                       for name in r.get("details", {}).get("eval_sets", {})))
        for eval_set in eval_sets:
            record = {"method": method, "baseline": baseline, "eval_set": eval_set, "metric": f"{eval_set}_win_rate"}
            pairs = paired_items(item_wins(run_dir, method, methods[method], eval_set),
                                 item_wins(run_dir, baseline, methods[baseline], eval_set))
            if pairs is None or not pairs[0] or len(pairs[0][0]) < 2:
                records.append({**record, **dict.fromkeys(POINTS + ("df",), math.nan), "per_seed": [],
                                "n_seeds": 0, "n_items": 0, "verdict": verdict(math.nan, math.nan),
                                "reason": "per-item verdicts not found for both methods on shared items"})
                continue
            r = paired_difference(*pairs)
            components = r["components"] and {k: 100**2 * v for k, v in r["components"].items()}  # points squared
            records.append({**record, **{key: 100 * r[key] for key in POINTS}, "df": r["df"],
                            "per_seed": [100 * v for v in r["per_seed"]], "n_seeds": r["n_seeds"],
                            "n_items": r["n_items"], "variance_components": components,
                            "verdict": verdict(r["low"], r["high"])})
    return records


def run_comparisons(run_dir: Path, results: dict) -> list[dict]:
    """The run's stored comparisons, or for a ``results.json`` written before they were stored, the same computed
    now from its win-rate stages: what the reports, the leaderboard and the check read."""
    return results["comparisons"] if "comparisons" in results else compare_methods(run_dir, results)


def item_wins(run_dir: Path, method: str, entry: dict, eval_set: str) -> dict[int, tuple[list[str], list[float]]]:
    """Per seed: the instructions of ``eval_set`` in order and the method's share of each verdict (NaN: none).

    Read from the win-rate stage's ``annotations.json`` (alpaca_eval's file, reference first: ``preference`` 1
    means the reference won, 2 the model). Seeds whose stage dir is gone are left out.
    """
    wins = {}
    for record in entry.get("per_seed", []):
        details = record.get("details", {}).get("eval_sets", {}).get(eval_set)
        stage = find_stage(run_dir, details.get("stage", ""), method, record["seed"], eval_set) if details else None
        if stage is None:
            continue
        annotations = json.loads((stage / "annotations.json").read_text())
        wins[record["seed"]] = ([a["instruction"] for a in annotations],
                                [math.nan if a["preference"] is None else a["preference"] - 1 for a in annotations])
    return wins


def paired_items(a: dict, b: dict) -> tuple[list[list[float]], list[list[float]]] | None:
    """The two methods' verdict shares on the seeds both have, items with a verdict everywhere; None if unpaired
    (no common seed, or other instructions)."""
    seeds = sorted(set(a) & set(b))
    if not seeds or any(a[s][0] != b[s][0] for s in seeds) or len({tuple(a[s][0]) for s in seeds}) != 1:
        return None
    x = np.array([a[s][1] for s in seeds], dtype=float)
    y = np.array([b[s][1] for s in seeds], dtype=float)
    keep = np.isfinite(x).all(axis=0) & np.isfinite(y).all(axis=0)
    return x[:, keep].tolist(), y[:, keep].tolist()
