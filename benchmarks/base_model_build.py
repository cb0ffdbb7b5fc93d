"""The tiny base model's build on one process and on two data-parallel processes, wall time side by side.

    python -m benchmarks.base_model_build                      # the default build (1200 steps), one round
    python -m benchmarks.base_model_build --steps 200 --repeats 3
    python -m benchmarks.base_model_build --busy               # with one CPU-bound process beside every build

Each round builds the base model once per process count, in alternating order, into a fresh dir (nothing cached),
in this process, with one torch thread per process, as a run builds it. Both builds follow the same optimisation
(the two processes split every batch and average their gradients), so the ratio is the price of the same model.

Target (issue: a first run in minutes): the default build within 2.5 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks.common import busy_core, describe_machine, interleaved, machine, paired_ratios, run_and_report, \
    spread, timed
from harness.core.schema import require_positive

TARGET_S = 150.0


@dataclass
class BaseModelBuildBenchConfig:
    """Which build to time, how often, and under which load."""

    steps: int = field(default=1200, metadata={"help": "Pretraining steps of each build (the default model's: 1200)."})
    repeats: int = field(default=1, metadata={"help": "Rounds of (1 process, 2 processes), order alternating."})
    busy: bool = field(default=False, metadata={"help": "Keep one CPU-bound process running beside every build."})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_positive(self, "steps", "repeats")


def run_benchmark(bench: BaseModelBuildBenchConfig, log: Callable[[str], None] = print) -> dict:
    from harness.suites.tiny.config import BaseModelConfig
    from harness.suites.tiny.pretrain import build_base_model

    at_start = machine()
    log(f"machine: {describe_machine(at_start)}; {bench.steps} steps{', one busy process beside' if bench.busy else ''}")
    with tempfile.TemporaryDirectory(prefix="base_model_build-") as scratch:

        def candidate(processes: int) -> Callable[[int], float]:
            config = dataclasses.replace(BaseModelConfig(), steps=bench.steps, processes=processes)

            def one_round(round_index: int) -> float:
                with busy_core(bench.busy):
                    _, wall_s = timed(lambda: build_base_model(config, Path(scratch) / f"r{round_index}-p{processes}",
                                                               num_threads=1))
                log(f"round {round_index}, {processes} process(es): {wall_s:.1f}s")
                return wall_s
            return one_round

        rounds = interleaved({"one_process": candidate(1), "two_processes": candidate(2)}, bench.repeats)
    return {"benchmark": "base_model_build", "machine": at_start, "machine_at_end": machine(), "config": asdict(bench),
            "rounds": rounds, "speedup": paired_ratios(rounds["one_process"], rounds["two_processes"])}


def summary(figures: dict) -> str:
    rounds, steps = figures["rounds"], figures["config"]["steps"]
    lines = [
        f"1 process:   {spread(rounds['one_process'])} s",
        f"2 processes: {spread(rounds['two_processes'])} s",
        f"speed-up 1 / 2 processes (per round): {spread(figures['speedup'])}",
        f"load at start / end: {describe_machine(figures['machine'])} / {describe_machine(figures['machine_at_end'])}",
    ]
    if steps == 1200 and not figures["config"]["busy"]:
        met = "met" if max(rounds["two_processes"]) <= TARGET_S else "not met"
        lines.append(f"default build with 2 processes: target <= {TARGET_S:.0f} s on a quiet machine: {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_and_report(BaseModelBuildBenchConfig, argv, "python -m benchmarks.base_model_build",
                          "The tiny base model's build on 1 and on 2 data-parallel processes (wall time).",
                          run_benchmark, summary)


if __name__ == "__main__":
    sys.exit(main())
