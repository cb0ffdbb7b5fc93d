"""Scores one trained policy the same way for every method: win rates, knowledge task, reward-model drift.

Each evaluation is a cached stage keyed by the policy and the evaluation config, so rerunning a finished run, or
adding a method to it, re-evaluates nothing that was already scored.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.cache import fingerprint
from harness.context import RunContext, reward_model_metrics
from harness.evals.rm_accuracy import drift, pairwise_accuracy
from harness.evals.winrate import judge_against_reference, win_rate_metrics, write_annotations, write_outputs
from harness.suites.base import Annotator
from methods.base import PPOCheckpoint, TrainedPolicy


def evaluate_policy(ctx: RunContext, trained: TrainedPolicy, judge: Annotator, judge_name: str) -> dict:
    """All metrics of one trained policy for one seed.

    Returns a flat record keyed like the leaderboard columns (``farm_win_rate``, ``knowledge_acc``, ``rm_drift``, ...)
    plus ``details`` (per-set annotations paths, drift curve, knowledge task name).
    """
    cfg = ctx.config.eval
    record: dict = {}
    details: dict = {"eval_sets": {}}
    for set_name in ctx.suite.eval_sets:
        metrics, stage = win_rate(ctx, trained, set_name, judge, judge_name)
        details["eval_sets"][set_name] = {"stage": str(stage), **metrics}
        record.update({f"{set_name}_{key}": metrics[key]
                       for key in ("win_rate", "standard_error", "lc_win_rate", "avg_length")})
    record["avg_length"] = record.pop(f"{ctx.suite.eval_sets[0]}_avg_length")
    for set_name in ctx.suite.eval_sets[1:]:
        record.pop(f"{set_name}_avg_length")

    record["proxy_reward"], record["kl"] = proxy_reward_and_kl(ctx, trained)
    if trained.ppo is not None:
        details["ppo_history"] = list(trained.ppo.history)

    if cfg.knowledge and ctx.suite.knowledge_task() is not None:
        knowledge = knowledge_accuracy(ctx, trained.policy)
        record["knowledge_acc"], record["knowledge_stderr"] = knowledge["acc"], knowledge["acc_stderr"]
        details["knowledge"] = knowledge
    else:
        record["knowledge_acc"] = record["knowledge_stderr"] = float("nan")

    record["rm_acc_offline"] = record["rm_acc_onpolicy"] = record["rm_drift"] = float("nan")
    if trained.reward_model is not None:
        offline = reward_model_metrics(trained.reward_model)["val"]
        record["rm_acc_offline"] = offline["accuracy"]
    if cfg.drift and trained.ppo is not None:
        curve = drift_curve(ctx, trained, judge, judge_name)
        summary = drift(offline, curve)
        record["rm_acc_onpolicy"] = curve[-1]["accuracy"]
        record["rm_drift"] = summary["rm_drift"]
        details["drift"] = summary
    record["details"] = details
    return record


def win_rate(ctx: RunContext, trained: TrainedPolicy, set_name: str, judge: Annotator,
             judge_name: str) -> tuple[dict, Path]:
    """Generates one output per instruction of ``set_name``, judges it against the reference, and scores it."""
    cfg = ctx.config.eval
    data = ctx.splits[set_name]
    if cfg.max_examples is not None:
        data = data.select(range(min(cfg.max_examples, len(data))))
    instructions, references = data["instruction"], data["output"]
    temperature = 0.0 if cfg.greedy else cfg.temperature
    outputs = [s[0] for s in ctx.sample(trained.policy, instructions, 1, temperature, name=f"eval_{set_name}")]

    def build(out: Path) -> None:
        annotations = judge_against_reference(judge, instructions, outputs, references, seed=ctx.seed,
                                              generator=trained.method, reference_generator=data["generator"][0])
        metrics = win_rate_metrics(
            [a["preference_vs_reference"] for a in annotations],
            [len(o) for o in outputs], [len(r) for r in references],
        )
        write_outputs(out / "model_outputs.json", instructions, outputs, trained.method, set_name)
        write_outputs(out / "reference_outputs.json", instructions, references, data["generator"], set_name)
        write_annotations(out / "annotations.json", annotations)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    stage = ctx.stage(
        f"winrate_{set_name}",
        {"policy": str(trained.policy), "judge": judge_name, "outputs": fingerprint(outputs),
         "references": fingerprint(references)},
        build,
    )
    return json.loads((stage / "metrics.json").read_text()), stage


def proxy_reward_and_kl(ctx: RunContext, trained: TrainedPolicy) -> tuple[float, float]:
    """The proxy reward and KL to the SFT reference at the end of PPO (SFT: its reward, KL 0).

    Both come from the last PPO step's rollouts (temperature 1, the unlabeled prompts), so they are what PPO
    itself saw; SFT's proxy reward is measured the same way by scoring SFT samples on those prompts.
    """
    if trained.ppo is not None and trained.ppo.history:
        last = trained.ppo.history[-1]
        return float(last["proxy_reward"]), float(last["kl"])
    prompts = ctx.splits["unlabeled"]["instruction"][: ctx.config.eval.drift_instructions]
    samples = [s[0] for s in ctx.sample(trained.policy, prompts, 1, 1.0, name="proxy_samples")]
    scores = ctx.score(trained.reward_model, prompts, samples)
    return sum(scores) / len(scores), 0.0


def knowledge_accuracy(ctx: RunContext, policy: Path) -> dict:
    """The suite's knowledge task (MMLU in real presets) through lm-eval, cached per policy."""
    from harness.evals.mmlu import KnowledgeEvalConfig, evaluate_knowledge

    include_path, task = ctx.suite.knowledge_task()
    cfg = KnowledgeEvalConfig(task=task, include_path=str(include_path),
                              num_fewshot=ctx.config.eval.knowledge_fewshot, chat=ctx.suite.knowledge_chat)
    stage = ctx.stage(
        "knowledge",
        {"policy": str(policy), "task": dataclasses.asdict(cfg)},
        lambda out: (out / "metrics.json").write_text(
            json.dumps(evaluate_knowledge(policy, cfg, device=ctx.device), indent=1)),
    )
    return json.loads((stage / "metrics.json").read_text())


def drift_curve(ctx: RunContext, trained: TrainedPolicy, judge: Annotator, judge_name: str) -> list[dict]:
    """Accuracy of the policy's own reward model on pairs of the policy's samples, at every saved checkpoint.

    The curve starts at step 0, the SFT policy PPO starts from. For each checkpoint: two samples per held-out instruction (temperature 1, as PPO samples), labelled by the
    judge; the reward model is right when it scores the judge's preferred sample higher (ties reported apart).
    """
    instructions = ctx.splits["val"]["instruction"][: ctx.config.eval.drift_instructions]
    start = PPOCheckpoint(step=0, path=ctx.sft(), proxy_reward=float("nan"), kl=0.0)
    curve = []
    for checkpoint in (start, *trained.ppo.checkpoints):
        samples = ctx.sample(checkpoint.path, instructions, 2, 1.0, name="drift_samples")
        first, second = [s[0] for s in samples], [s[1] for s in samples]

        def build(out: Path) -> None:
            preferences = judge.annotate(instructions, first, second)
            accuracy = pairwise_accuracy(
                ctx.score(trained.reward_model, instructions, first),
                ctx.score(trained.reward_model, instructions, second),
                preferences,
            )
            (out / "metrics.json").write_text(json.dumps(accuracy, indent=1))

        stage = ctx.stage(
            "drift",
            {"reward_model": str(trained.reward_model), "checkpoint": str(checkpoint.path), "judge": judge_name,
             "samples": fingerprint(samples)},
            build,
        )
        point = json.loads((stage / "metrics.json").read_text())
        curve.append({"step": checkpoint.step, "proxy_reward": checkpoint.proxy_reward, "kl": checkpoint.kl,
                      **point})
    return curve
