"""GRPO (methods/grpo.py): the reward function is the reward model's score in order, the trainer raises a known
reward from a tiny random LLaMA and saves PPO-style checkpoints, and the method hands them on as PPO's are."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import re

import pytest
import torch
from datasets import Dataset

import harness.trainers.grpo
from harness.core.schema import build
from harness.trainers.grpo import RewardModelReward, train_grpo
from harness.trainers.ppo import RUN_FILE
from methods.grpo import GRPO, GRPOConfig


class RecordingScorer:
    """Scores each response by its length in words, and records what it was asked."""

    def __init__(self):
        self.asked: list[tuple[list[str], list[str]]] = []

    def score(self, prompts, responses):
        self.asked.append((prompts, responses))
        return torch.tensor([float(len(r.split())) for r in responses])


def test_the_reward_function_returns_the_scorers_scores_in_order_and_penalises_truncation():
    scorer = RecordingScorer()
    reward = RewardModelReward(scorer, eos_token_id=1, truncation_penalty=-1.0)
    prompts = [[{"role": "user", "content": "say yes"}], [{"role": "user", "content": "say no"}],
               [{"role": "user", "content": "a dog is"}]]
    completions = [[{"role": "assistant", "content": "yes yes yes"}], [{"role": "assistant", "content": "no"}],
                   [{"role": "assistant", "content": "a b c d"}]]
    # the third completion never reached eos (id 1): cut off, so it gets the penalty, as in PPO
    rewards = reward(prompts=prompts, completions=completions, completion_ids=[[5, 5, 5, 1], [6, 1], [7, 8, 9, 10]],
                     trainer_state=None)
    assert rewards == [3.0, 1.0, -1.0]
    assert scorer.asked == [(["say yes", "say no", "a dog is"], ["yes yes yes", "no", "a b c d"])]
    assert reward.__name__ == "reward_model"  # the name TRL logs the reward under
    # truncation_rule "add": the cut-off completion keeps its score (4 words) plus the penalty
    adding = RewardModelReward(RecordingScorer(), eos_token_id=1, truncation_penalty=-1.0, truncation_rule="add")
    assert adding(prompts=prompts, completions=completions, completion_ids=[[5, 5, 5, 1], [6, 1], [7, 8, 9, 10]],
                  trainer_state=None) == [3.0, 1.0, 3.0]


def test_grpo_raises_a_known_reward_and_saves_ppo_style_checkpoints(models_dir, tmp_path, word_prompts, yes_scorer):
    cfg = GRPOConfig(beta=0.02, learning_rate=3e-3, num_steps=30, prompts_per_step=4, num_generations=4,
                     max_new_tokens=6, truncation_penalty=0.0, save_every=10)
    run = train_grpo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path / "stage", seed=0,
                     scorer=yes_scorer)
    rewards = [r["proxy_reward"] for r in run.history]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    print(f"\nGRPO reward first 5 steps {first:.3f}, last 5 {last:.3f}; final KL {run.history[-1]['kl']:.3f}")
    assert [r["step"] for r in run.history] == list(range(1, 31))
    assert run.history[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first batch is sampled from the reference
    assert last > first + 0.2
    assert sum(r["kl"] for r in run.history[-5:]) / 5 > 0.01  # it moved away from the reference
    assert [c.step for c in run.checkpoints] == [10, 20, 30]
    assert [c.proxy_reward for c in run.checkpoints] == [rewards[9], rewards[19], rewards[29]]
    for path in [c.path for c in run.checkpoints] + [run.policy]:
        assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    saved = json.loads((tmp_path / "stage" / RUN_FILE).read_text())
    assert saved["checkpoints"][0]["path"] == "checkpoints/step-0010" and saved["config"]["beta"] == 0.02
    assert not (tmp_path / "stage" / "policy" / "trainer").exists()


class FakeContext:
    """The shared stages as fixed paths; the GRPO stage is built into ``tmp_path`` by the (replaced) trainer."""

    def __init__(self, tmp_path: Path):
        self.config = SimpleNamespace(options={"grpo": GRPOConfig()})
        self.splits = {"unlabeled": Dataset.from_dict({"instruction": ["q1", "q2"]})}
        self.seed = 2
        self.tmp_path = tmp_path
        self.stages: list[tuple] = []

    def sft(self) -> Path:
        return Path("sft")

    def reward_model(self) -> Path:
        return Path("rm")

    def stage(self, name, inputs, build, collective=False) -> Path:
        self.stages.append((name, inputs, collective))
        out = self.tmp_path / name
        out.mkdir()
        build(out)
        return out


def test_the_method_trains_from_sft_on_the_unlabeled_instructions_and_returns_its_checkpoints(tmp_path, monkeypatch):
    def fake_train(init, reward_model, prompts, cfg, out, seed):
        assert (init, reward_model, list(prompts), seed) == (Path("sft"), Path("rm"), ["q1", "q2"], 2)
        (out / RUN_FILE).write_text(json.dumps({
            "policy": "policy", "reward_model": "rm", "history": [{"step": 5, "proxy_reward": 0.3, "kl": 0.1}],
            "checkpoints": [{"step": 5, "path": "checkpoints/step-0005", "proxy_reward": 0.3, "kl": 0.1}]}))

    monkeypatch.setattr(harness.trainers.grpo, "train_grpo", fake_train)
    ctx = FakeContext(tmp_path)
    trained = GRPO().train(ctx)
    [(name, inputs, collective)] = ctx.stages
    assert (name, collective) == ("grpo", True) and (inputs["init"], inputs["reward_model"]) == (Path("sft"),
                                                                                                   Path("rm"))
    assert (trained.method, trained.reward_model) == ("grpo", Path("rm"))
    assert trained.policy == tmp_path / "grpo" / "policy"
    [checkpoint] = trained.ppo.checkpoints  # what the drift metric and the over-optimisation curve read
    assert (checkpoint.step, checkpoint.path, checkpoint.kl) == (5, tmp_path / "grpo/checkpoints/step-0005", 0.1)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_generations": 1}, "grpo.num_generations: got 1; allowed: a number >= 2"),
    ({"num_steps": 0}, "grpo.num_steps: got 0; allowed: a number > 0"),
    ({"num_steps": 1.5}, "grpo.num_steps: got 1.5; allowed: an integer"),
    ({"beta": -0.1}, "grpo.beta: got -0.1; allowed: a number >= 0"),
    ({"learning_rate": 0.0}, "grpo.learning_rate: got 0.0; allowed: a number > 0"),
])
def test_config_rejects_bad_values_and_documents_every_field(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build(GRPOConfig, kwargs, "grpo")
    assert all(f.metadata.get("help") for f in GRPOConfig.__dataclass_fields__.values())


def test_the_over_optimisation_summary_fits_grpos_checkpoints_with_the_rl_form_and_averages_them_by_step():
    from harness.evals.overoptimisation import summarise

    def seed(number, gold):  # step 0 is SFT (KL 0); the checkpoints peak and fall, as Gao et al.'s RL curve
        points = [{"step": s, "kl": kl, "sqrt_kl": kl ** 0.5, "gold_win_rate": g, "proxy_reward": 0.1 * s}
                  for s, kl, g in zip((0, 5, 10, 15), (0.0, 0.5, 2.0, 4.0), gold)]
        return {"seed": number, "curves": {"grpo": points}, "fits": {}}

    summary = summarise([seed(0, (36.0, 42.0, 40.0, 35.0)), seed(1, (36.0, 44.0, 42.0, 37.0))])
    curve = summary["mean"]["curves"]["grpo"]
    assert [p["step"] for p in curve] == [0, 5, 10, 15] and curve[1]["gold_win_rate"] == 43.0
    fit = summary["mean"]["fits"]["grpo"]
    assert fit["form"] == "rl" and fit["peak_d"] is not None and 0 < fit["peak_d"] < 2
