"""RLP-UML: Reward Learning on Policy with unsupervised multi-view learning (Lang et al., NAACL 2024, Sec. 4.2).

One round, as in the paper:

1. PPO from the SFT model against the Bradley-Terry reward model (shared, cached stages).
2. Sample n outputs per unlabeled instruction from that PPO policy (a cached stage shared with RLP-SPG).
3. Build view pairs: two *different* samples of the same instruction, v1 = (x, y1) and v2 = (x, y2).
4. Retrain the reward model with  L = BT loss on the preference split + lambda * L_M,  where L_M is the
   multi-view information bottleneck (:mod:`harness.trainers.mib`) on the reward model's final-layer representation.
5. Run a new PPO from the SFT model (not from the first PPO policy) against the refined reward model.

Choices where the paper is silent, each a :class:`UMLConfig` field: last-token pooling (``pooling``), instructions
whose samples are all the same text skipped (``identical_views``), the closed-form symmetric KL (``skl_estimator``).
Fixed choices, documented where they are made: one view pair per instruction, drawn at random among the pairs of
samples whose texts differ (:func:`build_view_pairs`), and one encoder shared by both views
(:mod:`harness.trainers.mib`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Literal, NamedTuple, Sequence

from harness.core.schema import require_at_least, require_positive
from harness.core.types import Refinement, TrainedPolicy
from methods.base import RunContext
from methods.refinement import score_spread_ratio


@dataclass
class UMLConfig:
    """Settings of RLP-UML's reward-model retraining (the ``uml`` section of a run config)."""

    # The objective
    weight: float = field(
        default=0.5,
        metadata={"help": "lambda, the weight of the MIB loss L_M added to the Bradley-Terry loss (paper: 0.5)."},
    )
    skl_weight: float = field(
        default=1.0,
        metadata={
            "help": "beta, the weight of D_SKL inside L_M. 1 is the paper's L_M (fixed, not annealed as Federici et "
            "al. do); 0 leaves multi-view InfoMax, the paper's 'MVI' ablation."
        },
    )
    estimator: Literal["jsd", "infonce"] = field(
        default="jsd",
        metadata={"help": "MI estimator: 'jsd' (Jensen-Shannon, the paper) or 'infonce' (the 'contrastive' ablation)."},
    )
    skl_estimator: Literal["closed_form", "sample"] = field(
        default="closed_form",
        metadata={
            "help": "How D_SKL is computed: 'closed_form' (exact for diagonal Gaussians, no variance) or 'sample' "
            "(Federici et al.'s single-sample estimate)."
        },
    )
    # The heads
    latent_dim: int = field(default=64, metadata={"help": "Size of the latent z (64 in Federici et al.)."})
    hidden_dim: int = field(
        default=256, metadata={"help": "Width of the hidden layers of the 3-layer mu, sigma and critic MLPs."}
    )
    # The data
    pooling: Literal["last", "mean"] = field(
        default="last",
        metadata={
            "help": "How h(v) is read from the final layer: 'last' non-pad token (what a causal reward head reads) "
            "or 'mean' over non-pad tokens."
        },
    )
    identical_views: Literal["skip", "keep"] = field(
        default="skip",
        metadata={
            "help": "Instructions whose samples all have the same text: 'skip' them (identical views teach the "
            "bottleneck nothing about what to discard) or 'keep' one identical pair."
        },
    )
    batch_size: int = field(
        default=8, metadata={"help": "View pairs per reward-model step (>= 2: negatives come from the batch)."}
    )
    max_length: int = field(
        default=512, metadata={"help": "Tokens per chat-formatted view; longer views are cut on the right."}
    )

    def __post_init__(self):
        require_positive(self, "weight", "latent_dim", "hidden_dim", "max_length")
        require_at_least(self, 0, "skl_weight")
        require_at_least(self, 2, "batch_size")


class ViewPair(NamedTuple):
    """Two different policy samples for one instruction: the views v1 = (x, y1) and v2 = (x, y2)."""

    instruction: str
    output_1: str
    output_2: str


def build_view_pairs(
    instructions: Sequence[str], samples: Sequence[Sequence[str]], seed: int,
    identical_views: Literal["skip", "keep"] = "skip",
) -> list[ViewPair]:
    """Draws one view pair per instruction from its policy samples.

    The pair is drawn uniformly among the pairs of samples (i < j) whose texts differ after stripping surrounding
    whitespace, so frequent outputs are picked as often as the policy produces them. One pair per instruction keeps
    every view pair of a batch from a different instruction, which the in-batch negatives of the MI estimators need.
    When all samples are the same text, ``identical_views`` says whether to skip the instruction or keep its first
    two samples. Instructions with fewer than two samples are always skipped.

    Args:
        instructions: the unlabeled instructions.
        samples: the policy's samples, one list per instruction.
        seed: seeds the draw; the same inputs and seed give the same pairs.
        identical_views: "skip" or "keep".

    Returns:
        The view pairs, in the order of ``instructions``.

    Raises:
        ValueError: if the two sequences differ in length or ``identical_views`` is unknown.
    """
    if len(instructions) != len(samples):
        raise ValueError(
            f"instructions and samples must have the same length, got {len(instructions)} and {len(samples)}"
        )
    if identical_views not in ("skip", "keep"):
        raise ValueError(f"identical_views: got {identical_views!r}; allowed: 'skip', 'keep'")
    rng = random.Random(seed)
    pairs = []
    for instruction, outputs in zip(instructions, samples):
        distinct = [(a, b) for a, b in combinations(outputs, 2) if a.strip() != b.strip()]
        if distinct:
            pairs.append(ViewPair(instruction, *rng.choice(distinct)))
        elif identical_views == "keep" and len(outputs) >= 2:
            pairs.append(ViewPair(instruction, outputs[0], outputs[1]))
    return pairs


class RLPUML:
    """RLP-UML: refine the reward model on PPO-policy samples with the MIB loss, then run PPO again from SFT.

    Supported: any AutoModelForSequenceClassification reward model whose backbone sits at ``base_model_prefix``;
    the ``jsd``/``infonce`` estimators and ``skl_weight`` cover the paper's MVI and contrastive ablations.
    Assumed: the context's reward-model stage adds ``auxiliary.weight * auxiliary(model, tokenizer)`` to the
    Bradley-Terry loss at every step and optimises ``auxiliary.parameters()`` with the reward model.
    """

    name = "rlp_uml"
    config_section = "uml"
    config_class = UMLConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        from transformers import AutoConfig

        from harness.trainers.multiview import MultiViewAuxiliaryLoss

        config: UMLConfig = ctx.config.options[self.config_section]
        sft = ctx.sft()
        first = ctx.ppo(sft, ctx.reward_model())
        instructions, samples = ctx.policy_samples(first.policy)
        pairs = build_view_pairs(instructions, samples, seed=ctx.seed, identical_views=config.identical_views)
        ctx.log(
            f"rlp_uml: {len(pairs)} view pairs from {len(instructions)} instructions "
            f"({len(instructions) - len(pairs)} without two usable samples, identical_views={config.identical_views})"
        )
        in_dim = AutoConfig.from_pretrained(sft).hidden_size  # the reward model is trained from the SFT model
        auxiliary = MultiViewAuxiliaryLoss(pairs, config, in_dim=in_dim, seed=ctx.seed)
        reward_model = ctx.reward_model(auxiliary=auxiliary)
        run = ctx.ppo(sft, reward_model)
        return TrainedPolicy(
            method=self.name,
            policy=run.policy,
            reward_model=reward_model,
            ppo=run,
            refinement=Refinement(first.policy, frozenset(instructions)),
            diagnostics={
                "view_pairs": len(pairs),
                "instructions": len(instructions),
                "instructions_without_pair": len(instructions) - len(pairs),
                "mib_curve": mib_curve(reward_model),
                "score_spread_vs_r": score_spread_ratio(first, run),
            },
        )


def mib_curve(reward_model: Path) -> list[dict]:
    """The refined reward model's training curve as its stage recorded it: one record per step with the
    Bradley-Terry loss and L_M (``mib_loss``, and its parts ``mi`` and ``skl``), so the report can show whether the
    multi-view loss moved at all. Empty when the stage recorded none (no auxiliary loss)."""
    path = Path(reward_model) / "auxiliary_curve.json"
    return json.loads(path.read_text()) if path.exists() else []
