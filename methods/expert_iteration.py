"""Expert iteration, AlpacaFarm's recipe: best-of-n samples of the policy on the unlabeled instructions, chosen by
the reward model, then supervised fine-tuning on them.

One round: ``n`` samples per unlabeled instruction from the current policy (a shared, cached sample stage), the
reward model keeps its favourite of each (:func:`methods.best_of_n.pick_best`), and the SFT checkpoint is
fine-tuned on those favourites with the run's SFT settings (:func:`methods.sft.train_sft`, a cached stage). Round
``k`` samples from round ``k - 1``'s policy, so later rounds distil a policy that is already better than SFT;
every round fine-tunes from the SFT checkpoint, as AlpacaFarm's single round does.

AlpacaFarm (README, "Expert Iteration"): n = 16 samples of SFT10k per unlabeled instruction at temperature 1.0,
one round, then SFT from SFT10k with the SFT script's settings (lr 2e-5, 3 epochs, batch 128).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cache import fingerprint
from harness.core.schema import require_positive
from harness.core.types import TrainedPolicy
from methods.base import RunContext
from methods.best_of_n import pick_best, score_samples

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class ExpertIterationConfig:
    """Expert iteration. AlpacaFarm: n 16, one round, temperature 1.0, SFT settings for the fine-tuning."""

    n: int = field(default=16, metadata={"help": "Samples per unlabeled instruction; the reward model keeps its "
                                         "favourite as the demonstration (AlpacaFarm: 16)."})
    rounds: int = field(default=1, metadata={"help": "Sample-choose-fine-tune rounds; round k samples from round "
                                             "k-1's policy (AlpacaFarm: 1)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the n samples "
                                                      "(AlpacaFarm: 1.0)."})

    def __post_init__(self) -> None:
        require_positive(self, "n", "rounds", "temperature")


def favourites(ctx: RunContext, policy: Path, reward_model: Path, instructions: list[str]) -> tuple[Dataset, float]:
    """The reward model's favourite of ``n`` samples of ``policy`` per instruction, as SFT demonstrations, and the
    mean reward of those favourites."""
    from datasets import Dataset

    cfg: ExpertIterationConfig = ctx.config.options[ExpertIteration.config_section]
    samples = ctx.sample(policy, instructions, cfg.n, cfg.temperature, name="expert_iteration_samples",
                         training=True)
    chosen, scores = pick_best(samples, score_samples(ctx, reward_model, instructions, samples))
    return Dataset.from_dict({"instruction": list(instructions), "output": chosen}), sum(scores) / len(scores)


class ExpertIteration:
    """Expert iteration from the SFT policy against the shared reward model, on the unlabeled instructions."""

    name = "expert_iteration"
    config_section = "expert_iteration"
    config_class = ExpertIterationConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        from harness.trainers.sft import train_sft

        cfg: ExpertIterationConfig = ctx.config.options[self.config_section]
        sft, reward_model = ctx.sft(), ctx.reward_model()
        instructions = list(ctx.splits["unlabeled"]["instruction"])
        policy, diagnostics = sft, {"n": cfg.n, "rounds": cfg.rounds}
        for round_ in range(1, cfg.rounds + 1):
            demonstrations, chosen_reward = favourites(ctx, policy, reward_model, instructions)
            diagnostics[f"round_{round_}_chosen_reward"] = chosen_reward
            policy = ctx.stage(
                "expert_iteration",
                {"init": Path(sft), "sft": dataclasses.asdict(ctx.config.sft),
                 "data": fingerprint(demonstrations.to_list())},
                lambda out, data=demonstrations: train_sft(sft, data, ctx.config.sft, out, ctx.seed),
                collective=True,
            )
        return TrainedPolicy(method=self.name, policy=policy, reward_model=reward_model, diagnostics=diagnostics)
