"""Direct Preference Optimization (Rafailov et al., 2023) with TRL's DPOTrainer: the policy learns from the
preference pairs directly, with no reward model and no sampling.

It starts from the SFT policy, which is also its frozen reference, and trains on the preference split's labelled
pairs, the very labels the reward model learns from (:meth:`harness.context.RunContext.labelled_pairs`), in the
same chat-message format as SFT and the reward model (:mod:`harness.core.chat`). Ties carry no preference
and are dropped (:func:`harness.trainers.reward.preference_pairs`, shared with the reward model).

AlpacaFarm's DPO (``examples/scripts/dpo.sh`` with its trainer): beta 0.1, learning rate 1e-6, 2 epochs, batch 128
(1 x 16 accumulation x 8 GPUs), cosine schedule with 3% warm-up, sigmoid loss on summed response log-probabilities
(TRL's default loss). Each field's help text gives AlpacaFarm's value beside the tiny preset's reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.cache import fingerprint
from harness.core.types import TrainedPolicy
from harness.trainers.config import DPOConfig
from methods.base import RunContext

__all__ = ["DPO", "DPOConfig"]  # its options live beside its trainer's (harness.trainers.config)


class DPO:
    """DPO from the SFT policy on the preference split's labels; scored against the shared reward model like SFT."""

    name = "dpo"
    config_section = "dpo"
    config_class = DPOConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        from harness.trainers.dpo import train_dpo

        cfg: DPOConfig = ctx.config.options[self.config_section]
        sft = ctx.sft()
        pairs = ctx.labelled_pairs("preference")
        policy = ctx.stage(
            "dpo",
            {"init": Path(sft), "dpo": dataclasses.asdict(cfg), "data": fingerprint(pairs.to_list())},
            lambda out: train_dpo(sft, pairs, cfg, out, ctx.seed),
            collective=True,
        )
        return TrainedPolicy(method=self.name, policy=policy, reward_model=ctx.reward_model())
