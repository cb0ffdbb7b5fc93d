"""SFT: supervised fine-tuning on the demonstrations only, the baseline every RLHF method must beat."""

from __future__ import annotations

from harness.core.types import TrainedPolicy
from methods.base import RunContext


class SFT:
    """The SFT policy, evaluated with the run's shared reward model beside it (for its offline accuracy and proxy
    reward in the report); it optimises against no reward model itself."""

    name = "sft"
    config_section = None
    config_class = None

    def train(self, ctx: RunContext) -> TrainedPolicy:
        return TrainedPolicy(method=self.name, policy=ctx.sft(), reward_model=ctx.reward_model())
