"""Stage sharing: one run of four methods against four single-method runs, wall time.

    python -m benchmarks.stage_sharing                    # reduced budget, 3 rounds of 5 harness runs each
    python -m benchmarks.stage_sharing --repeats 1 --overrides ppo.num_steps=8

``python -m harness.run --methods sft ppo rlp_uml rlp_spg`` trains the SFT model, the reward model and the first
PPO policy once and shares them (and RLP's policy samples) between the methods. This benchmark times that run
against the sum of the four runs ``--methods sft``, ``--methods ppo``, ... that a user without sharing would make,
each in a fresh out dir with a fresh stage cache, all at the same reduced budget (``--set`` overrides, see
:data:`benchmarks.common.REDUCED_BUDGET`). The base model is built once beforehand and shared by every run, as
the user's model cache is. The target is a ratio of at most 0.5. Each run is its own process, as a user would start it,
so interpreter start-up and imports count in both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks.common import (
    DEFAULT_CACHE,
    describe_machine,
    harness_run_command,
    interleaved,
    machine,
    paired_ratios,
    REDUCED_BUDGET,
    run_and_report,
    shared_model_cache,
    spread,
    timed,
)
from harness.core.schema import require_positive, require_that

METHODS = ("sft", "ppo", "rlp_uml", "rlp_spg")
# The run.log line of a stage being built (the libraries' messages share the log).
STAGE_TRAINING = re.compile(r"\[\d\d:\d\d:\d\d\] stage \S+ +training ")
TARGET_RATIO = 0.5


@dataclass
class StageSharingBenchConfig:
    """How many rounds to run and at which budget."""

    repeats: int = field(
        default=3, metadata={"help": "Rounds of (one shared run, four single runs), order alternating."}
    )
    overrides: tuple[str, ...] = field(
        default=(), metadata={"help": "Extra section.field=value overrides, applied after the reduced budget."}
    )
    cache_dir: Path = field(default=DEFAULT_CACHE, metadata={"help": "Where the shared base model is kept."})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_positive(self, "repeats")
        require_that(all("=" in override for override in self.overrides), self, "overrides",
                     "section.field=value items")


def trained_stages(run_dir: Path) -> int:
    """How many stages a run built (its run.log has one ``[hh:mm:ss] stage <name> training`` line per built stage;
    the libraries' messages in the same log are not counted, even where they say "training")."""
    return sum(bool(STAGE_TRAINING.match(line)) for line in (run_dir / "run.log").read_text().splitlines())


def run_harness(out_dir: Path, methods: tuple[str, ...], overrides: tuple[str, ...]) -> dict:
    """One ``python -m harness.run`` process with a stage cache of its own: its wall time, the run's own
    (results.json ``wall_s``: without interpreter start-up and imports), and how many stages it built.

    Raises:
        RuntimeError: the run failed; the message ends with its last output lines.
    """
    command = harness_run_command(out_dir, methods, overrides, stage_cache=out_dir.parent / f"{out_dir.name}-stages")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = out_dir.parent / f"{out_dir.name}.out"
    with log.open("w") as sink:
        done, wall_s = timed(lambda: subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT))
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"stage_sharing: {' '.join(command)} exited with {done.returncode}:\n{tail}")
    run_wall_s = json.loads((out_dir / "results.json").read_text())["wall_s"]
    return {"methods": list(methods), "wall_s": wall_s, "run_wall_s": run_wall_s,
            "stages_built": trained_stages(out_dir)}


def run_benchmark(bench: StageSharingBenchConfig, log: Callable[[str], None] = print) -> dict:
    overrides = REDUCED_BUDGET + bench.overrides
    at_start = machine()
    log(f"machine: {describe_machine(at_start)}; each run uses the tiny preset's torch threads (runtime section)")
    with tempfile.TemporaryDirectory(prefix="stage_sharing-") as scratch, \
            shared_model_cache(bench.cache_dir, overrides):
        root = Path(scratch)

        def shared(round_index: int) -> dict:
            record = run_harness(root / f"r{round_index}-all", METHODS, overrides)
            log(f"round {round_index} one run, four methods: {record['wall_s']:.1f}s "
                f"(in-run {record['run_wall_s']:.1f}s), {record['stages_built']} stages built")
            return record

        def separate(round_index: int) -> dict:
            runs = [run_harness(root / f"r{round_index}-{m}", (m,), overrides) for m in METHODS]
            record = {"runs": runs, **{key: sum(r[key] for r in runs)
                                       for key in ("wall_s", "run_wall_s", "stages_built")}}
            each = ", ".join(f"{m} {r['wall_s']:.0f}s" for m, r in zip(METHODS, runs))
            log(f"round {round_index} four single runs: {record['wall_s']:.1f}s ({each}; in-run "
                f"{record['run_wall_s']:.1f}s), {record['stages_built']} stages built")
            return record

        rounds = interleaved({"shared": shared, "separate": separate}, bench.repeats)
    return {
        "benchmark": "stage_sharing", "machine": at_start, "config": asdict(bench),
        "overrides": list(overrides), "rounds": rounds,
        "ratio_shared_over_separate": paired_ratios([r["wall_s"] for r in rounds["shared"]],
                                                    [r["wall_s"] for r in rounds["separate"]]),
        "in_run_ratio_shared_over_separate": paired_ratios([r["run_wall_s"] for r in rounds["shared"]],
                                                           [r["run_wall_s"] for r in rounds["separate"]]),
    }


def summary(figures: dict) -> str:
    rounds = figures["rounds"]
    ratio = figures["ratio_shared_over_separate"]
    met = "met" if max(ratio) <= TARGET_RATIO else "not met"
    return "\n".join([
        f"one run of {' '.join(METHODS)}: {spread([r['wall_s'] for r in rounds['shared']])} s, "
        f"{rounds['shared'][0]['stages_built']} stages built",
        f"sum of four single runs:      {spread([r['wall_s'] for r in rounds['separate']])} s, "
        f"{rounds['separate'][0]['stages_built']} stages built",
        f"ratio shared / separate (per round): {spread(ratio)}; target <= {TARGET_RATIO}: {met}",
        f"the same without process start-up (results.json wall_s): "
        f"{spread(figures['in_run_ratio_shared_over_separate'])}",
    ])


def main(argv: list[str] | None = None) -> int:
    return run_and_report(StageSharingBenchConfig, argv, "python -m benchmarks.stage_sharing", "One run of four methods against the sum of four single-method runs (wall time).",
                          run_benchmark, summary)


if __name__ == "__main__":
    sys.exit(main())
