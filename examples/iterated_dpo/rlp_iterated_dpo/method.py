"""Iterated DPO: rounds of DPO on pairs the run's reward model ranks among the policy's own samples.

Each round samples ``n`` responses per unlabeled instruction from the current policy, scores them with the run's
reward model, and pairs the best with the worst (an instruction whose samples all score the same has no pair);
DPO then trains the current policy on those pairs, with the current policy as its frozen reference, and the next
round samples from the result. Round 1 starts from SFT. This is online, on-policy DPO against a learned reward
(as in Xiong et al., 2024, and Guo et al., 2024's online AI feedback), built only from what the harness offers a
method: the shared stages through the ``RunContext`` protocol (``sft``, ``reward_model``, ``sample``, ``score``,
``stage``) and the harness's own DPO trainer (:func:`harness.trainers.dpo.train_dpo`).

The module imports no torch at import time, as every method module: the harness reads the options dataclass when
it loads a preset, before any training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from harness.cache import fingerprint
from harness.core.schema import require_at_least, require_positive
from harness.core.types import TrainedPolicy
from harness.trainers.config import DPOConfig

if TYPE_CHECKING:
    from datasets import Dataset

    from methods.base import RunContext


@dataclass
class IteratedDPOConfig:
    """The ``iterated_dpo`` section of a preset: the rounds, the samples ranked per round, and each round's DPO."""

    rounds: int = field(default=2, metadata={"help": "Sample-rank-DPO rounds; round k samples from round k-1's "
                                             "policy (round 1 from SFT)."})
    n: int = field(default=4, metadata={"help": "Samples per unlabeled instruction; the reward model's best and "
                                        "worst of them make the instruction's pair."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the n samples."})
    beta: float = field(default=0.1, metadata={"help": "DPO's KL strength to the round's starting policy, as "
                                               "dpo.beta."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate of each round, as "
                                                         "dpo.learning_rate."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over each round's pairs."})
    batch_size: int = field(default=32, metadata={"help": "Pairs per optimiser step, over all processes."})
    max_length: int = field(default=128, metadata={"help": "Longest tokenised prompt+response kept, in tokens."})

    def __post_init__(self) -> None:
        require_positive(self, "rounds", "temperature", "beta", "learning_rate", "epochs", "batch_size",
                         "max_length")
        require_at_least(self, 2, "n")  # one sample makes no pair

    def dpo(self) -> DPOConfig:
        """Each round's options for the harness's DPO trainer."""
        return DPOConfig(beta=self.beta, learning_rate=self.learning_rate, epochs=self.epochs,
                         batch_size=self.batch_size, max_length=self.max_length)

    def global_batch_sizes(self) -> dict[str, int]:
        """Batches split over the processes, checked by the harness before any training."""
        return {"iterated_dpo.batch_size": self.batch_size}


def ranked_pairs(instructions: Sequence[str], samples: Sequence[Sequence[str]],
                 scores: Sequence[Sequence[float]]) -> tuple[Dataset, float]:
    """The reward model's best against its worst sample of each instruction, as preference rows (the best first),
    and the mean score margin of the pairs; instructions whose samples all score the same are left out."""
    from datasets import Dataset

    rows: dict[str, list] = {"instruction": [], "output_1": [], "output_2": [], "preference": []}
    margins = []
    for instruction, outputs, values in zip(instructions, samples, scores, strict=True):
        best = max(range(len(values)), key=values.__getitem__)
        worst = min(range(len(values)), key=values.__getitem__)
        if values[best] == values[worst]:
            continue
        for column, value in zip(rows, (instruction, outputs[best], outputs[worst], 1.0)):
            rows[column].append(value)
        margins.append(values[best] - values[worst])
    return Dataset.from_dict(rows), (sum(margins) / len(margins) if margins else 0.0)


class IteratedDPO:
    """Iterated DPO from the SFT policy on the shared reward model's rankings of the policy's own samples."""

    name = "iterated_dpo"
    config_section = "iterated_dpo"
    config_class = IteratedDPOConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        from harness.trainers.dpo import train_dpo

        cfg: IteratedDPOConfig = ctx.config.options[self.config_section]
        reward_model = ctx.reward_model()
        instructions = list(ctx.splits["unlabeled"]["instruction"])
        policy, diagnostics = ctx.sft(), {}
        for round_ in range(1, cfg.rounds + 1):
            samples = ctx.sample(policy, instructions, cfg.n, cfg.temperature, name="iterated_dpo_samples",
                                 training=True)
            flat = [(instruction, output) for instruction, outputs in zip(instructions, samples) for output in outputs]
            flat_scores = ctx.score(reward_model, [i for i, _ in flat], [o for _, o in flat])
            scores = [flat_scores[k * cfg.n:(k + 1) * cfg.n] for k in range(len(instructions))]
            pairs, margin = ranked_pairs(instructions, samples, scores)
            if len(pairs) == 0:
                raise ValueError(f"iterated_dpo round {round_}: the reward model scores all {cfg.n} samples of every "
                                 "instruction the same; no pair to learn from")
            diagnostics[f"round_{round_}_pairs"] = len(pairs)
            diagnostics[f"round_{round_}_margin"] = margin
            policy = ctx.stage(
                "iterated_dpo",
                {"init": Path(policy), "reward_model": Path(reward_model), "dpo": dataclasses.asdict(cfg.dpo()),
                 "data": fingerprint(pairs.to_list())},
                lambda out, init=policy, data=pairs: train_dpo(init, data, cfg.dpo(), out, ctx.seed),
                collective=True,
            )
        return TrainedPolicy(method=self.name, policy=policy, reward_model=reward_model, diagnostics=diagnostics)
