"""The common method interface.

A method is a small class with a ``name`` and ``train(ctx)``. It never trains a shared stage itself: it asks the
run context (:class:`harness.context.RunContext`), which builds every stage once per run and caches it on disk,
so ``--methods sft ppo rlp_uml rlp_spg`` trains the SFT model, the reward model and the first PPO policy once.

The context offers::

    ctx.sft()                                   -> Path of the SFT checkpoint
    ctx.reward_model(extra_pairs=None, ...)     -> Path of a reward-model checkpoint (Bradley-Terry)
    ctx.ppo(init, reward_model)                 -> PPORun (final policy + saved checkpoints for drift)
    ctx.sample(policy, prompts, n, temperature) -> list of n samples per prompt (a cached stage)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.context import RunContext


def mixed_precision() -> str:
    """The process's mixed precision, "no", "bf16" or "fp16", as accelerate reads it.

    ``accelerate launch`` sets ``ACCELERATE_MIXED_PRECISION`` from its config, and ``harness.run`` sets it from
    ``runtime.mixed_precision`` otherwise, so our PPO (an ``Accelerator``), the TRL trainers and the generator
    all train and sample at one precision.
    """
    return os.environ.get("ACCELERATE_MIXED_PRECISION", "no")


def set_mixed_precision(choice: str) -> None:
    """Sets the process's mixed precision where accelerate (and :func:`mixed_precision`) reads it.

    On a GPU, ``auto`` keeps what ``accelerate launch`` set and otherwise picks bf16 where the GPU has it, and
    float32 matrix products may use TF32. On the CPU everything stays float32, whatever ``choice`` says.

    Raises:
        ValueError: ``choice`` is not "auto", "no", "bf16" or "fp16".
    """
    import torch

    if choice not in ("auto", "no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision: must be 'auto', 'no', 'bf16' or 'fp16', got {choice!r}")
    if not torch.cuda.is_available():
        os.environ["ACCELERATE_MIXED_PRECISION"] = "no"
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if choice == "auto":
        os.environ.setdefault("ACCELERATE_MIXED_PRECISION", "bf16" if torch.cuda.is_bf16_supported() else "no")
    else:
        os.environ["ACCELERATE_MIXED_PRECISION"] = choice


def trainer_precision() -> dict:
    """HF ``TrainingArguments`` fields for the process's mixed precision: bf16/fp16 on a GPU only, else the CPU.

    Every TRL trainer here takes them (and the TRL 1.12 reference in ``benchmarks.ppo_vs_trl``), so they train at
    the precision our PPO and the sampler use; TRL's own default, bf16, would also be taken on the CPU.
    """
    import torch

    on_gpu = torch.cuda.is_available()
    return dict(bf16=on_gpu and mixed_precision() == "bf16", fp16=on_gpu and mixed_precision() == "fp16",
                use_cpu=not on_gpu)


@dataclass(frozen=True)
class PPOCheckpoint:
    """A policy saved during PPO, with the proxy reward and KL it had reached by then."""

    step: int
    path: Path
    proxy_reward: float
    kl: float


@dataclass(frozen=True)
class PPORun:
    """What a PPO stage leaves behind: the final policy and the checkpoints along the way."""

    policy: Path
    reward_model: Path
    checkpoints: tuple[PPOCheckpoint, ...]
    history: tuple[dict, ...] = ()  # one record per PPO step: proxy reward, KL, losses, response length


@dataclass(frozen=True)
class Rerank:
    """How a policy answers when it is reranked: ``n`` samples, and ``reward_model`` keeps its favourite."""

    n: int
    reward_model: Path


@dataclass(frozen=True)
class TrainedPolicy:
    """What a method returns: the policy to evaluate and how it came about.

    ``reward_model`` is the reward model the policy was optimised against (for SFT, which optimises against none,
    the run's shared one, so its offline accuracy and proxy reward are reported beside the others); ``ppo`` carries the
    checkpoints the drift metric evaluates; ``rerank`` makes the policy answer best-of-n (its answer is the
    favourite of ``rerank.n`` samples by ``rerank.reward_model``; None: one sample); ``diagnostics`` holds
    method-specific figures (SPG acceptance rate, UML loss curves, ...) that the report shows.
    """

    method: str
    policy: Path
    reward_model: Path | None = None
    ppo: PPORun | None = None
    rerank: Rerank | None = None
    diagnostics: dict = field(default_factory=dict)


class Method(Protocol):
    """One RLHF method: ``train`` returns the policy to evaluate."""

    name: str

    def train(self, ctx: RunContext) -> TrainedPolicy: ...
