"""One run end to end: build the suite, train every method for every seed, evaluate, aggregate, write results.

Data flow (docs/architecture.md has the picture)::

    preset YAML -> RunConfig -> suite (splits, judges, base model)
      for each seed: RunContext (stage cache) -> method.train(ctx) -> TrainedPolicy -> evaluate_policy
    -> per-seed records -> mean and 95% interval per metric -> results.json, leaderboard.csv, table
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import yaml

from harness import distributed
from harness.annotators import make_annotator
from harness.cache import StageCache, write_atomic
from harness.config import ConfigError, RunConfig
from harness.context import RunContext
from harness.evals.evaluate import evaluate_policy, knowledge_accuracy
from harness.evals.mmlu import knowledge_label
from harness.generation import make_generator
from harness.leaderboard import direction, leaderboard_table
from harness.registry import METHODS, make_suite
from harness.report import write_reports
from harness.suites.hub import resolve_model
from harness.suites.validate import validate_splits
from methods.base import set_mixed_precision

@dataclass
class RunResult:
    """What a run leaves behind in memory: the summary table and where the files are."""

    out_dir: Path
    table: pd.DataFrame
    results: dict


class RunLog:
    """Prints each line and appends it to ``run.log`` in the run dir."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


def run(config: RunConfig, methods: list[str], seeds: int, out_dir: Path, cache_dir: Path | None = None,
        model_cache: Path | None = None) -> RunResult:
    """Trains and evaluates ``methods`` for ``seeds`` seeds; writes results into ``out_dir``.

    Args:
        config: the resolved config (already validated).
        methods: method names from the registry, in the order to train them.
        seeds: number of training seeds (0 .. seeds-1).
        out_dir: the run dir (locked for the duration of the run).
        cache_dir: where stages live; ``out_dir/stages`` by default.
        model_cache: where suites build or convert their base model; :func:`default_model_cache` by default.
    """
    if config.runtime.torch_threads is not None:
        torch.set_num_threads(config.runtime.torch_threads)
    set_mixed_precision(config.runtime.mixed_precision)
    started = time.perf_counter()
    # The judge and the data are checked before the run dir is touched: bad input leaves a finished run as it was.
    with distributed.main_process_first():  # the main process builds or downloads, the others then read
        suite, judge = prepare(config)
        splits = suite.splits()
        validate_splits(splits, suite.eval_sets, f"suite {suite.name}", suite.pairs_from_policy)
    out_dir.mkdir(parents=True, exist_ok=True)
    # With several processes (accelerate launch) all of them train; the main one alone writes (harness.distributed).
    with distributed.run_lock(out_dir):
        main = distributed.is_main_process()
        log = RunLog(out_dir / "run.log") if main else _quiet
        cache = StageCache(cache_dir or out_dir / "stages", log=log)
        if main:
            write_atomic(out_dir / "config.yaml", yaml.safe_dump(
                {"methods": methods, "seeds": seeds, **config.to_dict()}, sort_keys=False))
            cache.remove_stale_temporaries()
        log(f"suite {suite.name}: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()))

        with distributed.main_process_first():
            models_dir = model_cache or default_model_cache()
            base_model = (suite.base_model(models_dir) if config.model.base == "suite"
                          else resolve_model(config.model.base, models_dir, config.model.trust_remote_code))
        generator = make_generator(config.generation, config.model.trust_remote_code)

        per_seed: dict[str, list[dict]] = {m: [] for m in methods}
        diagnostics: dict[str, list[dict]] = {m: [] for m in methods}
        stage_times: list[dict] = []
        for seed in range(seeds):
            ctx = RunContext(config, suite, splits, seed, cache, generator, base_model, log)
            for name in methods:
                log(f"seed {seed}: method {name}")
                t0 = time.perf_counter()
                first_stage = len(ctx.stage_times)
                trained = METHODS[name]().train(ctx)
                record = evaluate_policy(ctx, trained, judge, config.eval.judge)
                record["train_wall_s"] = training_wall_time(ctx.stage_times[first_stage:])
                record["wall_s"] = round(time.perf_counter() - t0, 1)
                per_seed[name].append({"seed": seed, **record})
                diagnostics[name].append({"seed": seed, **trained.diagnostics})
                if main:
                    write_atomic(out_dir / "diagnostics.json", json.dumps(diagnostics, indent=1, default=str))
            stage_times.extend({"seed": seed, **s} for s in ctx.stage_times)
        base_ctx = RunContext(config, suite, splits, 0, cache, generator, base_model, log)
        base = base_model_record(base_ctx)
        stage_times.extend({"seed": 0, **s} for s in base_ctx.stage_times)

        results = aggregate(config.preset, seeds, per_seed)
        results.update(base_model=base, stages=stage_times, diagnostics=diagnostics,
                       wall_s=round(time.perf_counter() - started, 1), judge=config.eval.judge)
        table = leaderboard_table(results)
        if main:
            write_atomic(out_dir / "results.json", json.dumps(results, indent=1, default=_json_default))
            write_atomic(out_dir / "leaderboard.csv", table.to_csv(index=False))
            markdown, html = write_reports(out_dir)
            log(f"reports: {markdown.name}, {html.name}")
        log(f"run finished in {results['wall_s']:.0f}s; results in {out_dir}")
        return RunResult(out_dir, table, results)


def default_model_cache() -> Path:
    """Where base models are built or converted once per user: ``$RLP_HARNESS_CACHE/models``, else
    ``$XDG_CACHE_HOME/rlp-harness/models``, else ``~/.cache/rlp-harness/models`` (as the Hugging Face caches do),
    so a new run dir never rebuilds the tiny base model."""
    root = os.environ.get("RLP_HARNESS_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "rlp-harness" / "models"


def base_model_record(ctx: RunContext) -> dict:
    """The base model every method starts from, with its score on the suite's knowledge task (MMLU in the real
    presets), so a run's MMLU figures can be read against the untrained model and its published score."""
    knowledge = knowledge_accuracy(ctx, ctx.base_model)
    return {"name": Path(ctx.base_model).name, "knowledge": knowledge}


def _quiet(message: str) -> None:
    """The log of the processes other than the main one, which logs for the run."""


def prepare(config: RunConfig):
    """Builds the suite and the judge and checks the judge can run (API key set), before any training.

    Also checks that the trainers' batches split evenly over the processes, which only a launch reveals.

    Raises:
        ConfigError: one line naming the field and what is allowed.
    """
    try:
        for name, size in (("sft.batch_size", config.sft.batch_size), ("reward.batch_size", config.reward.batch_size)):
            distributed.per_process_batch(size, name)
        suite = make_suite(config.suite)
        suite_ready = getattr(suite, "check_ready", None)  # suites with optional packages say what is missing
        if suite_ready is not None:
            suite_ready(uses_base_model=config.model.base == "suite")
        judge = make_annotator(config.eval.judge, suite)
        check_ready = getattr(judge, "check_ready", None)
        if check_ready is not None:
            check_ready()
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return suite, judge


def training_wall_time(stages: list[dict]) -> float:
    """Seconds it took to build every training stage a method used, counting shared stages in full.

    A stage another method built first still counts: this is what the method costs on its own.
    """
    training = {s["path"]: s["build_wall_s"] for s in stages
                if s["stage"] in ("sft", "preference_pairs", "reward", "ppo", "policy_samples")}
    return round(sum(training.values()), 1)


def aggregate(preset: str, seeds: int, per_seed: dict[str, list[dict]]) -> dict:
    """Mean and 95% t-interval over seeds of every numeric metric; per-seed values are kept alongside."""
    methods = {}
    for name, records in per_seed.items():
        metrics = {}
        for key in records[0]:
            values = [r[key] for r in records]
            if key in ("seed", "details") or not all(isinstance(v, (int, float)) for v in values):
                continue
            metrics[key] = summarise(values) | {"higher_is_better": direction(key)}
        methods[name] = {"metrics": metrics, "per_seed": records}
    return {"preset": preset, "seeds": seeds, "methods": methods}


def summarise(values: list[float]) -> dict:
    """Mean, 95% half-interval (Student t over seeds; NaN for one seed), n and the values."""
    finite = [v for v in values if not math.isnan(v)]
    n = len(finite)
    mean = sum(finite) / n if n else float("nan")
    if n > 1:
        from scipy.stats import t

        sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
        half = float(t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    else:
        half = float("nan")
    return {"mean": mean, "ci95": half, "n": n, "values": values}


def format_table(table: pd.DataFrame, results: dict) -> str:
    """The console table: win rates with their interval, and the other headline columns."""
    lines = []
    shown = ["farm_win_rate", "bar_win_rate", "knowledge_acc", "rm_acc_offline", "rm_acc_onpolicy", "rm_drift",
             "proxy_reward", "kl", "avg_length"]
    labels = [knowledge_label(results) if c == "knowledge_acc" else c for c in shown]
    header = f"{'method':<10}" + "".join(f"{c:>18}" for c in labels)
    lines += [header, "-" * len(header)]
    for name, entry in results["methods"].items():
        cells = []
        for column in shown:
            metric = entry["metrics"].get(column)
            cells.append(_cell(metric))
        lines.append(f"{name:<10}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


def _cell(metric: dict | None) -> str:
    if metric is None or math.isnan(metric["mean"]):
        return "-"
    if not math.isnan(metric["ci95"]):
        return f"{metric['mean']:.3g} ± {metric['ci95']:.2g}"
    return f"{metric['mean']:.3g}"


def _json_default(obj: object) -> object:
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return str(obj)
