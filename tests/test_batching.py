"""Batches of similar length (harness.trainers.batching): every example once an epoch, batches cut from runs sorted
by length, in random order; and the SFT and reward trainers train on such batches when their config asks."""

from __future__ import annotations

import dataclasses

import pytest
from datasets import Dataset

from harness.trainers.batching import LengthBucketedRewardTrainer, LengthBucketedSFTTrainer, LengthBucketSampler
from harness.trainers.config import RewardConfig, SFTConfig
from harness.trainers.reward import train_reward_model
from harness.trainers.sft import train_sft


def batches_of(sampler: LengthBucketSampler, batch_size: int) -> list[list[int]]:
    order = list(sampler)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def test_one_bucket_gives_the_batches_of_the_sorted_data_in_random_order():
    lengths = [5, 1, 4, 2, 3, 6, 0, 7]  # the length of example i; sorted: examples 6, 1, 3, 4, 2, 0, 5, 7
    sampler = LengthBucketSampler(lengths, batch_size=2, seed=0, bucket_batches=4)  # one bucket of 8
    epochs = [batches_of(sampler, 2) for _ in range(4)]
    for batches in epochs:
        assert sorted(sorted(b) for b in batches) == [[0, 2], [1, 6], [3, 4], [5, 7]]  # by hand, from the sort
    assert len({tuple(map(tuple, b)) for b in epochs}) > 1  # each epoch draws a new order of the batches
    again = LengthBucketSampler(lengths, batch_size=2, seed=0, bucket_batches=4)
    assert [batches_of(again, 2) for _ in range(4)] == epochs  # and the same seed draws the same epochs


def test_the_short_batch_comes_last():
    lengths = [7, 3, 9, 1, 4, 4, 8, 2, 6, 5, 0]  # 11 examples: batches of 3 leave one of 2
    sampler = LengthBucketSampler(lengths, batch_size=3, seed=1)  # one bucket
    for _ in range(3):
        batches = batches_of(sampler, 3)
        # by hand: sorted by length the examples are 10, 3, 7, 1, (4, 5), 9, 8, 0, 6, 2
        assert sorted(sorted(b) for b in batches[:3]) == [[0, 8, 9], [1, 4, 5], [3, 7, 10]]
        assert sorted(batches[3]) == [2, 6]


def test_padding_is_less_than_random_batches_on_spread_lengths():
    lengths = [(i * 37) % 101 for i in range(1000)]  # 0..100, evenly spread, in scrambled order
    grouped = batches_of(LengthBucketSampler(lengths, batch_size=10, seed=0), 10)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in grouped)
    random_padded = sum(max(lengths[i] for i in range(s, s + 10)) * 10 for s in range(0, 1000, 10))
    # a bucket of 50 batches over about 50 of the 101 lengths: each batch spans about one length
    assert padded < 1.05 * sum(lengths) < 0.6 * random_padded


SHORT, LONG = ("yes", "no"), ("yes yes yes yes yes", "no no no no no")


def _recorded_masks(monkeypatch, trainer_class) -> list:
    masks = []
    compute_loss = trainer_class.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        masks.append(inputs["attention_mask"].clone())
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(trainer_class, "compute_loss", recording)
    return masks


@pytest.mark.parametrize("group_by_length", [True, False])
def test_the_reward_model_trains_on_batches_of_one_length_when_asked(models_dir, tmp_path, monkeypatch,
                                                                     group_by_length):
    # 8 short and 8 long pairs, chosen and rejected of one length: batches of one length have no padding
    pairs = Dataset.from_list([{"instruction": "say a word", "output_1": chosen, "output_2": rejected,
                                "preference": 1.0} for chosen, rejected in [SHORT, LONG] * 8])
    masks = _recorded_masks(monkeypatch, LengthBucketedRewardTrainer)
    cfg = RewardConfig(epochs=2, batch_size=8, group_by_length=group_by_length)
    train_reward_model(models_dir / "policy", pairs, cfg, tmp_path / "rm", seed=0)
    assert len(masks) == 4
    padded = [bool((m == 0).any()) for m in masks]
    assert padded == [False] * 4 if group_by_length else any(padded)


@pytest.mark.parametrize("group_by_length", [True, False])
def test_sft_trains_on_batches_of_one_length_when_asked(models_dir, tmp_path, monkeypatch, group_by_length):
    demonstrations = Dataset.from_list([{"instruction": "say a word", "output": output}
                                        for output in [SHORT[0], LONG[0]] * 8])
    masks = _recorded_masks(monkeypatch, LengthBucketedSFTTrainer)
    cfg = dataclasses.replace(SFTConfig(epochs=2, batch_size=8), group_by_length=group_by_length)
    train_sft(models_dir / "policy", demonstrations, cfg, tmp_path / "sft", seed=0)
    assert len(masks) == 4
    padded = [bool((m == 0).any()) for m in masks]
    assert padded == [False] * 4 if group_by_length else any(padded)
