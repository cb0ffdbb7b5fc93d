"""The values that cross layers: preferences, trained policies and the PPO runs behind them.

Plain data only (no torch), so every layer, the config loader and the report included, can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple


class Preference:
    """alpaca_eval's preference encoding, named: which of two outputs an annotator preferred."""

    FIRST = 1.0
    SECOND = 2.0
    TIE = 1.5


@dataclass(frozen=True)
class PPOCheckpoint:
    """A policy saved during PPO, with the proxy reward and KL it had reached by then."""

    step: int
    path: Path
    proxy_reward: float
    kl: float


class ScoreScale(NamedTuple):
    """What PPO subtracts from the reward model's scores and divides them by: the identity unless it standardises
    them (ppo.reward_normalization_samples), then their mean and standard deviation on the initial policy's
    samples."""

    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class PPORun:
    """What a PPO stage leaves behind: the final policy and the checkpoints along the way."""

    policy: Path
    reward_model: Path
    checkpoints: tuple[PPOCheckpoint, ...]
    history: tuple[dict, ...] = ()  # one record per PPO step: proxy reward, KL, losses, response length
    score_scale: ScoreScale | None = None  # what PPO standardised the scores by; None: raw scores


@dataclass(frozen=True)
class Rerank:
    """How a policy answers when it is reranked: ``n`` samples, and ``reward_model`` keeps its favourite."""

    n: int
    reward_model: Path


@dataclass(frozen=True)
class Refinement:
    """How a method refined its reward model on a policy's samples (RLP-UML, RLP-SPG, online RLHF): the policy it
    sampled (the first PPO's) and the instructions those samples answer. The mechanism check judges the reward models
    on fresh samples of that policy for *other* instructions, so no pair it scores comes from what the refinement
    saw."""

    policy: Path
    instructions: frozenset[str]


@dataclass(frozen=True)
class TrainedPolicy:
    """What a method returns: the policy to evaluate and how it came about.

    ``reward_model`` is the reward model the policy was optimised against (for SFT, which optimises against none,
    the run's shared one, so its offline accuracy and proxy reward are reported beside the others); ``ppo`` carries the
    checkpoints the drift metric evaluates; ``rerank`` makes the policy answer best-of-n (its answer is the
    favourite of ``rerank.n`` samples by ``rerank.reward_model``; None: one sample); ``refinement`` says on which
    policy's samples a method refined ``reward_model`` (None: it did not), which the mechanism check reads;
    ``diagnostics`` holds method-specific figures (SPG acceptance rate, UML loss curves, ...) that the report shows.
    """

    method: str
    policy: Path
    reward_model: Path | None = None
    ppo: PPORun | None = None
    rerank: Rerank | None = None
    refinement: Refinement | None = None
    diagnostics: dict = field(default_factory=dict)
