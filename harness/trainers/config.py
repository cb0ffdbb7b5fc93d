"""The options of the trainers: the shared stages' (SFT, the reward model and PPO: the ``sft``, ``reward`` and ``ppo``
sections of a preset) and the method-owned DPO and GRPO stages' (the ``dpo`` and ``grpo`` sections, which
:mod:`methods.dpo` and :mod:`methods.grpo` name as their ``config_class``).

The trainers own their options so that they import nothing from ``methods/``, not even for type checking: the
import graph stays free of circles. Plain dataclasses without torch, so a preset loads (and a bad value is refused)
before any library is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.core.schema import require_at_least, require_between, require_positive, require_that


@dataclass
class SFTConfig:
    """Supervised fine-tuning. AlpacaFarm: lr 2e-5, 3 epochs, batch 128, cosine schedule, warmup 0.03."""

    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate (AlpacaFarm: 2e-5)."})
    epochs: float = field(default=3.0, metadata={"help": "Passes over the sft split (AlpacaFarm: 3)."})
    batch_size: int = field(default=32, metadata={"help": "Demonstrations per optimiser step, over all processes "
                                                  "(AlpacaFarm: 128)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of steps with linear warm-up (AlpacaFarm: "
                                                        "0.03)."})
    max_length: int = field(default=128, metadata={"help": "Longest tokenised prompt+response kept, in tokens."})

    def __post_init__(self) -> None:
        require_positive(self, "learning_rate", "epochs", "batch_size", "max_length")
        require_between(self, 0, 1, "warmup_ratio", closed="[)")


@dataclass
class RewardConfig:
    """Reward-model training. AlpacaFarm: lr 3e-6, 1 epoch, batch 16."""

    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (AlpacaFarm: 3e-6)."})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the preference data (AlpacaFarm: 1)."})
    batch_size: int = field(default=32, metadata={"help": "Pairs per optimiser step, over all processes (AlpacaFarm: "
                                                  "16)."})
    max_length: int = field(default=128, metadata={"help": "Longest tokenised prompt+response kept, in tokens."})

    def __post_init__(self) -> None:
        require_positive(self, "learning_rate", "epochs", "batch_size", "max_length")


@dataclass
class PPOConfig:
    """PPO hyper-parameters.

    Defaults are a starting point for small models on the CPU; each preset sets what it measured (the ``tiny``
    preset records its calibration: kl_coef, learning rate and rollouts were set on SFT, PPO and best-of-n curves).
    Each help text gives AlpacaFarm's value, which the ``alpacafarm`` preset uses.
    """

    # Rollout: how responses are sampled and scored.
    rollout_batch_size: int = field(
        default=32, metadata={"help": "Prompts sampled per PPO step, per process. AlpacaFarm: 512."}
    )
    max_new_tokens: int = field(
        default=32, metadata={"help": "Longest response in tokens; longer ones are truncated. AlpacaFarm: 300."}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the rollouts (and of the PPO ratio). AlpacaFarm: 1.0."}
    )
    truncation_penalty: float = field(
        default=-1.0,
        metadata={"help": "Penalty of a response that did not end with eos, so the policy learns to finish: its "
                          "score, or what is added to it (truncation_rule). AlpacaFarm: -1."},
    )
    reward_normalization_samples: int = field(
        default=0,
        metadata={"help": "Before the first step, score this many responses of the initial policy on the training "
                          "prompts and standardise every score by their mean and standard deviation (Ziegler et al., "
                          "2019), so that kl_coef and truncation_penalty weigh the same against any reward model, "
                          "whatever its scale. 0: raw scores (AlpacaFarm)."},
    )
    truncation_rule: Literal["replace", "add"] = field(
        default="replace",
        metadata={"help": "How a cut-off response is scored: 'replace' (AlpacaFarm): truncation_penalty instead of "
                          "the reward model's score; 'add' (TRL's missing_eos_penalty): the score plus "
                          "truncation_penalty, the same penalty whatever the reward model's offset."},
    )
    # Optimisation.
    num_steps: int = field(
        default=20, metadata={"help": "Number of PPO steps (rollout batches). AlpacaFarm's best: 20-80."}
    )
    minibatch_size: int = field(
        default=16,
        metadata={"help": "Responses per optimiser step; must divide rollout_batch_size. AlpacaFarm: 256 (step "
                          "batch)."},
    )
    ppo_epochs: int = field(
        default=2, metadata={"help": "Passes over each rollout batch, in shuffled minibatches. AlpacaFarm: 2."}
    )
    learning_rate: float = field(
        default=3e-4,
        metadata={"help": "AdamW learning rate of the policy and of the value model. AlpacaFarm: 1e-5 (for "
                          "LLaMA-7B; tiny models need a larger one)."},
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata={"help": "Gradient-norm clip, per model. AlpacaFarm: 1.0 (the HF Trainer default)."},
    )
    clip_range: float = field(
        default=0.2, metadata={"help": "PPO ratio clip epsilon of the policy loss. AlpacaFarm: 0.2."}
    )
    value_clip_range: float = field(
        default=0.2, metadata={"help": "How far a value may move from its rollout-time estimate. AlpacaFarm: 0.2."}
    )
    vf_coef: float = field(
        default=0.1, metadata={"help": "Weight of the value loss added to the policy loss. AlpacaFarm: 0.1."}
    )
    # KL penalty.
    kl_coef: float = field(
        default=0.02,
        metadata={"help": "Weight of the per-token KL penalty to the initial policy. AlpacaFarm: 0.0067 with "
                          "simulated preferences, 0.02 with human ones."},
    )
    # Advantages.
    gamma: float = field(default=1.0, metadata={"help": "Discount factor of GAE. AlpacaFarm: 1.0."})
    lam: float = field(default=1.0, metadata={"help": "Lambda of GAE. AlpacaFarm: 1.0."})
    whiten_rewards: bool = field(
        default=True,
        metadata={"help": "Scale the shaped per-token rewards to unit variance (mean kept) before GAE. "
                          "AlpacaFarm: true."},
    )
    # Checkpoints.
    save_every: int = field(
        default=5,
        metadata={"help": "PPO steps between saved policy checkpoints (for the reward-model drift metric); the "
                          "final policy is always saved. AlpacaFarm's best checkpoints fall between steps 20 and 80."},
    )

    def __post_init__(self) -> None:
        require_positive(self, "rollout_batch_size", "max_new_tokens", "num_steps", "minibatch_size", "ppo_epochs",
                         "save_every", "temperature", "learning_rate", "max_grad_norm", "clip_range",
                         "value_clip_range")
        require_at_least(self, 0, "vf_coef", "kl_coef", "reward_normalization_samples")
        require_between(self, 0, 1, "gamma", "lam")
        require_that(self.rollout_batch_size % self.minibatch_size == 0, self, "minibatch_size",
                     f"a divisor of rollout_batch_size ({self.rollout_batch_size})")


@dataclass
class DPOConfig:
    """DPO. AlpacaFarm: beta 0.1, lr 1e-6, 2 epochs, batch 128, cosine, warm-up 0.03."""

    beta: float = field(
        default=0.1,
        metadata={"help": "Strength of the implicit KL penalty to the SFT policy: higher stays closer (AlpacaFarm and "
                          "TRL: 0.1)."},
    )
    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak learning rate (AlpacaFarm: 1e-6, for LLaMA-7B; tiny models need a larger one, as "
                          "for PPO)."},
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the decided preference pairs (AlpacaFarm: 2)."})
    batch_size: int = field(
        default=32, metadata={"help": "Pairs per optimiser step, over all processes (AlpacaFarm: 128)."}
    )
    max_length: int = field(
        default=128, metadata={"help": "Longest tokenised prompt+response kept, in tokens (AlpacaFarm: 512)."}
    )

    def __post_init__(self) -> None:
        require_positive(self, "beta", "learning_rate", "epochs", "batch_size", "max_length")

    def global_batch_sizes(self) -> dict[str, int]:
        """Batches split over the processes, checked before any training (:func:`harness.pipeline.prepare`)."""
        return {"dpo.batch_size": self.batch_size}


@dataclass
class GRPOConfig:
    """GRPO. AlpacaFarm has no GRPO; the help texts give TRL's and DeepSeekMath's values where they differ."""

    beta: float = field(
        default=0.1,
        metadata={"help": "Weight of the per-token KL to the SFT policy, reasoned as PPO's kl_coef (both against "
                          "unit-scale advantages). TRL: 0 (no reference); DeepSeekMath: 0.04."},
    )
    learning_rate: float = field(
        default=1e-4, metadata={"help": "AdamW learning rate, constant as PPO's (TRL: 1e-6, for large models)."}
    )
    num_steps: int = field(default=20, metadata={"help": "Optimiser steps, one fresh batch of samples each."})
    prompts_per_step: int = field(
        default=8, metadata={"help": "Unlabeled instructions sampled per step, over all processes."}
    )
    num_generations: int = field(
        default=8, metadata={"help": "Samples per instruction, the group its advantages are relative to (TRL: 8; "
                                     "DeepSeekMath: 64)."}
    )
    max_new_tokens: int = field(default=32, metadata={"help": "Longest response in tokens, as PPO's."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the samples, as PPO's."})
    truncation_penalty: float = field(
        default=-1.0,
        metadata={"help": "Penalty of a response that did not end with eos, as PPO's (AlpacaFarm: -1)."},
    )
    truncation_rule: Literal["replace", "add"] = field(
        default="replace", metadata={"help": "How a cut-off response is scored, as PPO's truncation_rule."}
    )
    save_every: int = field(
        default=5, metadata={"help": "Steps between saved checkpoints for the drift metric; the final policy is "
                                     "always saved."}
    )

    def __post_init__(self) -> None:
        require_positive(self, "num_steps", "prompts_per_step", "max_new_tokens", "save_every", "learning_rate",
                         "temperature")
        require_at_least(self, 2, "num_generations")  # a group of one has no advantage
        require_at_least(self, 0, "beta")

    def global_batch_sizes(self) -> dict[str, int]:
        """Batches split over the processes, checked before any training (:func:`harness.pipeline.prepare`)."""
        return {"grpo.prompts_per_step": self.prompts_per_step * self.num_generations}
