"""Drift from step 0 and the original-vs-refined reward-model comparison (harness/evals/evaluate.py), against a
fake run context whose samples, judge and reward models are fixed by hand."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.core.rm_accuracy import drift
from harness.core.types import PPOCheckpoint, PPORun, Preference, TrainedPolicy
from harness.evals.evaluate import compare_reward_models, drift_curve

# Two samples per val instruction. The SFT policy (step 0) and the final checkpoint (step 10):
SAMPLES = {
    "sft": [["good 1", "bad 0"], ["bad 0", "good 1"], ["good 1", "good 1"]],  # q3: the judge calls it a tie
    "final": [["good 1", "bad 2"], ["bad 3", "good 0"], ["bad 1", "good 2"]],
}


class GoodJudge:
    name = "good-judge"

    def annotate(self, instructions, outputs_1, outputs_2):
        good = [(a.startswith("good"), b.startswith("good")) for a, b in zip(outputs_1, outputs_2)]
        return [Preference.TIE if a == b else Preference.FIRST if a else Preference.SECOND for a, b in good]


class FakeContext:
    """The original reward model "rm" scores a sample by its number (it likes "bad 3"); the refined "rm-refined"
    scores every "good" sample 10 and every other 0."""

    def __init__(self, tmp_path):
        self.tmp_path, self.stages, self.logs = tmp_path, [], []
        self.config = SimpleNamespace(eval=SimpleNamespace(drift_instructions=5))
        self.splits = {"val": {"instruction": ["q1", "q2", "q3"]}}

    def sft(self):
        return Path("sft")

    def sample(self, policy, instructions, n, temperature, name="samples"):
        assert (n, temperature) == (2, 1.0)  # two fresh samples per instruction, as PPO samples
        return SAMPLES[policy.name]

    def score(self, reward_model, instructions, outputs):
        if reward_model.name == "rm":
            return [float(y.split()[-1]) for y in outputs]
        return [10.0 if y.startswith("good") else 0.0 for y in outputs]

    def stage(self, name, inputs, build, collective=False):
        path = self.tmp_path / f"{name}-{len(self.stages)}"
        path.mkdir()
        build(path)
        self.stages.append(name)
        return path

    def log(self, message):
        self.logs.append(message)


def test_drift_runs_from_step_0_and_both_reward_models_score_the_final_pairs(tmp_path):
    ctx = FakeContext(tmp_path)
    run = PPORun(policy=Path("final"), reward_model=Path("rm-refined"),
                 checkpoints=(PPOCheckpoint(step=10, path=Path("final"), proxy_reward=0.5, kl=1.0),))
    trained = TrainedPolicy("rlp_spg", Path("final"), reward_model=Path("rm-refined"), ppo=run)
    curve, final_pairs = drift_curve(ctx, trained, GoodJudge(), "good-judge")
    # the refined model ranks every decisive pair right: step 0 has 2 (q3 is a tie), the final checkpoint 3
    assert [(p["step"], p["accuracy"], p["n"], p["n_annotator_ties"]) for p in curve] == [(0, 1.0, 2, 1),
                                                                                           (10, 1.0, 3, 0)]
    assert drift(curve)["rm_drift"] == 0.0
    assert any("val split holds 3 instructions, fewer than eval.drift_instructions = 5" in m for m in ctx.logs)

    result = compare_reward_models(ctx, Path("rm"), Path("rm-refined"), final_pairs)
    # the original on the final pairs: q1 bad 2 > good 1 wrong, q2 bad 3 > good 0 wrong, q3 good 2 > bad 1 right
    assert result["original"]["accuracy"] == pytest.approx(1 / 3) and result["refined"]["accuracy"] == 1.0
    # paired differences 1, 1, 0: mean 2/3, sample variance ((1/3)^2 * 2 + (2/3)^2) / 2 = 1/3, se sqrt(1/9) = 1/3
    gain = result["refined_minus_original"]
    assert gain["difference"] == pytest.approx(2 / 3) and gain["standard_error"] == pytest.approx(1 / 3)
    assert gain["n"] == 3 and not math.isnan(result["original"]["standard_error"])


def test_the_knowledge_stage_is_keyed_by_the_task_files_not_by_where_the_checkout_keeps_them(tmp_path):
    import shutil

    from harness.cache import StageCache
    from harness.evals.evaluate import knowledge_accuracy

    def stage_inputs(task_dir: Path) -> dict:
        recorded = {}

        def stage(name, inputs, build):
            recorded.update(inputs)
            (tmp_path / "metrics.json").write_text('{"acc": 0.5}')
            return tmp_path

        ctx = SimpleNamespace(stage=stage, device="cpu",
                              config=SimpleNamespace(eval=SimpleNamespace(knowledge_fewshot=0)),
                              suite=SimpleNamespace(knowledge_task=lambda: (task_dir, "task"), knowledge_chat=True))
        knowledge_accuracy(ctx, policy)
        return StageCache(tmp_path / "cache").content_inputs(recorded)

    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "model.safetensors").write_text("weights")
    here, there = tmp_path / "a" / "task", tmp_path / "b" / "task"
    here.mkdir(parents=True)
    (here / "task.yaml").write_text("task: task\n")
    shutil.copytree(here, there)
    assert stage_inputs(here) == stage_inputs(there)
    (there / "task.yaml").write_text("task: other\n")
    assert stage_inputs(here) != stage_inputs(there)
