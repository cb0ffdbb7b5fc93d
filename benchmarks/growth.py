"""How a run's wall time and memory grow with the work: |U|, seeds and jobs, at the tiny preset's full budget.

    python -m benchmarks.growth                                  # the six default points (the first five: 40 min)
    python -m benchmarks.growth --points 500:1:2 8000:1:2        # |U|:seeds:jobs

Each point is one fresh ``python -m harness.run --methods ppo rlp_spg`` (its own stage cache, so every stage is
built; the base model comes from the shared model cache, built beforehand) with ``--seeds`` and ``--jobs`` set and
|U|, RLP's policy-sample instructions, set through ``policy_samples.per_preference_pair`` (|U| / |D|, D the
preference split). Measured per point: wall time, peak resident memory of the run's whole process tree (sampled
every half second, workers included), and the seconds its stages took to build: RLP's policy samples (the one
stage linear in |U|), the reward models (the original and the refined one, which trains on D plus SPG's pairs from
U), PPO (both runs) and the rest. SPG's own scoring and clustering run inside the method, outside any stage.

The default points vary one axis at a time from (|U| 500, 1 seed, 2 jobs): |U| 2000 and 8000 (the paper's
|U| = 2|D|), seeds 3 and 5, and 1 job at 3 seeds beside 2 jobs at 3 seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks.common import DEFAULT_CACHE, describe_machine, harness_run_command, machine, run_and_report, \
    run_failed, shared_model_cache, timed
from harness.core.schema import require_that

DEFAULT_POINTS = ("500:1:2", "2000:1:2", "8000:1:2", "500:3:2", "500:5:2", "500:3:1")
SPLIT_STAGES = ("policy_samples", "reward", "ppo")


@dataclass
class GrowthBenchConfig:
    """Which points to run."""

    points: tuple[str, ...] = field(default=DEFAULT_POINTS,
                                    metadata={"help": "Points as |U|:seeds:jobs, each one fresh run."})
    methods: tuple[str, ...] = field(default=("ppo", "rlp_spg"), metadata={"help": "--methods of every run."})
    cache_dir: Path = field(default=DEFAULT_CACHE, metadata={"help": "Where the shared base model is kept."})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        for point in self.points:
            parts = point.split(":")
            require_that(len(parts) == 3 and all(p.isdigit() and int(p) > 0 for p in parts), self, "points",
                         "entries like 500:1:2 (|U|:seeds:jobs, positive integers)")


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def run_point(point: str, root: Path, methods: tuple[str, ...], preference_size: int) -> dict:
    """One fresh run at ``point``: its wall time, peak tree memory and stage seconds."""
    unlabeled, seeds, jobs = (int(p) for p in point.split(":"))
    out = root / point.replace(":", "-")
    overrides = [f"policy_samples.per_preference_pair={unlabeled / preference_size}"]
    command = [*harness_run_command(out, methods, overrides, root / f"{out.name}-stages"),
               "--seeds", str(seeds), "--jobs", str(jobs)]
    peak, done = [0], threading.Event()
    with (root / f"{out.name}.out").open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def watch() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], _tree_rss(process.pid))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        returncode, wall_s = timed(process.wait)
        done.set()
        watcher.join()
    if returncode != 0:
        raise run_failed("growth", command, returncode, root / f"{out.name}.out")
    stages = json.loads((out / "results.json").read_text())["stages"]
    stage_s = dict.fromkeys([*SPLIT_STAGES, "other"], 0.0)
    for stage in stages:
        if not stage["reused"]:
            stage_s[stage["stage"] if stage["stage"] in SPLIT_STAGES else "other"] += stage["build_wall_s"]
    return {"point": point, "unlabeled": unlabeled, "seeds": seeds, "jobs": jobs, "wall_s": wall_s,
            "peak_rss_gb": peak[0] / 1e9, "stage_s": stage_s}


def run_benchmark(bench: GrowthBenchConfig, log: Callable[[str], None] = print) -> dict:
    from harness.suites.tiny.config import TinyWorldConfig

    at_start = machine()
    log(f"machine: {describe_machine(at_start)}; --methods {' '.join(bench.methods)}")
    records = []
    with tempfile.TemporaryDirectory(prefix="growth-") as scratch, shared_model_cache(bench.cache_dir, ()):
        for point in bench.points:
            record = run_point(point, Path(scratch), bench.methods, TinyWorldConfig().preference_size)
            record["load_after"] = machine()["load"]
            log(f"{point}: {record['wall_s']:.0f} s, peak {record['peak_rss_gb']:.2f} GB")
            records.append(record)
    return {"benchmark": "growth", "machine": at_start, "machine_at_end": machine(), "config": asdict(bench),
            "points": records}


def summary(figures: dict) -> str:
    names = [*SPLIT_STAGES, "other"]
    lines = ["| U | seeds | jobs | wall (s) | peak memory (GB) | " + " | ".join(f"{n} (stage s)" for n in names)
             + " | load after |", "|---" * (6 + len(names)) + "|"]
    for r in figures["points"]:
        lines.append(f"| {r['unlabeled']} | {r['seeds']} | {r['jobs']} | {r['wall_s']:.0f} | {r['peak_rss_gb']:.2f} | "
                     + " | ".join(f"{r['stage_s'][n]:.0f}" for n in names)
                     + f" | {'/'.join(f'{x:.1f}' for x in r['load_after'])} |")
    lines.append(f"load at start: {describe_machine(figures['machine'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_and_report(GrowthBenchConfig, argv, "python -m benchmarks.growth",
                          "Wall time and peak memory of runs as |U|, seeds and jobs grow.", run_benchmark, summary)


if __name__ == "__main__":
    sys.exit(main())
