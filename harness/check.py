"""Regression check: does a run still reach the numbers of the stored leaderboard of its preset?

    python -m harness.check                       # rerun the stored tiny command into runs/check-tiny, compare
    python -m harness.check --seeds 3             # rerun the stored command's first 3 seeds only
    python -m harness.check --run runs/tiny       # compare an existing run dir instead
    python -m harness.check --preset tiny --leaderboards leaderboards

Without ``--run`` the check reruns the command recorded in ``leaderboards/<preset>.json`` (its preset, methods and
seeds) through ``harness.run`` into ``runs/check-<preset>``, with the stage cache ``runs/check-<preset>/stages``
of its own: the check trains what it compares instead of reusing the user's stages, which runs of older code may
have built (stage keys hash configs and data, not code). Its finished stages are reused on the next check.

What is compared. Every method the run and the leaderboard both have; a leaderboard method the run did not train
(the quick start trains two of the four) is listed as not run and does not fail the check. Seeds are matched: the
run's seeds 0..m-1 against the stored per-seed values of the same seeds, m being the number of seeds both have
(``stored`` below is the mean of those stored values, ``now`` the run's). The stored leaderboard is validated first
(:func:`harness.leaderboard.load_leaderboard`): anything damaged or inconsistent ends the check with exit 2.

The rule, for every compared method and metric column:

- NaN on both sides is fine (``ok``). NaN on one side is ``missing``, a failure whatever the metric's direction:
  a number that appears or disappears means the pipeline changed.
- A metric with no direction (proxy reward, KL, output length) and a standard-error column are reported as
  ``info`` and never fail on their value. A metric's direction, unit and range are its spec, as the reference run
  recorded it (:class:`harness.core.metrics.MetricSpec`); a run that records another spec for a metric cannot be
  compared with it (exit 2). Nothing is read from a metric's name.
- Otherwise::

      tolerance = min(cap, max(floor, relative * |stored|, k_se * se)),   se = sqrt(sd^2 + eval_se^2) / sqrt(m)

  ``se`` is the standard error of the stored mean of m seeds: ``sd`` the sample standard deviation of all stored
  per-seed values (seed-to-seed noise; 0 with one stored seed), ``eval_se`` the mean of the metric's own stored
  standard errors over evaluation items for those seeds (0 where it has none). ``now`` on the worse side of
  ``stored`` (per the metric's direction)
  by more than the tolerance is a ``regression``; on the better side by more than the tolerance it is ``improved``
  (passes: consider updating the leaderboard); else ``ok``.

The rules in force (:data:`harness.leaderboard.TOLERANCES`, stored in each leaderboard's JSON and applied from
there, so a leaderboard and its tolerances are reviewed together):

=========  =====================================================  ==========  ========  ====  ==========
unit       metrics today                                          floor       relative  k_se  cap
=========  =====================================================  ==========  ========  ====  ==========
percent    win rates and length-controlled win rates (0-100)      5.0 points  0         3     8.0 points
fraction   ``knowledge_acc``, ``rm_acc_*``, ``rm_drift``          0.05        0         3     0.08
seconds    ``train_wall_s``                                       30 s        1.0       3     none
other      any other unit, and the standard-error columns         0           0.1       3     none
=========  =====================================================  ==========  ========  ====  ==========

Why: three standard errors of the stored mean are about two standard errors of the difference between two such
means, so ordinary seed and judge noise rarely fails the check. The floors cover what the standard error cannot
show: CPU kernels that round differently on another machine. The caps keep the check able to fail: RL on the tiny
world is noisy between seeds (PPO's two stored seeds differ by 20 win-rate points), and without a cap its tolerance
would exceed the whole effect the check exists to catch; with it, a method losing 10 win-rate points is always a
regression. Timings may double before failing, because shared CI machines are that noisy.

After the table, the check prints the paired comparisons on the headline win rate (every method against PPO and
SFT), the run's and the stored leaderboard's, as the console and the reports write them
(:func:`harness.stats.comparison_line`): information beside the verdict, never a failure on its own.

Exit status: 0 when every compared metric holds, 1 on any regression or missing value, 2 when no comparison was
possible (missing, malformed or inconsistent leaderboard or run dir, no method in common, a rerun that failed): one
line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.core.metrics import MetricSpec
from harness.evals.paired import run_comparisons
from harness.leaderboard import (
    METRIC_COLUMNS,
    OTHER,
    STANDARD_ERROR_COLUMNS,
    Leaderboard,
    ToleranceRule,
    finite_mean,
    load_leaderboard,
    load_results,
)
from harness.stats import INTERVAL_CONVENTION, comparison_line, comparisons_on

HEADLINE = "farm_win_rate"  # the metric whose comparisons the check prints

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2
FAILING = ("regression", "missing")


@dataclass(frozen=True)
class Comparison:
    """One metric of one method: stored value, the run's value, the tolerance and the verdict."""

    method: str
    metric: str
    stored: float
    now: float
    tolerance: float
    verdict: str  # ok, improved, info, regression or missing


def tolerance(rule: ToleranceRule, stored: float, per_seed: list[float], eval_se: float = math.nan,
              compared: int | None = None) -> float:
    """How far ``stored`` may be missed on the worse side (the module docstring gives the rule).

    Args:
        rule: the rule of the metric's unit.
        stored: the stored mean of the compared seeds.
        per_seed: every stored per-seed value (NaN where a seed had none): their spread is the seed noise.
        eval_se: the mean stored evaluation standard error of the compared seeds (NaN: none).
        compared: m, the number of seeds compared (default: every stored seed).
    """
    finite = [v for v in per_seed if not math.isnan(v)]
    m = compared or max(len(finite), 1)
    sd = statistics.stdev(finite) if len(finite) >= 2 else 0.0
    se = math.sqrt(sd ** 2 + (0.0 if math.isnan(eval_se) else eval_se) ** 2) / math.sqrt(m)
    terms = [rule.floor, rule.k_se * se]
    if not math.isnan(stored):
        terms.append(rule.relative * abs(stored))
    return min(max(terms), math.inf if rule.cap is None else rule.cap)


def verdict(stored: float, now: float, higher_is_better: bool | None, tol: float) -> str:
    """``ok``, ``improved``, ``info``, ``regression`` or ``missing`` (see the module docstring)."""
    if math.isnan(stored) and math.isnan(now):
        return "ok"
    if math.isnan(stored) or math.isnan(now):
        return "missing"
    if higher_is_better is None:
        return "info"
    gain = now - stored if higher_is_better else stored - now  # > 0: better than stored
    if gain < -tol:
        return "regression"
    return "improved" if gain > tol else "ok"


def compared_seeds(leaderboard: Leaderboard, results: dict) -> int:
    """m: the seeds 0..m-1 both the run and the leaderboard have."""
    return min(int(results["seeds"]), leaderboard.seeds)


def compare(leaderboard: Leaderboard, results: dict) -> list[Comparison]:
    """Every metric column of every method both the leaderboard and the run have, on the seeds both have."""
    m = compared_seeds(leaderboard, results)
    rows = []
    for method in leaderboard.table["method"]:
        run_metrics = results["methods"].get(method, {}).get("metrics")
        if run_metrics is None:
            continue  # not run: listed apart, never a failure
        for column in METRIC_COLUMNS:
            rows.append(_compare_column(leaderboard, method, column, run_metrics, m))
    return rows


def _compare_column(leaderboard: Leaderboard, method: str, column: str, run_metrics: dict, m: int) -> Comparison:
    """One column: a metric judged by its spec, or a standard-error column (information, under the OTHER rule)."""
    metric = STANDARD_ERROR_COLUMNS.get(column, column)
    run_metric = run_metrics.get(metric)
    if column in STANDARD_ERROR_COLUMNS:
        stored_seeds, key = leaderboard.standard_errors[method][metric], "standard_errors"
        rule, eval_se, higher_is_better = leaderboard.tolerance_rule(OTHER), math.nan, None
    else:
        stored_seeds, key = leaderboard.per_seed[method][metric], "values"
        spec = leaderboard.specs[metric]
        rule, higher_is_better = leaderboard.tolerance_rule(spec.unit), spec.higher_is_better
        eval_se = finite_mean(leaderboard.standard_errors[method][metric][:m])
    stored = finite_mean(stored_seeds[:m])
    now = finite_mean(run_metric[key][:m]) if run_metric else math.nan
    tol = tolerance(rule, stored, stored_seeds, eval_se, m)
    return Comparison(method, column, stored, now, tol, verdict(stored, now, higher_is_better, tol))


def check_specs(leaderboard: Leaderboard, results: dict, where: Path) -> None:
    """The run must record every metric it shares with the leaderboard under the leaderboard's spec.

    Raises:
        CheckInputError: one line naming the first metric whose direction, unit or range differ.
    """
    for method, entry in results["methods"].items():
        for metric, stored in leaderboard.specs.items():
            recorded = MetricSpec.from_json(entry["metrics"][metric]) if metric in entry["metrics"] else stored
            if recorded != stored:
                raise CheckInputError(f"{where}: method {method!r} records {metric!r} as {recorded.to_json()}, the "
                                      f"leaderboard as {stored.to_json()}; the two cannot be compared")


def format_comparisons(rows: list[Comparison]) -> str:
    """The comparison as a fixed-width table, one line per metric."""
    def number(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:.4g}"

    width = max([10, *(len(r.method) for r in rows)])  # expert_iteration is longer than the others
    lines = [f"{'method':<{width}} {'metric':<18} {'stored':>10} {'now':>10} {'tolerance':>10}  verdict"]
    lines += [f"{r.method:<{width}} {r.metric:<18} {number(r.stored):>10} {number(r.now):>10} {number(r.tolerance):>10}  "
              f"{r.verdict.upper() if r.verdict in FAILING else r.verdict}" for r in rows]
    return "\n".join(lines)


class CheckInputError(ValueError):
    """No comparison possible: a bad run dir or a rerun that failed."""


def rerun(leaderboard: Leaderboard, seeds: int | None = None) -> Path:
    """Runs the leaderboard's stored command into ``runs/check-<preset>``, with its own stage cache in that dir (see
    the module docstring), and returns that run dir; with ``seeds``, only the stored command's first that many."""
    from harness import run

    out = Path("runs") / f"check-{leaderboard.preset}"
    seeds = leaderboard.seeds if seeds is None else seeds
    argv = ["--preset", leaderboard.preset, "--methods", *leaderboard.methods, "--seeds", str(seeds),
            "--out", str(out), "--cache", str(out / "stages"),
            "--overwrite"]  # the check's own dir: a changed stored command replaces its run
    try:
        status = run.main(argv)
    except SystemExit as err:  # harness.run rejects bad input with SystemExit(2)
        status = err.code
    if status:
        raise CheckInputError(f"python -m harness.run {' '.join(argv)}: exited with status {status}")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.check",
                                     description="Compare a run with the stored leaderboard of its preset.")
    parser.add_argument("--preset", default=None,
                        help="preset whose leaderboard to check against (default: the --run's preset, else tiny)")
    parser.add_argument("--run", type=Path, default=None,
                        help="an existing run dir to check (default: rerun the leaderboard's stored command)")
    parser.add_argument("--leaderboards", type=Path, default=Path("leaderboards"),
                        help="dir holding <preset>.csv and <preset>.json (default: leaderboards)")
    parser.add_argument("--seeds", type=int, default=None, metavar="M",
                        help="rerun the stored command with its first M seeds only and compare those (default: "
                             "every stored seed); not with --run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = load_results(args.run) if args.run is not None else None
        preset = args.preset or (results["preset"] if results else "tiny")
        leaderboard = load_leaderboard(preset, args.leaderboards)
        if args.seeds is not None and (args.run is not None or not 1 <= args.seeds <= leaderboard.seeds):
            raise CheckInputError(f"--seeds: got {args.seeds}; allowed: 1 to {leaderboard.seeds} (the stored "
                                  f"leaderboard's seeds), and only when the check reruns the stored command (no --run)")
        if results is None:
            results = load_results(rerun(leaderboard, args.seeds))
        if args.run is not None and results["preset"] != preset:
            raise CheckInputError(f"{args.run / 'results.json'}: the run is for preset {results['preset']!r}, "
                                  f"not {preset!r}")
        run_dir = args.run or Path("runs") / f"check-{preset}"
        check_specs(leaderboard, results, run_dir / "results.json")
        results["comparisons"] = run_comparisons(run_dir, results)
    except ValueError as err:  # LeaderboardError, CheckInputError, a bad results.json
        print(f"harness.check: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    common = [m for m in leaderboard.table["method"] if m in results["methods"]]
    if not common:
        print(f"harness.check: error: the run has none of the leaderboard's methods "
              f"({', '.join(leaderboard.table['method'])}); nothing to compare", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = compare(leaderboard, results)
    print(format_comparisons(rows))
    print("\n" + "\n".join(_notes(leaderboard, results, common)))
    print("\n" + "\n".join(comparison_report(leaderboard, results)))
    failures = [r for r in rows if r.verdict in FAILING]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("ok", "improved", "info", "regression", "missing")}
    print("\n" + ", ".join(f"{n} {v}" for v, n in counts.items()) + (": FAIL" if failures else ": PASS"))
    return EXIT_REGRESSION if failures else EXIT_OK


def comparison_report(leaderboard: Leaderboard, results: dict) -> list[str]:
    """The run's and the stored leaderboard's paired comparisons on :data:`HEADLINE`, one line each, then the
    interval convention."""
    lines = []
    for label, comparisons in (("this run", comparisons_on(results, HEADLINE)),
                               ("stored leaderboard", comparisons_on({"comparisons": leaderboard.comparisons},
                                                                     HEADLINE))):
        lines.append(f"paired comparisons, {label}:" if comparisons else
                     f"paired comparisons, {label}: none stored (written before the harness stored them)")
        lines += [f"  {comparison_line(c)}" for c in comparisons]
    return [*lines, INTERVAL_CONVENTION]


def _notes(leaderboard: Leaderboard, results: dict, common: list[str]) -> list[str]:
    """What the comparison covered: methods not run or not stored, which seeds, and the leaderboard's caveat."""
    stored = list(leaderboard.table["method"])
    notes = [f"compared: {len(common)} of the leaderboard's {len(stored)} methods ({', '.join(common)}) on seeds "
             f"0-{compared_seeds(leaderboard, results) - 1}; the leaderboard has {leaderboard.seeds} seed(s), the "
             f"run {results['seeds']}"]
    if leaderboard.caveat:
        notes.append(f"caveat of the stored leaderboard: {leaderboard.caveat}")
    not_run = [m for m in stored if m not in common]
    if not_run:
        notes.append(f"not in this run, not checked (not a failure): {', '.join(not_run)}")
    extra = [m for m in results["methods"] if m not in stored]
    if extra:
        notes.append(f"not in the leaderboard, not checked: {', '.join(extra)}")
    return notes


if __name__ == "__main__":
    sys.exit(main())
