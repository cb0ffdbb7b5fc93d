"""Parallel jobs: the same run with ``--jobs 1`` and ``--jobs 2``, wall time side by side, quiet or beside a busy
process.

    python -m benchmarks.parallel_jobs                         # --methods all --seeds 3 at the tiny preset (long)
    python -m benchmarks.parallel_jobs --reduced --repeats 3   # the same command at the reduced budget (minutes)
    python -m benchmarks.parallel_jobs --busy                  # with one CPU-bound process beside every run

Each round runs the command once per job count, in alternating order, each in a fresh out dir with a fresh stage
cache (so every stage is built), as its own ``python -m harness.run`` process. The base model is built once
beforehand and shared, as the user's model cache is. With ``--busy`` a process that spins on one core
(``while True: pass``) runs for the length of every run, the situation in which two torch threads per process ran
over six times slower than one (docs/performance.md); jobs of one thread each must not lose to one job there.

Targets: at least 1.8x on a quiet 2-core machine; with ``--busy``, no slower than one job (ratio >= 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks.common import (
    DEFAULT_CACHE,
    REDUCED_BUDGET,
    busy_core,
    describe_machine,
    harness_run_command,
    interleaved,
    machine,
    paired_ratios,
    run_and_report,
    run_failed,
    shared_model_cache,
    spread,
    timed,
)
from harness.core.schema import require_positive

QUIET_TARGET = 1.8
BUSY_TARGET = 1.0


@dataclass
class ParallelJobsBenchConfig:
    """Which command to time, how often, and under which load."""

    methods: tuple[str, ...] = field(default=("all",), metadata={"help": "--methods of the timed run."})
    seeds: int = field(default=3, metadata={"help": "--seeds of the timed run."})
    reduced: bool = field(default=False, metadata={"help": "Run at the reduced budget (benchmarks.common) instead "
                                                   "of the tiny preset's own."})
    busy: bool = field(default=False, metadata={"help": "Keep one CPU-bound process running beside every run."})
    repeats: int = field(default=1, metadata={"help": "Rounds of (1 job, 2 jobs), order alternating."})
    cache_dir: Path = field(default=DEFAULT_CACHE, metadata={"help": "Where the shared base model is kept."})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_positive(self, "seeds", "repeats")


def run_harness(out_dir: Path, bench: ParallelJobsBenchConfig, overrides: tuple[str, ...], jobs: int) -> dict:
    """One ``python -m harness.run`` process with its own stage cache: its wall time and the run's own.

    Raises:
        RuntimeError: the run failed; the message ends with its last output lines.
    """
    command = [*harness_run_command(out_dir, bench.methods, overrides, out_dir.parent / f"{out_dir.name}-stages"),
               "--seeds", str(bench.seeds), "--jobs", str(jobs)]
    log = out_dir.parent / f"{out_dir.name}.out"
    with log.open("w") as sink, busy_core(bench.busy):
        done, wall_s = timed(lambda: subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                                    stdout=sink, stderr=subprocess.STDOUT))
    if done.returncode != 0:
        raise run_failed("parallel_jobs", command, done.returncode, log)
    results = json.loads((out_dir / "results.json").read_text())
    return {"jobs": jobs, "wall_s": wall_s, "run_wall_s": results["wall_s"]}


def run_benchmark(bench: ParallelJobsBenchConfig, log: Callable[[str], None] = print) -> dict:
    overrides = REDUCED_BUDGET if bench.reduced else ()
    at_start = machine()
    log(f"machine: {describe_machine(at_start)}; --methods {' '.join(bench.methods)} --seeds {bench.seeds}"
        f"{' at the reduced budget' if bench.reduced else ''}{', one busy process beside' if bench.busy else ''}")
    with tempfile.TemporaryDirectory(prefix="parallel_jobs-") as scratch, \
            shared_model_cache(bench.cache_dir, overrides):
        root = Path(scratch)

        def candidate(jobs: int) -> Callable[[int], dict]:
            def one_round(round_index: int) -> dict:
                record = run_harness(root / f"r{round_index}-jobs{jobs}", bench, overrides, jobs)
                log(f"round {round_index}, {jobs} job(s): {record['wall_s']:.1f}s (in-run {record['run_wall_s']:.1f}s)")
                return record
            return one_round

        rounds = interleaved({"one_job": candidate(1), "two_jobs": candidate(2)}, bench.repeats)
    return {
        "benchmark": "parallel_jobs", "machine": at_start, "machine_at_end": machine(), "config": asdict(bench),
        "overrides": list(overrides), "rounds": rounds,
        "speedup": paired_ratios([r["wall_s"] for r in rounds["one_job"]], [r["wall_s"] for r in rounds["two_jobs"]]),
    }


def summary(figures: dict) -> str:
    rounds, speedup = figures["rounds"], figures["speedup"]
    busy = figures["config"]["busy"]
    target = BUSY_TARGET if busy else QUIET_TARGET
    met = "met" if min(speedup) >= target else "not met"
    return "\n".join([
        f"1 job:  {spread([r['wall_s'] for r in rounds['one_job']])} s",
        f"2 jobs: {spread([r['wall_s'] for r in rounds['two_jobs']])} s",
        f"speed-up 1 job / 2 jobs (per round): {spread(speedup)}; target >= {target} "
        f"({'beside a busy process' if busy else 'quiet machine'}): {met}",
        f"load at start / end: {describe_machine(figures['machine'])} / {describe_machine(figures['machine_at_end'])}",
    ])


def main(argv: list[str] | None = None) -> int:
    return run_and_report(ParallelJobsBenchConfig, argv, "python -m benchmarks.parallel_jobs",
                          "One run with 1 and with 2 parallel jobs (wall time), quiet or beside a busy process.",
                          run_benchmark, summary)


if __name__ == "__main__":
    sys.exit(main())
