"""Drift from step 0 and the mechanism check, the original-vs-refined reward-model comparison
(harness/evals/evaluate.py), against a fake run context whose samples, judge and reward models are fixed by hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.core.rm_accuracy import drift
from harness.core.types import PPOCheckpoint, PPORun, Preference, Refinement, TrainedPolicy
from harness.evals.evaluate import drift_curve, held_out_instructions, mechanism_check

# Two samples per val instruction, by policy: the SFT policy (step 0), the final checkpoint (step 10), and the
# first PPO policy the refinement sampled.
SAMPLES = {
    "sft": {"q1": ["good 1", "bad 0"], "q2": ["bad 0", "good 1"], "q3": ["good 1", "good 1"]},  # q3: a tie
    "final": {"q1": ["good 1", "bad 2"], "q2": ["bad 3", "good 0"], "q3": ["bad 1", "good 2"]},
    "first": {"q1": ["bad 5", "good 1"], "q2": ["good 0", "bad 9"], "q3": ["good 1", "good 1"]},
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
        self.config = SimpleNamespace(eval=SimpleNamespace(drift_instructions=5, mechanism_instructions=None))
        self.splits = {"val": {"instruction": ["q1", "q2", "q3"]}}
        # the suite's kinds: a good against a bad sample, or two alike (which the judge calls a tie)
        self.suite = SimpleNamespace(pair_kind=lambda x, a, b: "good vs bad" if (a[0] == "g") != (b[0] == "g")
                                     else "alike")
        self.sampled: list[tuple[str, str, list[str]]] = []

    def sft(self):
        return Path("sft")

    def reward_model(self):
        return Path("rm")

    def sample(self, policy, instructions, n, temperature, name="samples"):
        assert (n, temperature) == (2, 1.0)  # two fresh samples per instruction, as PPO samples
        self.sampled.append((name, policy.name, list(instructions)))
        return [SAMPLES[policy.name][x] for x in instructions]

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


def test_drift_runs_from_step_0(tmp_path):
    ctx = FakeContext(tmp_path)
    run = PPORun(policy=Path("final"), reward_model=Path("rm-refined"),
                 checkpoints=(PPOCheckpoint(step=10, path=Path("final"), proxy_reward=0.5, kl=1.0),))
    trained = TrainedPolicy("rlp_spg", Path("final"), reward_model=Path("rm-refined"), ppo=run)
    curve = drift_curve(ctx, trained, GoodJudge(), "good-judge")
    # the refined model ranks every decisive pair right: step 0 has 2 (q3 is a tie), the final checkpoint 3
    assert [(p["step"], p["accuracy"], p["n"], p["n_annotator_ties"]) for p in curve] == [(0, 1.0, 2, 1),
                                                                                           (10, 1.0, 3, 0)]
    assert drift(curve)["rm_drift"] == 0.0
    assert any("val split holds 3 instructions, fewer than eval.drift_instructions = 5" in m for m in ctx.logs)


def test_the_mechanism_check_scores_both_models_on_held_out_pairs_of_the_first_and_the_final_policy(tmp_path):
    ctx = FakeContext(tmp_path)
    # the refinement saw q2 (and an instruction the val split does not hold): the check must never judge q2
    refinement = Refinement(policy=Path("first"), instructions=frozenset({"q2", "u1"}))
    trained = TrainedPolicy("rlp_spg", Path("final"), reward_model=Path("rm-refined"), refinement=refinement)
    held_out, on_policy = mechanism_check(ctx, trained, GoodJudge(), "good-judge")
    assert [(name, policy, x) for name, policy, x in ctx.sampled] == [
        ("mechanism_samples", "first", ["q1", "q3"]), ("mechanism_samples", "final", ["q1", "q3"])]
    assert held_out_instructions(ctx, refinement) == ["q1", "q3"]
    assert not refinement.instructions & {x for _, _, sampled in ctx.sampled for x in sampled}

    # (a) the first policy: q1 "bad 5" vs "good 1": the original (by number) wrong, the refined right; q3 a tie
    assert (held_out["original"]["accuracy"], held_out["refined"]["accuracy"], held_out["original"]["n"]) == (0, 1, 1)
    assert held_out["refined_minus_original"]["difference"] == 1 and held_out["original"]["n_annotator_ties"] == 1
    # by kind: "alike" (q3) has no judged pair, so it has no row
    assert list(held_out["by_kind"]) == ["good vs bad"] and held_out["by_kind"]["good vs bad"]["refined"]["n"] == 1
    # (b) the final policy: q1 "good 1" vs "bad 2": the original wrong; q3 "bad 1" vs "good 2": right
    assert on_policy["original"]["accuracy"] == 0.5 and on_policy["refined"]["accuracy"] == 1.0
    # paired differences 1, 0: mean 1/2, sample variance 1/2, se sqrt(1/2 / 2) = 1/2
    gain = on_policy["refined_minus_original"]
    assert gain["difference"] == pytest.approx(0.5) and gain["standard_error"] == pytest.approx(0.5)
    assert gain["n"] == 2 and on_policy["by_kind"]["good vs bad"]["refined_minus_original"] == gain


def test_the_mechanism_check_takes_at_most_the_instructions_asked_for(tmp_path):
    ctx = FakeContext(tmp_path)
    ctx.config.eval.mechanism_instructions = 1
    refinement = Refinement(policy=Path("first"), instructions=frozenset({"q1"}))
    assert held_out_instructions(ctx, refinement) == ["q2"]
    ctx.config.eval.mechanism_instructions = None  # then as many as drift uses (5): all 2 held out, and a log line
    assert held_out_instructions(ctx, refinement) == ["q2", "q3"]
    assert any("2 val instructions are held out from the refinement, fewer than the 5" in m for m in ctx.logs)


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
