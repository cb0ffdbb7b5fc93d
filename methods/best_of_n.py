"""Best-of-n: n samples from the SFT policy per instruction, the reward model keeps the one it scores highest.

The paper's Table 2 baseline (AlpacaFarm's "best-of-n"), and Gao, Schulman & Hilton (2022)'s second way to
optimise against a reward model besides RL. It trains nothing: the policy is the SFT checkpoint, and the reranking
happens when the policy answers, so evaluation honours :attr:`harness.core.types.TrainedPolicy.rerank`
(:func:`rerank`). Its distance from the SFT policy has a closed form, :func:`best_of_n_kl`.

Supported: any policy the context can sample and any reward model it can score. Assumed: ties in the reward
model's score go to the earliest sample (the argmax's convention); the n samples are drawn at the temperature of
whatever asks for them (evaluation: ``eval.temperature``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from harness.core.schema import require_positive
from harness.core.types import Rerank, TrainedPolicy
from methods.base import RunContext


@dataclass
class BestOfNConfig:
    """Settings of best-of-n."""

    n: int = field(default=16, metadata={"help": "Samples from the SFT policy per instruction; the reward model "
                                         "keeps its favourite (AlpacaFarm and the paper's Table 2: 16)."})

    def __post_init__(self) -> None:
        require_positive(self, "n")


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n policy || base policy) = log n - (n - 1) / n, in nats.

    The analytic value Stiennon et al. (2020, appendix) derive and Gao et al. (2022, eq. 1) use for the x axis of
    their best-of-n curves (exact for distinct continuous rewards): 0 for n = 1, growing like log n.

    Raises:
        ValueError: ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    return math.log(n) - (n - 1) / n


def pick_best(samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]]) -> tuple[list[str], list[float]]:
    """Per instruction, the sample with the highest score (the first of equals) and that score.

    Raises:
        ValueError: an instruction has no sample, or its scores do not match its samples.
    """
    chosen, best_scores = [], []
    for i, (outputs, values) in enumerate(zip(samples, scores, strict=True)):
        if not outputs or len(outputs) != len(values):
            raise ValueError(f"instruction {i}: {len(outputs)} samples but {len(values)} scores (need one each)")
        best = max(range(len(values)), key=values.__getitem__)
        chosen.append(outputs[best])
        best_scores.append(float(values[best]))
    return chosen, best_scores


def score_samples(ctx: RunContext, reward_model: Path, instructions: Sequence[str],
                  samples: Sequence[Sequence[str]]) -> list[list[float]]:
    """The reward model's score of every sample, shaped like ``samples`` (one list per instruction)."""
    flat_x = [x for x, outputs in zip(instructions, samples, strict=True) for _ in outputs]
    flat = ctx.score(reward_model, flat_x, [y for outputs in samples for y in outputs])
    scores, offset = [], 0
    for outputs in samples:
        scores.append(flat[offset : offset + len(outputs)])
        offset += len(outputs)
    return scores


def rerank(ctx: RunContext, policy: Path, how: Rerank, instructions: Sequence[str], temperature: float,
           name: str) -> tuple[list[str], list[float]]:
    """Best-of-n answers: ``how.n`` samples per instruction (a cached stage), the reward model's favourite of each.

    Returns:
        The chosen output per instruction and its reward-model score.
    """
    samples = ctx.sample(policy, list(instructions), how.n, temperature, name=name)
    return pick_best(samples, score_samples(ctx, how.reward_model, instructions, samples))


class BestOfN:
    """Best-of-n behind the common method interface: the SFT policy, reranked by the shared reward model."""

    name = "best_of_n"
    config_section = "best_of_n"
    config_class = BestOfNConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        n = ctx.config.options[self.config_section].n
        reward_model = ctx.reward_model()
        return TrainedPolicy(method=self.name, policy=ctx.sft(), reward_model=reward_model,
                             rerank=Rerank(n=n, reward_model=reward_model),
                             diagnostics={"n": n, "analytic_kl": best_of_n_kl(n)})
