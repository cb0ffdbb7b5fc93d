"""Reward-model training: Bradley-Terry on the preference schema, reproducible whatever ran before it."""

from __future__ import annotations

import torch
from datasets import Dataset
from safetensors.torch import load_file
from test_ppo_train import models_dir  # noqa: F401  (a pytest fixture: tiny LLaMA + word-level chat tokenizer)

from harness.trainers.config import RewardConfig
from harness.trainers.reward import preference_pairs, train_reward_model

PAIRS = Dataset.from_dict({
    "instruction": ["say yes", "say no", "the cat is", "a dog is"] * 4,
    "output_1": ["yes yes", "no", "the cat", "dog"] * 4,
    "output_2": ["no", "yes yes", "dog", "the cat"] * 4,
    "preference": [1.0, 2.0, 1.5, 2.0] * 4,
})


def test_preference_pairs_put_the_winner_first_and_drop_ties():
    pairs = preference_pairs(PAIRS.select(range(4)))
    assert len(pairs) == 3  # the tie (1.5) carries no Bradley-Terry signal
    chosen = [row["chosen"][0]["content"] for row in pairs]
    assert chosen == ["yes yes", "yes yes", "the cat"]


def test_training_does_not_depend_on_the_global_rng(models_dir, tmp_path):  # noqa: F811
    cfg = RewardConfig(epochs=1, batch_size=4, learning_rate=1e-3)
    weights = []
    for name, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)  # earlier stages of a run leave the global RNG anywhere
        torch.rand(noise * 10)
        train_reward_model(models_dir / "policy", PAIRS, cfg, tmp_path / name, seed=0)
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
