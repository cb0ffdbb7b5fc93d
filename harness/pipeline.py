"""One run end to end: build the suite, train every method for every seed, evaluate, aggregate, write results.

Data flow (docs/architecture.md has the picture)::

    preset YAML -> RunConfig -> suite (splits, judges, base model)
      for each seed: RunContext (stage cache) -> method.train(ctx) -> TrainedPolicy -> evaluate_policy
    -> per-seed records -> mean and 95% interval per metric -> results.json, leaderboard.csv, table
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import yaml

from harness import distributed, logs, results_json, rundir
from harness import jobs as jobs_module
from harness.annotators import make_annotator
from harness.cache import StageCache, default_stage_cache, user_cache_dir
from harness.config import RunConfig
from harness.context import RunContext
from harness.core.errors import ConfigError
from harness.core.metrics import Metric, MetricSpec
from harness.core.precision import set_mixed_precision
from harness.evals import overoptimisation
from harness.evals.evaluate import evaluate_policy, knowledge_accuracy
from harness.evals.paired import compare_methods
from harness.generation import make_generator
from harness.jobs import Task
from harness.leaderboard import leaderboard_table
from harness.outputs import export_outputs
from harness.registry import make_method, make_suite, row_labels
from harness.report import write_reports
from harness.stats import t_half_width
from harness.suites.hub import resolve_model
from harness.suites.validate import validate_splits
from harness.trainers.tracking import reporting_to


# What a method costs: the time its training stages took (lower is better), and its whole time in this run, which
# depends on what other methods built first, so it ranks nothing.
TRAINING_TIME = MetricSpec(higher_is_better=False, unit="seconds", low=0.0)
WALL_TIME = MetricSpec(higher_is_better=None, unit="seconds", low=0.0)


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
        line = f"[{time.strftime('%H:%M:%S')}] {jobs_module.job_label()}{message}"
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


def run(config: RunConfig, methods: list[str], seeds: int, out_dir: Path, cache_dir: Path | None = None,
        model_cache: Path | None = None, verbose: bool = False, report_to: str = "none",
        overwrite: bool = False) -> RunResult:
    """Trains and evaluates ``methods`` for ``seeds`` seeds; writes results into ``out_dir``.

    Args:
        config: the resolved config (already validated); ``runtime.jobs`` says how many worker processes train
            and evaluate at once (:func:`job_count`).
        methods: method names from the registry, in the order to train them.
        seeds: number of training seeds (0 .. seeds-1).
        out_dir: the run dir (locked for the duration of the run).
        cache_dir: where stages live; the user's stage cache (:func:`harness.cache.default_stage_cache`), shared
            by every run, by default.
        model_cache: where suites build or convert their base model; :func:`default_model_cache` by default.
        verbose: show the libraries' warnings, logs and progress bars on the console too (always in ``run.log``).
        report_to: the experiment tracker of the trainers and PPO (:data:`harness.trainers.tracking.TRACKERS`), logging
            under ``out_dir/tracking``.
        overwrite: write into ``out_dir`` even if it holds another command's finished run or files the harness
            did not write (:mod:`harness.rundir`); otherwise such a dir is refused.

    Raises:
        ConfigError: bad input found once the run started (a ``model.base`` that is not a model).
        RunDirError: ``out_dir`` is not a dir this run may write into.
        RunLockedError: another run holds ``out_dir``.
    """
    global _ENVIRONMENT
    jobs, fewer_jobs_why = job_count(config)
    threads = torch_threads(config, jobs)
    if threads is not None:
        torch.set_num_threads(threads)
    set_mixed_precision(config.runtime.mixed_precision)
    started = time.perf_counter()
    identity = rundir.identity(methods, seeds, config.to_dict())
    rundir.check_out(out_dir, identity, overwrite)
    # The judge and the data are checked before the run dir is touched: bad input leaves a finished run as it was.
    with distributed.main_process_first():  # the main process builds or downloads, the others then read
        suite, judge = prepare(config)
        splits = suite.splits()
        validate_splits(splits, suite.eval_sets, f"suite {suite.name}", suite.pairs_from_policy)
    # With several processes (accelerate launch) all of them train; the main one alone writes (harness.distributed).
    main = distributed.is_main_process()
    with (distributed.run_lock(out_dir, identity, overwrite),
          logs.library_output(out_dir / "run.log" if main else Path(os.devnull), verbose),
          reporting_to(report_to, out_dir / "tracking")):
        log = RunLog(out_dir / "run.log") if main else _quiet
        cache_dir = cache_dir or default_stage_cache()
        cache = StageCache(cache_dir, log=log)
        if main:
            cache.remove_stale_temporaries()
        log(f"stage cache {cache.root} (python -m harness.cache ls|du|prune)")
        log(f"suite {suite.name}: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()))

        with distributed.main_process_first():
            model_cache = model_cache or default_model_cache()
            base_model = resolve_base_model(config, suite, model_cache)
        generator = make_generator(config.generation, config.model.trust_remote_code)

        tasks = run_tasks_of(config, methods, seeds)
        if jobs > 1:
            log(f"{len(tasks)} tasks in {jobs} parallel jobs, {threads} torch thread(s) each")
        if fewer_jobs_why:
            log(fewer_jobs_why)
        setup = WorkerSetup(config, methods, cache_dir, model_cache, out_dir, verbose, report_to, threads)
        _ENVIRONMENT = RunEnvironment(config, methods, suite, splits, judge, cache, generator, base_model, log)
        try:
            done = jobs_module.run_tasks(tasks, run_task, jobs, setup)
        finally:
            _ENVIRONMENT = None

        per_seed: dict[str, list[dict]] = {m: [] for m in methods}
        diagnostics: dict[str, list[dict]] = {m: [] for m in methods}
        stage_times: list[dict] = []
        curves: list[dict] = []  # over-optimisation, one record per seed
        base: dict = {}
        for task, result in zip(tasks, done):
            kind, seed, name = task.payload
            stage_times.extend({"seed": seed, **s} for s in result["stage_times"])
            if kind == "method":
                per_seed[name].append({"seed": seed, **result["record"]})
                diagnostics[name].append({"seed": seed, **result["diagnostics"]})
            elif kind == "overoptimisation":
                curves.append(result["curve"])
            else:
                base = result["record"]

        results = aggregate(config.preset, seeds, per_seed)
        results.update(base_model=base, stages=stage_times, diagnostics=diagnostics,
                       wall_s=round(time.perf_counter() - started, 1), judge=config.eval.judge,
                       labels=row_labels(config.options, methods))
        results["comparisons"] = compare_methods(out_dir, results)  # every method against PPO and SFT, once
        if curves:
            results["overoptimisation"] = overoptimisation.summarise(curves)
            log(f"over-optimisation fits, mean over seeds: "
                f"{overoptimisation.describe_fits(results['overoptimisation']['mean']['fits'])}")
        table = leaderboard_table(results)
        if main:
            # Config, results, outputs/ and reports replace the previous ones together, now that the run succeeded.
            with rundir.staging(out_dir) as staging:
                (staging / "config.yaml").write_text(yaml.safe_dump(identity, sort_keys=False))
                (staging / "results.json").write_text(results_json.dumps(results))
                (staging / "leaderboard.csv").write_text(table.to_csv(index=False))
                (staging / "diagnostics.json").write_text(results_json.dumps(diagnostics))
                export_outputs(staging, per_seed)
                markdown, html = write_reports(staging)
            log(f"reports: {markdown.name}, {html.name}")
        log(f"run finished in {results['wall_s']:.0f}s; results in {out_dir}")
        return RunResult(out_dir, table, results)


# -- the tasks of a run, and the jobs that run them ----------------------------------------------------------------


def job_count(config: RunConfig) -> tuple[int, str | None]:
    """How many worker processes run the tasks, and a console line when the default took fewer than the cores.

    ``runtime.jobs`` if set. By default one per CPU core that other programs leave idle
    (:func:`harness.jobs.default_jobs`, measured over 0.2 s as the run starts), and one where more would not help
    or would be wrong: on a GPU (the jobs would share one device), and under ``accelerate launch``, whose processes
    already share every training stage (:mod:`harness.distributed`).
    """
    if distributed.num_processes() > 1:
        return 1, None
    if config.runtime.jobs is not None:
        return config.runtime.jobs, None
    if torch.cuda.is_available():
        return 1, None
    cores, idle = jobs_module.available_cores(), jobs_module.idle_cores()
    jobs = jobs_module.default_jobs(cores, idle)
    if jobs == cores:
        return jobs, None
    return jobs, (f"{jobs} job(s) for {cores} cores: other programs kept {cores - idle:.1f} of them busy as the run "
                  "started (--jobs N sets the count)")


def torch_threads(config: RunConfig, jobs: int) -> int | None:
    """torch's CPU threads per process: ``runtime.torch_threads``, or with several jobs the cores split between
    them (one each on 2 cores), so that jobs never fight over cores; None keeps torch's default."""
    if config.runtime.torch_threads is not None or jobs == 1:
        return config.runtime.torch_threads
    return max(1, jobs_module.available_cores() // jobs)


def run_tasks_of(config: RunConfig, methods: list[str], seeds: int) -> list[Task]:
    """The run's tasks in the order one process does them: per seed each method (train, then evaluate) and the
    seed's over-optimisation curves (with ``best_of_n``), then the base model's knowledge score."""
    tasks = []
    for seed in range(seeds):
        tasks += [Task(("method", seed, name), group=seed) for name in methods]
        if config.eval.overoptimisation and "best_of_n" in methods:
            tasks.append(Task(("overoptimisation", seed, None), group=seed))
    return tasks + [Task(("base_model", 0, None))]


@dataclass
class RunEnvironment:
    """What every task of a run reads: built once per process (the run's own, or a job's :class:`WorkerSetup`)."""

    config: RunConfig
    methods: list[str]
    suite: object
    splits: dict
    judge: object
    cache: StageCache
    generator: object
    base_model: Path
    log: Callable[[str], None]

    def context(self, seed: int) -> RunContext:
        return RunContext(self.config, self.suite, self.splits, seed, self.cache, self.generator, self.base_model,
                          self.log)


# The environment of the tasks this process runs (set by run, or by WorkerSetup in a job's process), and the
# settings a job's process enters for its whole life (logging, tracker).
_ENVIRONMENT: RunEnvironment | None = None
_JOB_SETTINGS = contextlib.ExitStack()


@dataclass(frozen=True)
class WorkerSetup:
    """Builds a job's :class:`RunEnvironment` in its own process, as :func:`run` builds the run's: the same suite,
    data, judge, cache and base model (resolved again, which finds the one the run built and sets up the suite's
    own caches as it does in the run's process), logging to the same ``run.log`` with the job's label."""

    config: RunConfig
    methods: list[str]
    cache_dir: Path
    model_cache: Path
    out_dir: Path
    verbose: bool
    report_to: str
    threads: int | None

    def __call__(self) -> None:
        global _ENVIRONMENT
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        set_mixed_precision(self.config.runtime.mixed_precision)
        # Entered for the life of the process, which ends with the run.
        _JOB_SETTINGS.enter_context(logs.library_output(self.out_dir / "run.log", self.verbose))
        _JOB_SETTINGS.enter_context(reporting_to(self.report_to, self.out_dir / "tracking"))
        log = RunLog(self.out_dir / "run.log")
        suite, judge = prepare(self.config)
        base_model = resolve_base_model(self.config, suite, self.model_cache)
        generator = make_generator(self.config.generation, self.config.model.trust_remote_code)
        _ENVIRONMENT = RunEnvironment(self.config, self.methods, suite, suite.splits(), judge,
                                      StageCache(self.cache_dir, log=log), generator, base_model, log)
        gc.collect()
        gc.freeze()  # the imports' objects live as long as the job (see harness.run)


def run_task(payload: tuple) -> dict:
    """One task of a run, in this process's :class:`RunEnvironment`: ``("method", seed, name)``,
    ``("overoptimisation", seed, None)`` or ``("base_model", 0, None)``. Returns plain data (it may cross from a
    job's process): the record or curve, and the stages it used with their times."""
    env = _ENVIRONMENT
    kind, seed, name = payload
    ctx = env.context(seed)
    if kind == "method":
        env.log(f"seed {seed}: method {name}")
        started = time.perf_counter()
        trained = make_method(name).train(ctx)
        record = evaluate_policy(ctx, trained, env.judge, env.config.eval.judge)
        record["train_wall_s"] = Metric(training_wall_time(ctx.stage_times), TRAINING_TIME)
        record["wall_s"] = Metric(round(time.perf_counter() - started, 1), WALL_TIME)
        return {"record": record, "diagnostics": trained.diagnostics, "stage_times": ctx.stage_times}
    if kind == "overoptimisation":
        curve = overoptimisation.measure(ctx, env.judge, env.config.eval.judge, with_ppo="ppo" in env.methods,
                                         with_grpo="grpo" in env.methods)
        env.log(f"seed {seed}: over-optimisation fits: {overoptimisation.describe_fits(curve['fits'])}")
        return {"curve": curve, "stage_times": ctx.stage_times}
    return {"record": base_model_record(ctx), "stage_times": ctx.stage_times}


def resolve_base_model(config: RunConfig, suite, models_dir: Path) -> Path:
    """The checkpoint every method starts from: the suite's own, or ``model.base``.

    Raises:
        ConfigError: ``model.base`` is neither a model dir nor a model id in reach (one line).
    """
    if config.model.base == "suite":
        return suite.base_model(models_dir)
    try:
        return resolve_model(config.model.base, models_dir, config.model.trust_remote_code)
    except (OSError, ValueError) as err:  # transformers' loaders, on a dir that holds no model
        if isinstance(err, ConfigError):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model.base: {config.model.base!r} is not a model checkpoint ({reason})") from None


def default_model_cache() -> Path:
    """Where base models are built or converted once per user: ``models/`` of :func:`harness.cache.user_cache_dir`
    (``$RLP_HARNESS_CACHE/models``, else ``$XDG_CACHE_HOME/rlp-harness/models``, else
    ``~/.cache/rlp-harness/models``), beside the stages, so a new run dir never rebuilds the tiny base model."""
    return user_cache_dir() / "models"


def base_model_record(ctx: RunContext) -> dict:
    """The base model every method starts from, with its score on the suite's knowledge task (MMLU in the real
    presets), so a run's MMLU figures can be read against the untrained model and its published score."""
    knowledge = knowledge_accuracy(ctx, ctx.base_model)
    return {"name": Path(ctx.base_model).name, "knowledge": {**knowledge, "chance": ctx.suite.knowledge_chance}}


def _quiet(message: str) -> None:
    """The log of the processes other than the main one, which logs for the run."""


def prepare(config: RunConfig):
    """Builds the suite and the judge and checks the judge can run (API key set), before any training.

    Also checks that the trainers' batches split evenly over the processes, which only a launch reveals.

    Raises:
        ConfigError: one line naming the field and what is allowed.
    """
    try:
        sizes = {"sft.batch_size": config.sft.batch_size, "reward.batch_size": config.reward.batch_size}
        for options in config.options.values():  # a method's own batches (DPO's, GRPO's), as its options name them
            sizes.update(getattr(options, "global_batch_sizes", dict)())
        for name, size in sizes.items():
            distributed.per_process_batch(size, name)
        suite = make_suite(config.suite.name, config.suite.options)
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
    """Seconds it took to build every training stage a method used (as :meth:`RunContext.stage` marks them),
    counting shared stages in full.

    A stage another method built first still counts: this is what the method costs on its own.
    """
    training = {s["path"]: s["build_wall_s"] for s in stages if s["training"]}
    return round(sum(training.values()), 1)


def aggregate(preset: str, seeds: int, per_seed: dict[str, list[dict]]) -> dict:
    """Mean and 95% t-interval over seeds of every metric (:class:`Metric`) of the per-seed records.

    Each metric's summary carries its spec (direction, unit, range) and its per-seed values and standard errors;
    the per-seed records keep every metric as its JSON object (:meth:`Metric.to_json`).

    Raises:
        ValueError: a metric's spec differs between seeds (the evaluation code changed mid-run).
    """
    methods = {}
    for name, records in per_seed.items():
        metrics = {key: summarise(key, [r[key] for r in records])
                   for key, value in records[0].items() if isinstance(value, Metric)}
        methods[name] = {"metrics": metrics, "per_seed": [
            {key: value.to_json() if isinstance(value, Metric) else value for key, value in r.items()}
            for r in records]}
    return {"preset": preset, "seeds": seeds, "methods": methods}


def summarise(name: str, measured: list[Metric]) -> dict:
    """Mean, 95% half-interval (Student t over seeds; NaN for one seed), n (seeds with a value), the per-seed values
    and standard errors, and the metric's spec."""
    specs = {m.spec for m in measured}
    if len(specs) != 1:
        raise ValueError(f"metric {name!r}: its seeds record different specs {sorted(map(repr, specs))}")
    values = [m.value for m in measured]
    finite = [v for v in values if not math.isnan(v)]
    n = len(finite)
    mean = sum(finite) / n if n else float("nan")
    return {"mean": mean, "ci95": t_half_width(finite), "n": n, "values": values,
            "standard_errors": [m.standard_error for m in measured], **measured[0].spec.to_json()}
