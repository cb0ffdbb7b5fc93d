"""GRPO (Shao et al., 2024, DeepSeekMath) with TRL's GRPOTrainer, against the run's reward model.

PPO's critic is replaced by the group: each prompt gets ``num_generations`` samples, and a sample's advantage is
its reward minus the group's mean, over the group's standard deviation. The reward is the project's reward model
(:class:`harness.trainers.grpo.RewardModelReward`, through :class:`harness.trainers.scoring.RewardModelScorer`, as PPO scores), with PPO's penalty for
a response cut off before eos. It starts from the SFT policy, which is also the frozen KL reference, and samples
the unlabeled instructions, as PPO does.

The KL coefficient ``beta`` is reasoned as PPO's ``kl_coef``: both weigh a per-token KL estimate to the SFT policy
against advantages of unit scale (PPO whitens its rewards and advantages; GRPO divides by the group's standard
deviation), so the same value pulls about as hard, and the tiny preset starts from PPO's calibrated 0.1. TRL adds
it to the loss (k3 estimator) where PPO subtracts it from the reward; TRL's default, 0, would leave the policy
unanchored. DeepSeekMath used 0.04.

Like PPO, the stage saves a checkpoint every ``save_every`` steps with the proxy reward and the KL reached
(``ppo_run.json``, read by :func:`harness.trainers.ppo.load_ppo_run`), so the drift metric and the over-optimisation curve
read GRPO's checkpoints exactly as PPO's. KL there is per sequence, as PPO logs it: TRL's per-token mean times the
mean response length of the step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.cache import fingerprint
from harness.core.types import PPORun, TrainedPolicy
from harness.trainers.config import GRPOConfig
from methods.base import RunContext

__all__ = ["GRPO", "GRPOConfig", "grpo_run"]  # its options live beside its trainer's (harness.trainers.config)


def grpo_run(ctx: RunContext) -> PPORun:
    """The run's GRPO from the SFT policy against the shared reward model (a cached stage, shared by the method and
    the over-optimisation curve)."""
    from harness.trainers.grpo import train_grpo
    from harness.trainers.ppo import load_ppo_run

    cfg: GRPOConfig = ctx.config.options[GRPO.config_section]
    sft, reward_model = ctx.sft(), ctx.reward_model()
    unlabeled = ctx.splits["unlabeled"]
    path = ctx.stage(
        "grpo",
        {"init": Path(sft), "reward_model": Path(reward_model), "grpo": dataclasses.asdict(cfg),
         "data": fingerprint(unlabeled.to_list())},
        lambda out: train_grpo(sft, reward_model, unlabeled["instruction"], cfg, out, ctx.seed),
        collective=True,
    )
    return load_ppo_run(path)


class GRPO:
    """GRPO from the SFT model against the reward model trained on the preference split; drift-tracked as PPO."""

    name = "grpo"
    config_section = "grpo"
    config_class = GRPOConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        run = grpo_run(ctx)
        return TrainedPolicy(method=self.name, policy=run.policy, reward_model=ctx.reward_model(), ppo=run)
