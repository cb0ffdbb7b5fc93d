"""What the benchmarks share: the machine they ran on, interleaved timing, command lines built from config
dataclasses, and a run context on the tiny preset whose stages are cached across invocations.

Timing on these machines is noisy (other jobs share the 2 cores), so a benchmark never compares two numbers
taken minutes apart: it runs the candidates in alternating order within one process (:func:`interleaved`) and
reports the median of the per-round ratios (:func:`paired_ratios`), which cancels load that drifts slowly.

The harness is imported inside functions only: :mod:`benchmarks.ppo_vs_trl` must put TRL 1.12 on ``sys.path``
before anything imports ``trl``, and ``harness.config`` imports the project's TRL through the method configs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
import typing
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence, TypeVar

from harness.core.schema import require_that
from harness.leaderboard import load_results  # noqa: F401  (re-exported: the benchmarks read runs with it)

DEFAULT_CACHE = Path.home() / ".cache" / "rlp-harness"

T = TypeVar("T")
C = TypeVar("C")


def set_offline() -> None:
    """The hub switches (without them every hub look-up waits 24-50 s before failing), and no telemetry."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# -- the machine ----------------------------------------------------------------------------------------------------

def cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` in a /proc/cpuinfo text, or "unknown"."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def machine() -> dict:
    """CPU model, logical cores and load averages (1, 5, 15 min), to print beside every figure."""
    try:
        cpu = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = platform.processor() or "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()]}


def describe_machine(info: dict) -> str:
    load = "/".join(f"{x:.1f}" for x in info["load"])
    return f"{info['cpu']}, {info['cores']} cores, load {load} (1/5/15 min)"


# -- timing ---------------------------------------------------------------------------------------------------------

def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def interleaved(candidates: dict[str, Callable[[int], T]], repeats: int) -> dict[str, list[T]]:
    """Calls every candidate ``repeats`` times, reversing the order each round (A B, B A, A B, ...).

    Alternating the order means neither candidate always runs first (cold caches) or last (after the other
    warmed the machine), and load that drifts within a round hits both alike over the rounds.

    Args:
        candidates: name -> function of the round index (0-based) returning one measurement.
        repeats: rounds.

    Returns:
        name -> the measurements, in round order.
    """
    if repeats <= 0:
        raise ValueError(f"repeats: must be a positive integer, got {repeats!r}")
    names = list(candidates)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            results[name].append(candidates[name](round_index))
    return results


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two interleaved series (same length, denominators non-zero)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"paired_ratios: {len(numerators)} numerators but {len(denominators)} denominators")
    if any(d == 0 for d in denominators):
        raise ValueError("paired_ratios: a denominator is zero")
    return [n / d for n, d in zip(numerators, denominators)]


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); needs two values or more."""
    if len(values) < 2:
        raise ValueError(f"mean_and_standard_error: needs at least 2 values, got {len(values)}")
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


def spread(values: Sequence[float]) -> str:
    """``median (min .., max .., n=..)``: how the benchmarks print a repeated measurement."""
    return f"{statistics.median(values):.3g} (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def run_failed(benchmark: str, command: Sequence[str], returncode: int, log: Path) -> RuntimeError:
    """The error a benchmark raises when a run it started exits with ``returncode``: the command and the last 15
    lines of its output (``log``)."""
    tail = "\n".join(Path(log).read_text().splitlines()[-15:])
    return RuntimeError(f"{benchmark}: {' '.join(command)} exited with {returncode}:\n{tail}")


@contextlib.contextmanager
def busy_core(active: bool) -> Iterator[None]:
    """A process spinning on one core while the block runs (nothing when not ``active``)."""
    if not active:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


# -- command lines from config dataclasses ---------------------------------------------------------------------------

def parse_config(cls: type[C], argv: Sequence[str] | None, prog: str, description: str) -> C:
    """Builds ``cls`` (a dataclass) from the command line: one ``--field-name`` per field, its help text as help.

    Supported field types: int, float, str, Path, bool (``--x/--no-x``), ``tuple[str, ...]`` (one or more values),
    a ``Literal`` of strings (its choices) and any of these ``| None``. A ValueError from the dataclass's validation ends the program with exit status 2
    and its message, the field named as its flag (``--rate: got -1.0; allowed: a number > 0``).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = _without_none(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        options = {"dest": f.name, "default": default, "help": f"{f.metadata['help']} (default: {default})"}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif typing.get_origin(kind) is Literal:
            parser.add_argument(flag, choices=typing.get_args(kind), **options)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, nargs="+", type=typing.get_args(kind)[0], **options)
        else:
            parser.add_argument(flag, type=kind, metavar=f.name.upper(), **options)
    args = parser.parse_args(argv)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()}
    try:
        return cls(**values)
    except ValueError as err:
        field, sep, rest = str(err).partition(":")
        parser.error(f"--{field.replace('_', '-')}:{rest}" if sep and field in values else str(err))


def _without_none(kind: object) -> object:
    """``X | None`` -> ``X``; anything else unchanged."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


# -- the tiny preset, cached -----------------------------------------------------------------------------------------

def tiny_context(cache_dir: Path, overrides: Sequence[str] = (), seed: int = 0, log: Callable[[str], None] = print):
    """A :class:`harness.context.RunContext` on the tiny preset whose stages live under ``cache_dir/stages``.

    The base model is built under ``cache_dir/models`` and every stage (SFT, reward model, ...) is cached, so only
    the first invocation of a benchmark pays for them; later ones measure only what they compare.

    Args:
        cache_dir: the benchmarks' cache (``~/.cache/rlp-harness`` by default).
        overrides: ``section.field=value`` preset overrides, as ``python -m harness.run --set`` takes them.
        seed: the context's training seed.
        log: where stage lines go.
    """
    from harness.cache import StageCache
    from harness.config import load_preset
    from harness.context import RunContext
    from harness.generation import make_generator
    from harness.registry import PRESETS, make_suite

    config = load_preset(PRESETS["tiny"], list(overrides))
    suite = make_suite(config.suite.name, config.suite.options)
    base = suite.base_model(Path(cache_dir) / "models")
    return RunContext(config, suite, suite.splits(), seed, StageCache(Path(cache_dir) / "stages", log=log),
                      make_generator(config.generation), base, log)


class BenchModels(typing.NamedTuple):
    """The checkpoints a benchmark measures and the tiny world's data it prompts them with."""

    config: typing.Any  # harness.config.RunConfig of the tiny preset
    splits: dict  # split name -> datasets.Dataset
    policy: Path
    reward_model: Path | None


def bench_models(cache_dir: Path, policy: Path | None = None, reward_model: Path | None = None,
                 need_reward_model: bool = True) -> BenchModels:
    """The tiny preset's SFT policy and reward model (cached stages), or the given checkpoints instead.

    Given checkpoints (e.g. :mod:`benchmarks.random_models` at SmolLM2-135M size, for GPU throughput) are prompted
    with the same tiny-world instructions; then the tiny base model is never built.
    """
    from harness.config import load_preset
    from harness.registry import PRESETS, make_suite

    if policy is None:
        ctx = tiny_context(cache_dir)
        return BenchModels(ctx.config, ctx.splits, ctx.sft(), ctx.reward_model() if need_reward_model else None)
    config = load_preset(PRESETS["tiny"], [])
    return BenchModels(config, make_suite(config.suite.name, config.suite.options).splits(), Path(policy),
                       Path(reward_model) if reward_model is not None else None)


def require_model_dir(config: object, name: str) -> None:
    """Checks that a benchmark config's field ``name`` is None or a model dir (one with a config.json)."""
    path = getattr(config, name)
    require_that(path is None or (Path(path) / "config.json").is_file(), config, name,
                 "a model dir (one with a config.json) or null")


def require_models(config: object) -> None:
    """Checks a benchmark config's ``policy`` and ``reward_model`` fields: both or neither, each a model dir."""
    require_that((config.policy is None) == (config.reward_model is None), config, "reward_model",
                 f"a model dir when policy is given, null when it is not (policy ({str(config.policy)!r}))")
    require_model_dir(config, "policy")
    require_model_dir(config, "reward_model")


def require_finished_run(config: object, name: str = "run") -> None:
    """Checks that a benchmark config's field ``name`` is None or a finished harness.run dir."""
    run = getattr(config, name)
    require_that(run is None or (Path(run) / "results.json").is_file(), config, name,
                 "the dir of a finished harness.run (with a results.json) or null")


MixedPrecision = Literal["no", "bf16", "fp16"]  # the benchmarks' choice of precision (the CPU runs float32)
MIXED_PRECISION_HELP = ("'no' (float32), 'bf16' or 'fp16': our PPO's accelerate mixed precision, TRL's "
                        "bf16/fp16 flag and the sampler's weights (GPU only; the CPU runs float32).")


# -- a run's stages ---------------------------------------------------------------------------------------------------

GENERATION_STAGES = ("policy_samples", "eval_", "drift_samples", "proxy_samples")


def is_generation_stage(name: str) -> bool:
    """Stages that only generate text: the RLP sample set, evaluation outputs, drift and proxy samples.

    PPO's own rollouts are generated inside the ``ppo`` stage and are not counted here.
    """
    return any(name == prefix or (prefix.endswith("_") and name.startswith(prefix)) for prefix in GENERATION_STAGES)


def stage_seconds(stages: list[dict]) -> dict[str, float]:
    """Seconds a run spent building each kind of stage, from its results.json ``stages`` list.

    The list has one entry per use of a stage; a reused one (built earlier in the run, or by an earlier run) cost
    this run nothing, so only entries with ``reused`` false count.
    """
    totals: dict[str, float] = {}
    for entry in stages:
        if not entry["reused"]:
            totals[entry["stage"]] = totals.get(entry["stage"], 0.0) + entry["build_wall_s"]
    return totals


# -- harness runs at a reduced budget ---------------------------------------------------------------------------------

# `--set` overrides that shrink a tiny-preset run to about a minute of 2 idle cores for all four methods, through
# the same code path as the default run: smaller splits and base model, fewer epochs and PPO steps, shorter
# responses, fewer RLP samples.
REDUCED_BUDGET = (
    "suite.sft_size=200", "suite.preference_size=200", "suite.unlabeled_size=24", "suite.val_size=24",
    "suite.farm_size=16", "suite.bar_size=16",
    "suite.base_model.hidden_size=32", "suite.base_model.num_layers=2", "suite.base_model.num_heads=2",
    "suite.base_model.intermediate_size=64", "suite.base_model.steps=20", "suite.base_model.warmup_steps=2",
    "sft.epochs=1", "reward.epochs=1",
    "ppo.num_steps=2", "ppo.rollout_batch_size=8", "ppo.minibatch_size=4", "ppo.save_every=1",
    "ppo.reward_normalization_samples=16",
    "ppo.max_new_tokens=12", "generation.max_new_tokens=12",
    "policy_samples.n=4", "policy_samples.max_instructions=12",
    "uml.batch_size=4", "eval.drift_instructions=8", "best_of_n.n=4", "eval.overoptimisation_max_n=8",
    "eval.overoptimisation_ppo_steps=2",
    "expert_iteration.n=2", "grpo.num_steps=2", "grpo.prompts_per_step=2", "grpo.num_generations=2",
    "grpo.max_new_tokens=12", "grpo.save_every=1",
)


def harness_run_args(out_dir: Path, methods: Sequence[str], overrides: Sequence[str], stage_cache: Path) -> list[str]:
    """The arguments of ``python -m harness.run`` for one run, its stages in ``stage_cache``.

    A benchmark names the stage cache: by default a run reuses the stages of every earlier run of the user (and
    :func:`shared_model_cache` points that default at the benchmarks' cache), so a timed run would build nothing.
    """
    sets = [arg for override in overrides for arg in ("--set", override)]
    return ["--methods", *methods, "--out", str(out_dir), "--cache", str(stage_cache), *sets]


def harness_run_command(out_dir: Path, methods: Sequence[str], overrides: Sequence[str],
                        stage_cache: Path) -> list[str]:
    """The ``python -m harness.run`` command line of one run, with this interpreter (:func:`harness_run_args`)."""
    return [sys.executable, "-m", "harness.run", *harness_run_args(out_dir, methods, overrides, stage_cache)]


@contextlib.contextmanager
def shared_model_cache(cache_dir: Path, overrides: Sequence[str]) -> Iterator[Path]:
    """Builds the preset's base model once in ``cache_dir/models`` and points every run started inside the block
    at that cache (``RLP_HARNESS_CACHE``, read by :func:`harness.cache.user_cache_dir` in this process and in the
    runs it starts), so a benchmark times runs, not base-model builds, and leaves the user's cache alone. The runs'
    stages go where :func:`harness_run_args` says, not into that cache."""
    from harness.config import load_preset
    from harness.registry import PRESETS, make_suite

    models = Path(cache_dir) / "models"
    suite = load_preset(PRESETS["tiny"], list(overrides)).suite
    make_suite(suite.name, suite.options).base_model(models)
    before = os.environ.get("RLP_HARNESS_CACHE")
    os.environ["RLP_HARNESS_CACHE"] = str(Path(cache_dir).resolve())
    try:
        yield models
    finally:
        if before is None:
            del os.environ["RLP_HARNESS_CACHE"]
        else:
            os.environ["RLP_HARNESS_CACHE"] = before


def run_and_report(cls: type[C], argv: Sequence[str] | None, prog: str, description: str,
                   run_benchmark: Callable[[C], dict], summary: Callable[[dict], str]) -> int:
    """The main of a benchmark: parse its config, run it, print the summary, save the figures if asked."""
    set_offline()
    bench = parse_config(cls, argv, prog, description)
    figures = run_benchmark(bench)
    print(summary(figures))
    if bench.out is not None:
        bench.out.write_text(json.dumps(figures, indent=1, default=str))
    return 0
