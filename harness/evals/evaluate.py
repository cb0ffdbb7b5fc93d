"""Scores one trained policy the same way for every method: win rates, knowledge task, reward-model drift.

Each evaluation is a cached stage keyed by the policy and the evaluation config, so rerunning a finished run, or
adding a method to it, re-evaluates nothing that was already scored.
"""

from __future__ import annotations

import dataclasses
import json
from math import nan
from pathlib import Path

from datasets import Dataset

from harness.cache import fingerprint
from harness.context import RunContext, reward_model_metrics
from harness.core.metrics import Metric, MetricSpec
from harness.core.rm_accuracy import (
    accuracy_metric,
    credit_accuracy,
    drift,
    drift_metrics,
    pair_credits,
    paired_accuracy_difference,
    prefer_shorter_credits,
)
from harness.core.types import PPOCheckpoint, Refinement, TrainedPolicy
from harness.evals.mmlu import KnowledgeEvalConfig, evaluate_knowledge, knowledge_metric
from harness.evals.winrate import (
    judge_against_reference,
    win_rate_metrics,
    win_rate_records,
    write_annotations,
    write_outputs,
)
from harness.suites.base import Annotator
from methods.best_of_n import best_of_n_kl, rerank

# The reward model's score and the KL to the SFT policy: quantities to read beside the win rate, not to rank by.
PROXY_REWARD = MetricSpec(higher_is_better=None, unit="reward")
KL = MetricSpec(higher_is_better=None, unit="nats")


def evaluate_policy(ctx: RunContext, trained: TrainedPolicy, judge: Annotator, judge_name: str) -> dict:
    """All metrics of one trained policy for one seed.

    Returns:
        A flat record of :class:`~harness.core.metrics.Metric` keyed like the leaderboard columns
        (``farm_win_rate``, ``knowledge_acc``, ``rm_drift``, ...), each with its direction, unit, standard error and
        n, plus ``details`` (per-set annotations paths, drift curve, knowledge task name).
    """
    cfg = ctx.config.eval
    record: dict = {}
    details: dict = {"eval_sets": {}}
    for set_name in ctx.suite.eval_sets:
        metrics, stage = win_rate(ctx, trained, set_name, judge, judge_name)
        details["eval_sets"][set_name] = {"stage": str(stage), **metrics}
        rates = win_rate_records(metrics)
        record[f"{set_name}_win_rate"], record[f"{set_name}_lc_win_rate"] = rates["win_rate"], rates["lc_win_rate"]
        if set_name == ctx.suite.eval_sets[0]:  # the output length of the first set stands for the policy's
            record["avg_length"] = rates["avg_length"]

    proxy_reward, kl = proxy_reward_and_kl(ctx, trained)
    record["proxy_reward"], record["kl"] = Metric(proxy_reward, PROXY_REWARD), Metric(kl, KL)
    if trained.ppo is not None:
        details["ppo_history"] = list(trained.ppo.history)

    knowledge = None
    if cfg.knowledge and ctx.suite.knowledge_task() is not None:
        knowledge = details["knowledge"] = knowledge_accuracy(ctx, trained.policy)
    record["knowledge_acc"] = knowledge_metric(knowledge)

    record["rm_acc_offline"] = held_out_accuracy(trained)
    if trained.reward_model is not None:
        details["val_pairs"] = val_pairs_record(ctx, trained)
    summary = None
    if cfg.drift and trained.ppo is not None:
        summary = details["drift"] = drift(drift_curve(ctx, trained, judge, judge_name))
    if trained.refinement is not None:  # RLP, online RLHF: the policy was trained against a refined RM
        details["reward_models_held_out"], details["reward_models_on_policy"] = mechanism_check(
            ctx, trained, judge, judge_name)
    on_policy = drift_metrics(summary)
    record["rm_acc_step0"], record["rm_acc_onpolicy"] = on_policy["step0"], on_policy["final"]
    record["rm_drift"] = on_policy["drift"]
    record["details"] = details
    return record


def held_out_accuracy(trained: TrainedPolicy) -> Metric:
    """The accuracy of the policy's reward model on the held-out val pairs, as its reward stage measured it; NaN
    for a policy without a reward model."""
    if trained.reward_model is None:
        return accuracy_metric(None)
    return accuracy_metric(reward_model_metrics(trained.reward_model)["val"])


def win_rate(ctx: RunContext, trained: TrainedPolicy, set_name: str, judge: Annotator,
             judge_name: str) -> tuple[dict, Path]:
    """Generates one output per instruction of ``set_name``, judges it against the reference, and scores it."""
    cfg = ctx.config.eval
    data = eval_data(ctx, set_name)
    instructions, references = data["instruction"], data["output"]
    temperature = 0.0 if cfg.greedy else cfg.temperature
    outputs = answers(ctx, trained, instructions, temperature, name=f"eval_{set_name}")

    def build(out: Path) -> None:
        annotations, metrics = judged_win_rate(ctx, judge, data, outputs, trained.method)
        write_outputs(out / "model_outputs.json", instructions, outputs, trained.method, set_name)
        write_outputs(out / "reference_outputs.json", instructions, references, data["generator"], set_name)
        write_annotations(out / "annotations.json", annotations)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    inputs = {"policy": Path(trained.policy), "judge": judge_name, "outputs": fingerprint(outputs),
              "references": fingerprint(references)}
    if trained.rerank is not None:  # the files name the generator: best-of-1 is not the SFT policy's row
        inputs["rerank"] = {"n": trained.rerank.n, "reward_model": Path(trained.rerank.reward_model)}
    stage = ctx.stage(f"winrate_{set_name}", inputs, build)
    return json.loads((stage / "metrics.json").read_text()), stage


def eval_data(ctx: RunContext, set_name: str) -> Dataset:
    """The evaluation set ``set_name``, cut to ``eval.max_examples`` items when that is set."""
    data = ctx.splits[set_name]
    limit = ctx.config.eval.max_examples
    return data if limit is None else data.select(range(min(limit, len(data))))


def judged_win_rate(ctx: RunContext, judge: Annotator, data: Dataset, outputs: list[str],
                    generator: str) -> tuple[list[dict], dict]:
    """The judge's verdict on each output against the reference of ``data`` (its annotations) and the win rate."""
    references = data["output"]
    annotations = judge_against_reference(judge, data["instruction"], outputs, references, seed=ctx.seed,
                                          generator=generator, reference_generator=data["generator"][0])
    metrics = win_rate_metrics([a["preference_vs_reference"] for a in annotations],
                               [len(o) for o in outputs], [len(r) for r in references])
    return annotations, metrics


def answers(ctx: RunContext, trained: TrainedPolicy, instructions: list[str], temperature: float,
            name: str) -> list[str]:
    """One answer per instruction: a sample of the policy, or the reward model's favourite of n (best-of-n)."""
    if trained.rerank is not None:
        return rerank(ctx, trained.policy, trained.rerank, instructions, temperature, name)[0]
    return [s[0] for s in ctx.sample(trained.policy, instructions, 1, temperature, name=name)]


def proxy_reward_and_kl(ctx: RunContext, trained: TrainedPolicy) -> tuple[float, float]:
    """The proxy reward and KL to the SFT reference at the end of PPO (SFT: its reward, KL 0).

    Both come from the last PPO (or GRPO) step's rollouts (temperature 1, the unlabeled prompts), so they are what
    PPO itself saw; SFT's proxy reward is measured the same way by scoring SFT samples on those prompts, and
    best-of-n's as the mean score of its chosen samples there, with the analytic KL :func:`best_of_n_kl`. Another
    policy without a PPO history (DPO, expert iteration) gets its proxy reward measured as SFT's and KL NaN: not
    measured, rather than a 0 it is not.
    """
    if trained.ppo is not None and trained.ppo.history:
        last = trained.ppo.history[-1]
        return float(last["proxy_reward"]), float(last["kl"])
    prompts = ctx.splits["unlabeled"]["instruction"][: ctx.config.eval.drift_instructions]
    if trained.rerank is not None:
        _, scores = rerank(ctx, trained.policy, trained.rerank, prompts, 1.0, name="proxy_samples")
        return sum(scores) / len(scores), best_of_n_kl(trained.rerank.n)
    samples = [s[0] for s in ctx.sample(trained.policy, prompts, 1, 1.0, name="proxy_samples")]
    scores = ctx.score(trained.reward_model, prompts, samples)
    return sum(scores) / len(scores), 0.0 if Path(trained.policy) == Path(ctx.sft()) else nan


def knowledge_accuracy(ctx: RunContext, policy: Path) -> dict:
    """The suite's knowledge task (MMLU in real presets) through lm-eval, cached per policy."""
    include_path, task = ctx.suite.knowledge_task()
    cfg = KnowledgeEvalConfig(task=task, include_path=str(include_path),
                              num_fewshot=ctx.config.eval.knowledge_fewshot, chat=ctx.suite.knowledge_chat)
    stage = ctx.stage(
        "knowledge",
        # the task dir as a Path: keyed by what its files hold, not by where this checkout keeps them
        {"policy": Path(policy), "task": {**dataclasses.asdict(cfg), "include_path": Path(include_path)}},
        lambda out: (out / "metrics.json").write_text(
            json.dumps(evaluate_knowledge(policy, cfg, device=ctx.device), indent=1)),
    )
    return json.loads((stage / "metrics.json").read_text())


def drift_curve(ctx: RunContext, trained: TrainedPolicy, judge: Annotator, judge_name: str) -> list[dict]:
    """Accuracy of the policy's own reward model on pairs of the policy's samples, at every saved checkpoint.

    The curve starts at step 0, the SFT policy PPO starts from. For each checkpoint: two fresh samples per held-out
    instruction (the first ``eval.drift_instructions`` of the val split; temperature 1, as PPO samples), labelled
    by the judge; the reward model is right when it scores the judge's preferred sample higher (ties reported
    apart). Each point also splits the accuracy by the suite's pair kind (``by_kind``; empty where it cannot tell),
    since an overall accuracy can hide a reward model that only spots the easy kind of pair.

    Returns:
        The curve: one record per checkpoint (each stage also keeps its judged pairs in ``pairs.json``).
    """
    wanted = ctx.config.eval.drift_instructions
    instructions = ctx.splits["val"]["instruction"][:wanted]
    if len(instructions) < wanted:
        ctx.log(f"drift: the val split holds {len(instructions)} instructions, fewer than eval.drift_instructions "
                f"= {wanted}; each drift point uses {len(instructions)}")
    start = PPOCheckpoint(step=0, path=ctx.sft(), proxy_reward=nan, kl=0.0)
    curve = []
    for checkpoint in (start, *trained.ppo.checkpoints):
        samples = ctx.sample(checkpoint.path, instructions, 2, 1.0, name="drift_samples")
        first, second = [s[0] for s in samples], [s[1] for s in samples]

        def build(out: Path) -> None:
            preferences = judge.annotate(instructions, first, second)
            credits = pair_credits(ctx.score(trained.reward_model, instructions, first),
                                   ctx.score(trained.reward_model, instructions, second), preferences)
            kinds = pair_kinds(ctx, instructions, first, second)
            accuracy = {**credit_accuracy(credits),
                        "by_kind": {kind: credit_accuracy([credits[i] for i in rows])
                                    for kind, rows in judged_rows_by_kind(kinds, credits).items()}}
            (out / "metrics.json").write_text(json.dumps(accuracy, indent=1))
            (out / "pairs.json").write_text(json.dumps({"instructions": instructions, "output_1": first,
                                                        "output_2": second, "preferences": list(preferences)}))

        stage = ctx.stage(
            "drift",
            {"reward_model": Path(trained.reward_model), "checkpoint": Path(checkpoint.path), "judge": judge_name,
             "samples": fingerprint(samples), "pairs_saved": True, "by_kind": True},
            build,
        )
        point = with_length_rule(ctx, json.loads((stage / "metrics.json").read_text()),
                                 json.loads((stage / "pairs.json").read_text()))
        curve.append({"step": checkpoint.step, "proxy_reward": checkpoint.proxy_reward, "kl": checkpoint.kl,
                      **point})
    return curve


def with_length_rule(ctx: RunContext, accuracy: dict, pairs: dict) -> dict:
    """A drift point's accuracy record with the length rule's on the same judged pairs beside it, overall and per
    pair kind (``prefer_shorter``; :func:`~harness.core.rm_accuracy.prefer_shorter_credits`). Computed from the
    stage's saved pairs, outside its key: it is arithmetic on what the stage already holds."""
    shorter = prefer_shorter_credits(pairs["output_1"], pairs["output_2"], pairs["preferences"])
    kinds = pair_kinds(ctx, pairs["instructions"], pairs["output_1"], pairs["output_2"])
    by_kind = {kind: {**accuracy["by_kind"][kind], "prefer_shorter": credit_accuracy([shorter[i] for i in rows])}
               for kind, rows in judged_rows_by_kind(kinds, shorter).items() if kind in accuracy.get("by_kind", {})}
    return {**accuracy, "prefer_shorter": credit_accuracy(shorter), "by_kind": by_kind}


def val_pairs_record(ctx: RunContext, trained: TrainedPolicy) -> dict:
    """The reward model and the length rule on the held-out val pairs: a reward model no better than "prefer the
    shorter" (or "the longer") there may have learnt length alone."""
    val = ctx.labelled_pairs("val")
    return {"reward_model": reward_model_metrics(trained.reward_model)["val"],
            "prefer_shorter": credit_accuracy(prefer_shorter_credits(val["output_1"], val["output_2"],
                                                                     val["preference"]))}


def mechanism_check(ctx: RunContext, trained: TrainedPolicy, judge: Annotator, judge_name: str) -> tuple[dict, dict]:
    """The original reward model r beside the refined one r' on judged pairs of two policies' fresh samples.

    RLP's claim is that r', refined on samples of the first PPO policy, judges that policy's outputs better than r
    does; the second PPO then optimises against the better judge. So both models score (a) pairs of the first PPO
    policy's samples (``trained.refinement.policy``), the distribution r' was refined on, and (b) pairs of the final
    policy's samples, which was optimised against r' (so r' may be exploited there by construction). Both on the
    same held-out instructions (:func:`held_out_instructions`): none of them was among those the refinement saw.

    Returns:
        (a) and (b), each :func:`compare_reward_models`' record.
    """
    instructions = held_out_instructions(ctx, trained.refinement)
    original = ctx.reward_model()
    return tuple(compare_reward_models(ctx, original, trained.reward_model,
                                       judged_pairs(ctx, policy, instructions, judge, judge_name))
                 for policy in (trained.refinement.policy, trained.policy))


def held_out_instructions(ctx: RunContext, refinement: Refinement) -> list[str]:
    """The first ``eval.mechanism_instructions`` (None: ``eval.drift_instructions``) val instructions that are not
    among the refinement's: held out from D (val pairs only measure) and from U alike."""
    cfg = ctx.config.eval
    wanted = cfg.drift_instructions if cfg.mechanism_instructions is None else cfg.mechanism_instructions
    held_out = [x for x in ctx.splits["val"]["instruction"] if x not in refinement.instructions]
    if len(held_out) < wanted:
        ctx.log(f"mechanism check: {len(held_out)} val instructions are held out from the refinement, fewer than "
                f"the {wanted} asked for")
    return held_out[:wanted]


def judged_pairs(ctx: RunContext, policy: Path, instructions: list[str], judge: Annotator, judge_name: str) -> dict:
    """Two fresh samples (temperature 1, as PPO samples) of ``policy`` per instruction, the judge's preference
    between them and the suite's kind of each pair (:meth:`Suite.pair_kind`; None where it cannot tell)."""
    samples = ctx.sample(policy, instructions, 2, 1.0, name="mechanism_samples")
    first, second = [s[0] for s in samples], [s[1] for s in samples]

    def build(out: Path) -> None:
        pairs = {"instructions": instructions, "output_1": first, "output_2": second,
                 "preferences": list(judge.annotate(instructions, first, second)),
                 "kinds": pair_kinds(ctx, instructions, first, second)}
        (out / "pairs.json").write_text(json.dumps(pairs))

    stage = ctx.stage("mechanism_pairs", {"judge": judge_name, "samples": fingerprint(samples),
                                          "instructions": fingerprint(instructions)}, build)
    return json.loads((stage / "pairs.json").read_text())


def compare_reward_models(ctx: RunContext, original: Path, refined: Path, pairs: dict) -> dict:
    """The original and the refined reward model's accuracy on the same judged pairs, overall and by pair kind.

    Both models score the same pairs, so their difference is paired (:func:`paired_accuracy_difference`).

    Args:
        pairs: ``instructions``, ``output_1``, ``output_2``, ``preferences`` and ``kinds`` (one per pair; None
            where the suite cannot tell), as :func:`judged_pairs` returns them.

    Returns:
        ``{"original": pairwise_accuracy, "refined": pairwise_accuracy, "refined_minus_original": difference,
        "by_kind": {kind: the same three}}``, for the kinds with a judged pair (empty without kinds).
    """
    x, labels, kinds = pairs["instructions"], pairs["preferences"], pairs["kinds"]

    def build(out: Path) -> None:
        credits = {}
        for name, model in (("original", original), ("refined", refined)):
            credits[name] = pair_credits(ctx.score(model, x, pairs["output_1"]),
                                         ctx.score(model, x, pairs["output_2"]), labels)
        result = accuracies(credits)
        result["by_kind"] = {kind: accuracies({name: [values[i] for i in rows] for name, values in credits.items()})
                             for kind, rows in judged_rows_by_kind(kinds, credits["original"]).items()}
        (out / "metrics.json").write_text(json.dumps(result, indent=1))

    stage = ctx.stage("rm_comparison", {"original": Path(original), "refined": Path(refined),
                                        "pairs": fingerprint(pairs), "by_kind": True}, build)
    return json.loads((stage / "metrics.json").read_text())


def pair_kinds(ctx: RunContext, instructions: list[str], first: list[str], second: list[str]) -> list[str | None]:
    """The suite's kind of each pair (:meth:`Suite.pair_kind`; None where it cannot tell)."""
    return [ctx.suite.pair_kind(*pair) for pair in zip(instructions, first, second)]


def judged_rows_by_kind(kinds: list[str | None], credits: list[float | None]) -> dict[str, list[int]]:
    """The positions of the judged pairs (a credit, not an annotator tie) of each known kind, kinds sorted: what
    every by-kind accuracy of the report is computed over."""
    rows: dict[str, list[int]] = {}
    for i, (kind, credit) in enumerate(zip(kinds, credits)):
        if kind is not None and credit is not None:
            rows.setdefault(kind, []).append(i)
    return dict(sorted(rows.items()))


def accuracies(credits: dict[str, list[float | None]]) -> dict:
    """Both models' accuracy from their :func:`pair_credits` on the same pairs, and the paired difference."""
    return {**{name: credit_accuracy(values) for name, values in credits.items()},
            "refined_minus_original": paired_accuracy_difference(credits["refined"], credits["original"])}
