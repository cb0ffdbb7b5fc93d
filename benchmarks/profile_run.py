"""Where a run's time goes: its wall time per stage (from results.json) and a cProfile of one run.

    python -m benchmarks.profile_run                      # the default run (--methods ppo rlp_spg), profiled
    python -m benchmarks.profile_run --reduced            # the same methods at the reduced budget (seconds)
    python -m benchmarks.profile_run --run runs/tiny      # only the stage breakdown of a finished run

A profiled run executes ``harness.run.main`` in this process under cProfile, in a temporary out dir with a stage
cache of its own (the base model is built once and shared through the benchmarks' cache, so it is not in the
figures; the stages are built, as by a first run). cProfile slows
Python-heavy code, so its wall time is an upper bound of the unprofiled run's; the stage shares and the ranking of
functions are what it is for. Two views of the profile are printed: the functions with the largest cumulative
time, and the time spent inside a few named kinds of work (they nest, so their shares do not add up to 100%).
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from benchmarks.common import (
    DEFAULT_CACHE,
    REDUCED_BUDGET,
    describe_machine,
    harness_run_args,
    load_results,
    machine,
    parse_config,
    require_finished_run,
    set_offline,
    shared_model_cache,
    stage_seconds,
    timed,
)
from harness.core.schema import require_positive


@dataclass
class ProfileBenchConfig:
    """Which run to profile, or which finished run to break down."""

    methods: tuple[str, ...] = field(
        default=("ppo", "rlp_spg"), metadata={"help": "Methods of the profiled run (the default run's)."}
    )
    reduced: bool = field(
        default=False,
        metadata={"help": "Profile at the reduced budget (benchmarks.common.REDUCED_BUDGET, seconds) instead of "
                          "the tiny preset's own (about 4 minutes on 2 cores)."},
    )
    overrides: tuple[str, ...] = field(
        default=(), metadata={"help": "Extra section.field=value overrides for the profiled run."}
    )
    top: int = field(default=25, metadata={"help": "Functions listed by cumulative time."})
    run: Path | None = field(
        default=None,
        metadata={"help": "A finished run dir to break down by stage instead of profiling a new run."},
    )
    cache_dir: Path = field(default=DEFAULT_CACHE, metadata={"help": "Where the shared base model is kept."})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})
    profile_out: Path | None = field(
        default=None, metadata={"help": "Also save the raw profile here (readable by pstats or snakeviz)."}
    )

    def __post_init__(self) -> None:
        require_positive(self, "top")
        require_finished_run(self)


class Kind(NamedTuple):
    """A named kind of work, recognised in a profile by a function name and a piece of its file path."""

    label: str
    function: str
    path_part: str


KINDS = (
    Kind("module imports", "_find_and_load", "importlib._bootstrap"),
    Kind("text generation (transformers generate)", "generate", "transformers/generation/utils.py"),
    Kind("our PPO loop (harness.trainers.ppo.train_ppo)", "train_ppo", "harness/trainers/ppo.py"),
    Kind("TRL trainers (SFT, reward model)", "train", "transformers/trainer.py"),
    Kind("autograd backward", "backward", "torch/_tensor.py"),
    Kind("optimiser steps", "wrapper", "torch/optim/optimizer.py"),
    Kind("lm-eval knowledge task", "simple_evaluate", "lm_eval/evaluator.py"),
    Kind("reward-model scoring (RewardModelScorer.score)", "score", "harness/trainers/scoring.py"),
    Kind("checkpoint saving (save_pretrained)", "save_pretrained", "transformers/modeling_utils.py"),
    Kind("checkpoint loading (from_pretrained)", "from_pretrained", "transformers/modeling_utils.py"),
    Kind("chat templates (apply_chat_template)", "apply_chat_template", "transformers/tokenization_utils_base.py"),
    Kind("reports (markdown, HTML, plots)", "write_reports", "harness/report/"),
)


def time_by_kind(stats: pstats.Stats, kinds: tuple[Kind, ...] = KINDS) -> dict[str, float]:
    """Cumulative seconds inside each kind of work (the largest cumulative time among its matching functions).

    The largest, not the sum: one kind's functions call each other (``from_pretrained`` of several classes),
    and a cumulative time already includes its callees.
    """
    result = {}
    for kind in kinds:
        matches = [cumulative for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items()
                   if name == kind.function and kind.path_part in path.replace("\\", "/")]
        result[kind.label] = max(matches, default=0.0)
    return result


def stage_table(results: dict) -> list[tuple[str, float, float]]:
    """(stage kind, seconds, share of the run's wall time) for every kind the run built, largest first,
    then the time outside any stage (suite, base model, judges, reports)."""
    seconds = stage_seconds(results["stages"])
    wall = results["wall_s"]
    rows = [(name, s, s / wall) for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])]
    outside = wall - sum(seconds.values())
    return rows + [("(outside stages)", outside, outside / wall)]


def profile_run(bench: ProfileBenchConfig) -> tuple[dict, pstats.Stats, float]:
    """Runs harness.run under cProfile in a temporary dir; returns its results.json, the profile and wall time."""
    from harness.run import main as harness_main

    overrides = (REDUCED_BUDGET if bench.reduced else ()) + bench.overrides
    with tempfile.TemporaryDirectory(prefix="profile_run-") as scratch, shared_model_cache(bench.cache_dir, overrides):
        out = Path(scratch) / "run"
        argv = harness_run_args(out, bench.methods, overrides, stage_cache=Path(scratch) / "stages")
        profiler = cProfile.Profile()
        status, wall_s = timed(lambda: profiler.runcall(harness_main, argv))
        if status != 0:
            raise RuntimeError(f"profile_run: harness.run {' '.join(argv)} exited with {status}")
        results = load_results(out)
    return results, pstats.Stats(profiler), wall_s


def format_breakdown(results: dict) -> str:
    lines = [f"run wall time {results['wall_s']:.1f}s; stages built, by kind:"]
    lines += [f"  {name:<18} {s:8.1f}s {share:6.1%}" for name, s, share in stage_table(results)]
    return "\n".join(lines)


def format_profile(stats: pstats.Stats, wall_s: float, top: int) -> str:
    lines = [f"profiled wall time {wall_s:.1f}s; time inside named kinds of work (nested, shares overlap):"]
    for label, seconds in sorted(time_by_kind(stats).items(), key=lambda kv: -kv[1]):
        lines.append(f"  {label:<48} {seconds:8.1f}s {seconds / wall_s:6.1%}")
    buffer = io.StringIO()
    stats.stream = buffer
    stats.sort_stats("cumulative").print_stats(top)
    listing = buffer.getvalue()
    lines += [f"top {top} functions by cumulative time:", listing[listing.index("ncalls"):].rstrip()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    set_offline()
    bench = parse_config(ProfileBenchConfig, argv, "python -m benchmarks.profile_run",
                         "A run's wall time per stage and a cProfile of where its time goes.")
    figures = {"benchmark": "profile_run", "machine": machine(), "config": asdict(bench)}
    print(f"machine: {describe_machine(figures['machine'])}")
    if bench.run is not None:
        results = load_results(bench.run)
        print(format_breakdown(results))
    else:
        results, stats, wall_s = profile_run(bench)
        print(format_breakdown(results))
        print(format_profile(stats, wall_s, bench.top))
        figures.update(profiled_wall_s=wall_s, time_by_kind=time_by_kind(stats))
        if bench.profile_out is not None:
            stats.dump_stats(bench.profile_out)
    figures.update(wall_s=results["wall_s"], stages=[list(row) for row in stage_table(results)])
    if bench.out is not None:
        bench.out.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
