"""Regression check: does a run still reach the numbers of the stored leaderboard of its preset?

    python -m harness.check                       # rerun the stored tiny command into runs/check-tiny, compare
    python -m harness.check --run runs/tiny       # compare an existing run dir instead
    python -m harness.check --preset tiny --leaderboards leaderboards

Without ``--run`` the check reruns the command recorded in ``leaderboards/<preset>.json`` (its preset, methods and
seeds) through ``harness.run`` into ``runs/check-<preset>``; finished stages there are reused on the next check.

The rule, for every method of the stored leaderboard and every metric column (``stored``: the CSV value; ``now``:
the run's mean over seeds):

- NaN on both sides is fine (``ok``). NaN on one side is ``missing``, a failure whatever the metric's direction:
  a number that appears or disappears means the pipeline changed. A stored method absent from the run is
  ``missing`` too.
- A metric with no direction (standard errors, proxy reward, KL, output length) is reported as ``info`` and never
  fails on its value.
- Otherwise::

      tolerance = max(floor, relative * |stored|, k_std * std, k_se * se)

  where ``std`` is the sample standard deviation of the stored per-seed values (left out with fewer than two
  seeds) and ``se`` the stored standard error over evaluation items (win rates: the set's
  ``<set>_standard_error``; ``knowledge_acc``: ``knowledge_stderr``; left out for other metrics). ``now`` on the
  worse side of ``stored`` (per the metric's direction) by more than the tolerance is a ``regression``; on the
  better side by more than the tolerance it is ``improved`` (passes: consider updating the leaderboard); else
  ``ok``.

The rules in force (:data:`harness.leaderboard.TOLERANCES`, stored in each leaderboard's JSON and applied from
there, so a leaderboard and its tolerances are reviewed together):

=========  =====================================================  ============  ========  =====  ====
kind       metrics (unit)                                         floor         relative  k_std  k_se
=========  =====================================================  ============  ========  =====  ====
win_rate   ``*_win_rate``, ``*_lc_win_rate`` (points, 0-100)      5.0 points    0         3      2
accuracy   ``knowledge_acc``, ``rm_acc_*``, ``rm_drift`` (0-1)    0.05          0         3      2
wall_time  ``train_wall_s`` (seconds)                             30 s          1.0       3      0
other      any other metric given a direction                     0             0.1       3      0
=========  =====================================================  ============  ========  =====  ====

Why: with three standard deviations of the stored seeds, or two standard errors of one seed's evaluation, ordinary
seed-to-seed and judge noise almost never fails the check, while a change that moves a method by more than its own
noise does. The floors cover what one stored seed cannot show: CPU kernels that round differently on another
machine. Timings may double before failing, because shared CI machines are that noisy.

Exit status: 0 when every metric holds, 1 on any regression or missing value, 2 when no comparison was possible
(missing or malformed leaderboard or run dir, a rerun that failed): one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.leaderboard import (
    METRIC_COLUMNS,
    Leaderboard,
    ToleranceRule,
    load_leaderboard,
    load_results,
    metric_kind,
    standard_error_column,
)

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


def tolerance(rule: ToleranceRule, stored: float, per_seed: list[float], standard_error: float = math.nan) -> float:
    """How far ``stored`` may be missed on the worse side (the module docstring gives the rule)."""
    terms = [rule.floor]
    if not math.isnan(stored):
        terms.append(rule.relative * abs(stored))
    finite = [v for v in per_seed if not math.isnan(v)]
    if len(finite) >= 2:
        terms.append(rule.k_std * statistics.stdev(finite))
    if not math.isnan(standard_error):
        terms.append(rule.k_se * standard_error)
    return max(terms)


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


def compare(leaderboard: Leaderboard, results: dict) -> list[Comparison]:
    """Every metric of every stored method against the run's results."""
    rows = []
    for _, stored_row in leaderboard.table.iterrows():
        method = stored_row["method"]
        run_metrics = results["methods"].get(method, {}).get("metrics")
        if run_metrics is None:
            rows.append(Comparison(method, "(all)", math.nan, math.nan, math.nan, "missing"))
            continue
        for metric in METRIC_COLUMNS:
            stored = float(stored_row[metric])
            now = float(run_metrics.get(metric, {}).get("mean", math.nan))
            se_column = standard_error_column(metric)
            tol = tolerance(leaderboard.tolerances[metric_kind(metric)], stored,
                            leaderboard.per_seed[method][metric],
                            float(stored_row[se_column]) if se_column else math.nan)
            rows.append(Comparison(method, metric, stored, now, tol,
                                   verdict(stored, now, leaderboard.higher_is_better[metric], tol)))
    return rows


def format_comparisons(rows: list[Comparison]) -> str:
    """The comparison as a fixed-width table, one line per metric."""
    def number(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:.4g}"

    lines = [f"{'method':<10} {'metric':<18} {'stored':>10} {'now':>10} {'tolerance':>10}  verdict"]
    lines += [f"{r.method:<10} {r.metric:<18} {number(r.stored):>10} {number(r.now):>10} {number(r.tolerance):>10}  "
              f"{r.verdict.upper() if r.verdict in FAILING else r.verdict}" for r in rows]
    return "\n".join(lines)


class CheckInputError(ValueError):
    """No comparison possible: a bad run dir or a rerun that failed."""


def rerun(leaderboard: Leaderboard) -> Path:
    """Runs the leaderboard's stored command into ``runs/check-<preset>`` and returns that run dir."""
    from harness import run

    out = Path("runs") / f"check-{leaderboard.preset}"
    argv = ["--preset", leaderboard.preset, "--methods", *leaderboard.methods, "--seeds", str(leaderboard.seeds),
            "--out", str(out)]
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = load_results(args.run) if args.run is not None else None
        preset = args.preset or (results["preset"] if results else "tiny")
        leaderboard = load_leaderboard(preset, args.leaderboards)
        if results is None:
            results = load_results(rerun(leaderboard))
        if args.run is not None and results["preset"] != preset:
            raise CheckInputError(f"{args.run / 'results.json'}: the run is for preset {results['preset']!r}, "
                                  f"not {preset!r}")
    except ValueError as err:  # LeaderboardError, CheckInputError, a bad results.json
        print(f"harness.check: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    rows = compare(leaderboard, results)
    print(format_comparisons(rows))
    extra = [m for m in results["methods"] if m not in set(leaderboard.table["method"])]
    if extra:
        print(f"\nnot in the leaderboard, not checked: {', '.join(extra)}")
    if results.get("seeds") != leaderboard.seeds:
        print(f"\nnote: the leaderboard has {leaderboard.seeds} seed(s), the run {results.get('seeds')}")
    failures = [r for r in rows if r.verdict in FAILING]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("ok", "improved", "info", "regression", "missing")}
    print("\n" + ", ".join(f"{n} {v}" for v, n in counts.items()) + (": FAIL" if failures else ": PASS"))
    return EXIT_REGRESSION if failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
