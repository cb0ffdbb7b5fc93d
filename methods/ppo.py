"""PPO: the SFT policy optimised against the reward model trained on the preference split (AlpacaFarm's recipe).

The loop itself is a shared stage (:mod:`harness.trainers.ppo`), since RLP runs it too; its options are the
preset's ``ppo`` section.
"""

from __future__ import annotations

from harness.core.types import TrainedPolicy
from methods.base import RunContext


class PPO:
    """Plain PPO from the SFT model against the reward model trained on the preference split."""

    name = "ppo"
    config_section = None  # the shared ``ppo`` section
    config_class = None

    def train(self, ctx: RunContext) -> TrainedPolicy:
        sft = ctx.sft()
        reward_model = ctx.reward_model()
        run = ctx.ppo(sft, reward_model)
        return TrainedPolicy(method=self.name, policy=run.policy, reward_model=reward_model, ppo=run)
