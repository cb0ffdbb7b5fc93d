"""Reward-model over-optimisation, measured: gold win rate and proxy reward against sqrt(KL), with fitted curves.

Gao, Schulman & Hilton (2022, "Scaling laws for reward model overoptimization") optimise a policy against a proxy
reward model in two ways and plot the gold reward against ``d = sqrt(KL)`` to the initial policy: the proxy keeps
rising while the gold reward rises, peaks and falls. Their fitted forms (their eqs. 1 and 2), with R measured
relative to the initial policy (d = 0)::

    best-of-n:  R_bon(d) = d (alpha - beta d)          peak at d* = alpha / (2 beta)
    RL:         R_RL(d)  = d (alpha - beta log d)      peak at d* = exp(alpha / beta - 1)

Both are linear in (alpha, beta), so a least-squares fit without intercept is exact arithmetic (:func:`fit_form`).
Here R is the gold judge's win rate against the reference outputs on the in-distribution evaluation set (in
points), measured for the SFT policy reranked best-of-n (n = 1, 2, 4, ..., from one set of samples, taking the
first n) and for every saved checkpoint of the first PPO and of GRPO (:func:`measure`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.cache import fingerprint
from harness.context import RunContext
from harness.core.types import PPORun, TrainedPolicy
from harness.evals.evaluate import eval_data, judged_win_rate, proxy_reward_and_kl, win_rate
from harness.suites.base import Annotator
from methods.best_of_n import best_of_n_kl, pick_best, score_samples

# Each form as its two regressors: R(d) = alpha * x1(d) + beta * x2(d).
FORMS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "bon": lambda d: (d, -d * d),
    # d log d -> 0 as d -> 0: the d = 0 point contributes 0, not NaN.
    "rl": lambda d: (d, -d * np.log(np.where(d > 0, d, 1.0))),
}


FORM_NAMES = {"bon": "R_bon", "rl": "R_RL"}  # as Gao et al. write them

# Each curve's fitted form and the key its points are matched on across seeds: RL checkpoints by step.
CURVE_FORMS = {"best_of_n": "bon", "ppo": "rl", "grpo": "rl"}
CURVE_KEYS = {"best_of_n": "n", "ppo": "step", "grpo": "step"}


def form_value(form: str, d: Sequence[float] | float, alpha: float, beta: float) -> np.ndarray:
    """R(d) of ``form`` ("bon" or "rl") with the given coefficients."""
    x1, x2 = FORMS[form](np.asarray(d, dtype=float))
    return alpha * x1 + beta * x2


def peak(form: str, alpha: float, beta: float) -> float | None:
    """The d at which ``form`` peaks, or None when it has no interior maximum (beta <= 0, or alpha <= 0 for bon).

    bon: dR/dd = alpha - 2 beta d = 0 -> d* = alpha / (2 beta). rl: dR/dd = alpha - beta (log d + 1) = 0 ->
    d* = exp(alpha / beta - 1), a maximum because d2R/dd2 = -beta / d < 0.
    """
    if beta <= 0:
        return None
    if form == "bon":
        return alpha / (2 * beta) if alpha > 0 else None
    return math.exp(alpha / beta - 1)


def fit_form(form: str, d: Sequence[float], r: Sequence[float]) -> dict:
    """Least-squares (alpha, beta) of ``form`` through the points (d, R), no intercept (R(0) = 0 by construction).

    Args:
        form: "bon" or "rl".
        d: sqrt(KL) of each point.
        r: the gold measure of each point relative to d = 0.

    Returns:
        ``{"form", "alpha", "beta", "peak_d", "peak_r", "n_points"}``; ``peak_d``/``peak_r`` are None without a peak.

    Raises:
        ValueError: unknown form, lengths differ, a value is not finite, or fewer than two points have d > 0
            (two coefficients need two informative points).
    """
    if form not in FORMS:
        raise ValueError(f"form: must be one of {', '.join(FORMS)}, got {form!r}")
    d_arr, r_arr = np.asarray(d, dtype=float), np.asarray(r, dtype=float)
    if d_arr.shape != r_arr.shape or d_arr.ndim != 1:
        raise ValueError(f"d and r must be flat and of one length, got {d_arr.shape} and {r_arr.shape}")
    if not (np.isfinite(d_arr).all() and np.isfinite(r_arr).all()) or (d_arr < 0).any():
        raise ValueError("d must be finite and >= 0, and r finite")
    if (d_arr > 0).sum() < 2:
        raise ValueError(f"fit {form}: needs at least two points with d > 0, got {(d_arr > 0).sum()}")
    design = np.column_stack(FORMS[form](d_arr))
    (alpha, beta), *_ = np.linalg.lstsq(design, r_arr, rcond=None)
    alpha, beta = float(alpha), float(beta)
    d_star = peak(form, alpha, beta)
    return {"form": form, "alpha": alpha, "beta": beta, "peak_d": d_star,
            "peak_r": None if d_star is None else float(form_value(form, d_star, alpha, beta)),
            "n_points": int(len(d_arr))}


def fit_curve(form: str, points: Sequence[dict]) -> dict | None:
    """Fits ``form`` to a curve's gold win rate relative to its d = 0 point; None if it cannot be fitted.

    Args:
        points: records with ``kl`` and ``gold_win_rate``; the one with KL 0 is the reference (d = 0).
    """
    start = [p for p in points if p["kl"] == 0]
    usable = [p for p in points if math.isfinite(p["kl"]) and math.isfinite(p["gold_win_rate"])]
    if not start or sum(p["kl"] > 0 for p in usable) < 2:
        return None
    d = [math.sqrt(max(p["kl"], 0.0)) for p in usable]  # PPO's sampled KL estimate can dip below 0
    return fit_form(form, d, [p["gold_win_rate"] - start[0]["gold_win_rate"] for p in usable])


def best_of_n_points(ns: Sequence[int], gold_win_rates: Sequence[float], standard_errors: Sequence[float],
                     proxy_rewards: Sequence[float]) -> list[dict]:
    """One record per n: ``n``, ``kl`` (analytic), ``sqrt_kl``, ``gold_win_rate``, ``standard_error``,
    ``proxy_reward``."""
    return [{"n": n, "kl": best_of_n_kl(n), "sqrt_kl": math.sqrt(best_of_n_kl(n)), "gold_win_rate": gold,
             "standard_error": se, "proxy_reward": proxy}
            for n, gold, se, proxy in zip(ns, gold_win_rates, standard_errors, proxy_rewards, strict=True)]


def powers_of_two(max_n: int) -> list[int]:
    """1, 2, 4, ..., ``max_n`` (a power of two)."""
    return [2**k for k in range(int(math.log2(max_n)) + 1)]


def mean_curve(curves: Sequence[Sequence[dict]], key: str) -> list[dict]:
    """The seeds' curves averaged point by point, matched on ``key`` (``n`` or ``step``); a point every seed has.

    Every numeric field is averaged (NaN where a seed lacks it), and ``sqrt_kl`` is recomputed from the mean KL.
    """
    common = set.intersection(*({p[key] for p in curve} for curve in curves)) if curves else set()
    mean = []
    for value in sorted(common):
        at = [next(p for p in curve if p[key] == value) for curve in curves]
        fields = [f for f in at[0] if isinstance(at[0][f], (int, float)) and f != key]
        point = {key: value, **{f: float(np.mean([p.get(f, math.nan) for p in at])) for f in fields}}
        point["sqrt_kl"] = math.sqrt(max(point["kl"], 0.0))
        point["n_seeds"] = len(at)
        mean.append(point)
    return mean


def fits_of(curves: dict[str, list[dict]]) -> dict:
    """The Gao et al. fit of each curve present: best-of-n with the bon form, PPO and GRPO with the RL form."""
    return {name: fit_curve(CURVE_FORMS[name], points) for name, points in curves.items()}


def summarise(per_seed: Sequence[dict]) -> dict:
    """results.json's ``overoptimisation``: every seed's curves and fits, and the mean curves with their fits."""
    names = [name for name in CURVE_KEYS if all(name in seed["curves"] for seed in per_seed)]
    curves = {name: mean_curve([seed["curves"][name] for seed in per_seed], CURVE_KEYS[name]) for name in names}
    return {"per_seed": list(per_seed), "mean": {"curves": curves, "fits": fits_of(curves)}}


def describe_fits(fits: dict) -> str:
    """One line per fit, for the run log: the coefficients and the peak."""
    lines = []
    for name, fit in fits.items():
        if fit is None:
            lines.append(f"{name}: too few points to fit")
            continue
        where = ("no peak" if fit["peak_d"] is None
                 else f"peak at sqrt(KL) {fit['peak_d']:.3g} ({fit['peak_r']:+.3g} points)")
        lines.append(f"{name}: {FORM_NAMES[fit['form']]} alpha {fit['alpha']:.4g}, beta {fit['beta']:.4g}, {where}")
    return "; ".join(lines)


# -- measurement on a run context ---------------------------------------------------------------------------------

def measure(ctx: RunContext, judge: Annotator, judge_name: str, with_ppo: bool, with_grpo: bool = False) -> dict:
    """One seed's curves and fits: best-of-n always, the first PPO's checkpoints when ``with_ppo``, GRPO's when
    ``with_grpo``.

    Returns:
        ``{"seed", "curves": {"best_of_n": [...], "ppo": [...], "grpo": [...]}, "fits": {...}}``, points as
        :func:`best_of_n_points` describes (PPO's and GRPO's carry ``step`` instead of ``n``).
    """
    curves = {"best_of_n": measure_best_of_n(ctx, judge, judge_name)}
    if with_ppo:
        curves["ppo"] = measure_ppo(ctx, judge, judge_name)
    if with_grpo:
        from methods.grpo import grpo_run  # TRL's GRPO, imported only for a run that has it

        curves["grpo"] = measure_checkpoints(ctx, grpo_run(ctx), judge, judge_name)
    return {"seed": ctx.seed, "curves": curves, "fits": fits_of(curves)}


def measure_best_of_n(ctx: RunContext, judge: Annotator, judge_name: str) -> list[dict]:
    """Best-of-n of the SFT policy for n = 1, 2, 4, ..., ``eval.overoptimisation_max_n`` on the first eval set.

    One set of ``max_n`` samples per instruction at ``eval.temperature`` (a cached stage; also under ``eval.greedy``,
    whose n samples would all be one); best-of-n takes the first n, so the points differ only in n. Gold: the judge's win rate against the reference; proxy: the mean reward-model
    score of the chosen samples; KL: the analytic best-of-n KL.
    """
    cfg = ctx.config.eval
    data = eval_data(ctx, ctx.suite.eval_sets[0])
    instructions = data["instruction"]
    sft, reward_model = ctx.sft(), ctx.reward_model()
    samples = ctx.sample(sft, instructions, cfg.overoptimisation_max_n, cfg.temperature,
                         name="overoptimisation_samples")

    def build(out: Path) -> None:
        scores = score_samples(ctx, reward_model, instructions, samples)
        ns, golds, errors, proxies = powers_of_two(cfg.overoptimisation_max_n), [], [], []
        for n in ns:
            chosen, chosen_scores = pick_best([s[:n] for s in samples], [s[:n] for s in scores])
            _, metrics = judged_win_rate(ctx, judge, data, chosen, f"best_of_{n}")
            golds.append(metrics["win_rate"])
            errors.append(metrics["standard_error"])
            proxies.append(sum(chosen_scores) / len(chosen_scores))
        (out / "points.json").write_text(json.dumps(best_of_n_points(ns, golds, errors, proxies), indent=1))

    stage = ctx.stage("overoptimisation_bon",
                      {"policy": Path(sft), "reward_model": Path(reward_model), "judge": judge_name,
                       "samples": fingerprint(samples), "references": fingerprint(data["output"])}, build)
    return json.loads((stage / "points.json").read_text())


def measure_ppo(ctx: RunContext, judge: Annotator, judge_name: str) -> list[dict]:
    """PPO's saved checkpoints (and step 0, the SFT policy) on the first eval set.

    The checkpoints are the run's own first PPO's, or, with ``eval.overoptimisation_ppo_kl_coef`` set, those of a
    PPO from SFT at that KL coefficient for ``eval.overoptimisation_ppo_steps`` steps: a tuned PPO stops near the
    gold peak, and the curve needs a run that passes it.

    Gold: the win-rate stage of each checkpoint (the same protocol as every method's win rate); proxy and KL: what
    PPO logged at that step (its rollouts, temperature 1, unlabeled prompts); step 0's proxy is the SFT policy's
    measured the same way (:func:`proxy_reward_and_kl`).
    """
    cfg = ctx.config.eval
    ppo_config = None
    if cfg.overoptimisation_ppo_kl_coef is not None:
        ppo_config = dataclasses.replace(ctx.config.ppo, kl_coef=cfg.overoptimisation_ppo_kl_coef,
                                         num_steps=cfg.overoptimisation_ppo_steps)
    return measure_checkpoints(ctx, ctx.ppo(ctx.sft(), ctx.reward_model(), ppo_config), judge, judge_name)


def measure_checkpoints(ctx: RunContext, run: PPORun, judge: Annotator, judge_name: str) -> list[dict]:
    """Step 0 (the SFT policy) and every saved checkpoint of an RL run from SFT (PPO or GRPO) on the first eval set:
    the gold win rate of each, and the proxy reward and KL the run logged there."""
    set_name = ctx.suite.eval_sets[0]
    sft, reward_model = ctx.sft(), ctx.reward_model()
    start = TrainedPolicy(method="sft", policy=sft, reward_model=reward_model)
    policies = [(0, start, proxy_reward_and_kl(ctx, start)[0], 0.0)]
    policies += [(c.step, TrainedPolicy(method="ppo", policy=c.path), c.proxy_reward, c.kl) for c in run.checkpoints]
    points = []
    for step, policy, proxy, kl in policies:
        metrics, _ = win_rate(ctx, policy, set_name, judge, judge_name)
        points.append({"step": step, "kl": kl, "sqrt_kl": math.sqrt(max(kl, 0.0)),
                       "gold_win_rate": metrics["win_rate"], "standard_error": metrics["standard_error"],
                       "proxy_reward": proxy})
    return points
