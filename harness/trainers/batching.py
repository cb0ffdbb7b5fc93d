"""Batches of similar length for the TRL trainers (SFT, the reward model): the same examples, less padding.

A batch is padded to its longest sequence. On the tiny preset's preference pairs (18 tokens on average, 43 at most)
random batches of 32 pairs pad 146k real tokens to 249k, so a reward-model step spent 41% of its arithmetic on
padding. :class:`LengthBucketSampler` shuffles the data, sorts each run of ``bucket_batches`` batches by length,
cuts it into batches and shuffles the batches: every example once per epoch, as with random batches, with the
batches' order still random. transformers' ``LengthGroupedSampler`` sorts the same way but hands each run's batches
over in order of length, longest first, so that an epoch would step from long to short examples 50 batches at a time.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from trl import RewardTrainer, SFTTrainer

# Batches sorted together: the more, the closer the lengths within a batch (HF's LengthGroupedSampler uses 50).
BUCKET_BATCHES = 50


class LengthBucketSampler(Sampler[int]):
    """Indices whose consecutive ``batch_size`` runs are batches of similar length, in random order.

    Each epoch: a random permutation, cut into buckets of ``bucket_batches * batch_size`` indices; each bucket sorted
    by length (ties keep their random order) and cut into batches; the full batches shuffled, then the one short
    batch (if the data do not divide evenly) last, so that a DataLoader over this order with ``batch_size`` forms
    exactly these batches. Seeded once: the same seed gives the same epochs, and each epoch is a new draw.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, bucket_batches: int = BUCKET_BATCHES):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.bucket_size = batch_size * bucket_batches
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        full, short = [], []
        for start in range(0, len(order), self.bucket_size):
            bucket = sorted(order[start:start + self.bucket_size], key=self.lengths.__getitem__)
            for i in range(0, len(bucket), self.batch_size):
                batch = bucket[i:i + self.batch_size]
                (full if len(batch) == self.batch_size else short).append(batch)
        shuffled = [full[i] for i in torch.randperm(len(full), generator=self.generator).tolist()]
        for batch in shuffled + short:
            yield from batch


class _LengthBucketed:
    """A TRL trainer mixin that draws its training batches from :class:`LengthBucketSampler` when its arguments ask
    for ``train_sampling_strategy="group_by_length"`` (transformers' own sampler for it needs an ``input_ids``
    column, which the reward model's pairs do not have); other strategies are the trainer's own.

    ``length_columns``: the tokenised columns a row's padded length is the longest of (the reward model pads a
    pair's chosen and rejected sequences together). With several processes every one draws the same order from the
    same seed and accelerate deals the batches out among them.
    """

    length_columns: tuple[str, ...] = ()

    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        data = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [max(map(len, row)) for row in zip(*(data[column] for column in self.length_columns))]
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return LengthBucketSampler(lengths, self.args.train_batch_size, seed)


class LengthBucketedSFTTrainer(_LengthBucketed, SFTTrainer):
    length_columns = ("input_ids",)


class LengthBucketedRewardTrainer(_LengthBucketed, RewardTrainer):
    length_columns = ("chosen_ids", "rejected_ids")
