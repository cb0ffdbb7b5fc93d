"""RLP-UML: Reward Learning on Policy with unsupervised multi-view learning (Lang et al., NAACL 2024, Sec. 4.2).

One round, as in the paper:

1. PPO from the SFT model against the Bradley-Terry reward model (shared, cached stages).
2. Sample n outputs per unlabeled instruction from that PPO policy (a cached stage shared with RLP-SPG).
3. Build view pairs: two *different* samples of the same instruction, v1 = (x, y1) and v2 = (x, y2).
4. Retrain the reward model with  L = BT loss on the preference split + lambda * L_M,  where L_M is the
   multi-view information bottleneck (:mod:`methods.mib`) on the reward model's final-layer representation.
5. Run a new PPO from the SFT model (not from the first PPO policy) against the refined reward model.

Choices where the paper is silent, each a :class:`UMLConfig` field: last-token pooling (``pooling``), instructions
whose samples are all the same text skipped (``identical_views``), the closed-form symmetric KL (``skl_estimator``).
Fixed choices, documented where they are made: one view pair per instruction, drawn at random among the pairs of
samples whose texts differ (:func:`build_view_pairs`), and one encoder shared by both views (:mod:`methods.mib`).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Iterator, NamedTuple, Sequence

import torch
from transformers import AutoConfig

from methods.base import TrainedPolicy
from methods.mib import ESTIMATORS, SKL_ESTIMATORS, MultiViewInformationBottleneck

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from harness.context import RunContext

POOLINGS = ("last", "mean")
IDENTICAL_VIEWS = ("skip", "keep")


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
    estimator: str = field(
        default="jsd",
        metadata={"help": "MI estimator: 'jsd' (Jensen-Shannon, the paper) or 'infonce' (the 'contrastive' ablation)."},
    )
    skl_estimator: str = field(
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
    pooling: str = field(
        default="last",
        metadata={
            "help": "How h(v) is read from the final layer: 'last' non-pad token (what a causal reward head reads) "
            "or 'mean' over non-pad tokens."
        },
    )
    identical_views: str = field(
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
        choices = {
            "estimator": ESTIMATORS,
            "skl_estimator": SKL_ESTIMATORS,
            "pooling": POOLINGS,
            "identical_views": IDENTICAL_VIEWS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"uml.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not self.weight > 0:
            raise ValueError(f"uml.weight must be > 0, got {self.weight}")
        if self.skl_weight < 0:
            raise ValueError(f"uml.skl_weight must be >= 0, got {self.skl_weight}")
        for name, minimum in (("latent_dim", 1), ("hidden_dim", 1), ("batch_size", 2), ("max_length", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"uml.{name} must be an integer >= {minimum}, got {value!r}")


class ViewPair(NamedTuple):
    """Two different policy samples for one instruction: the views v1 = (x, y1) and v2 = (x, y2)."""

    instruction: str
    output_1: str
    output_2: str


def build_view_pairs(
    instructions: Sequence[str], samples: Sequence[Sequence[str]], seed: int, identical_views: str = "skip"
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
    if identical_views not in IDENTICAL_VIEWS:
        raise ValueError(f"identical_views must be one of {IDENTICAL_VIEWS}, got {identical_views!r}")
    rng = random.Random(seed)
    pairs = []
    for instruction, outputs in zip(instructions, samples):
        distinct = [(a, b) for a, b in combinations(outputs, 2) if a.strip() != b.strip()]
        if distinct:
            pairs.append(ViewPair(instruction, *rng.choice(distinct)))
        elif identical_views == "keep" and len(outputs) >= 2:
            pairs.append(ViewPair(instruction, outputs[0], outputs[1]))
    return pairs


def epoch_batches(n_items: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless minibatches of indices: a fresh seeded shuffle each epoch, the last partial batch dropped.

    Dropping the remainder (rather than topping it up from the next epoch) keeps every index of a batch distinct,
    so an in-batch negative is never the positive itself. Needs ``batch_size <= n_items``.
    """
    rng = random.Random(seed)
    order = list(range(n_items))
    while True:
        rng.shuffle(order)
        for start in range(0, n_items - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reads one vector per sequence from (B, T, H) hidden states.

    "last" takes the last position whose mask is 1, which is right for left and right padding alike (and is what
    a causal sequence-classification head reads); "mean" averages the non-pad positions.

    Returns:
        (B, H) pooled representations.
    """
    if pooling == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask * positions).argmax(dim=1)  # (B,): the largest unmasked position
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def format_view(tokenizer: PreTrainedTokenizerBase, instruction: str, output: str) -> str:
    """The chat-formatted text of one view, as the reward model sees a (prompt, response) pair."""
    messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": output}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def pooled_representation(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], pooling: str, max_length: int
) -> torch.Tensor:
    """Runs the reward model's backbone on ``texts`` and pools its final layer (after the final norm).

    The backbone's last hidden state is exactly what the reward head reads, so the MIB shapes the features the
    reward is computed from. Gradients flow back into the backbone.

    Returns:
        (len(texts), hidden_size) float32 representations.
    """
    if tokenizer.pad_token is None:
        raise ValueError("the reward model's tokenizer needs a pad_token to batch views")
    device = next(model.parameters()).device
    # The chat template already holds the special tokens, so the tokenizer must not add them again.
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, add_special_tokens=False, return_tensors="pt"
    ).to(device)
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    return pool_hidden_states(hidden.last_hidden_state, batch["attention_mask"], pooling).float()  # (B, H)


class MultiViewAuxiliaryLoss:
    """The UML term of the reward-model objective, in the reward trainer's AuxiliaryLoss protocol.

    Each call takes the next minibatch of view pairs (:func:`epoch_batches`), encodes both views with the reward
    model's backbone in one forward pass and returns the MIB loss. The MIB heads start from a seeded initialisation and
    follow the reward model to its device on the first call (the Parameter objects stay the same, so the optimiser
    that holds them is unaffected).

    Args:
        pairs: the view pairs (at least two).
        config: the UML settings.
        in_dim: the reward model's hidden size.
        seed: seeds the heads' initialisation and the batch order.
    """

    def __init__(self, pairs: Sequence[ViewPair], config: UMLConfig, in_dim: int, seed: int = 0):
        if len(pairs) < 2:
            raise ValueError(f"RLP-UML needs at least 2 view pairs (negatives come from the batch), got {len(pairs)}")
        self.pairs = list(pairs)
        self.config = config
        self.in_dim = in_dim
        self.seed = seed
        self.weight = config.weight
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.mib = MultiViewInformationBottleneck(
                in_dim,
                latent_dim=config.latent_dim,
                hidden_dim=config.hidden_dim,
                estimator=config.estimator,
                skl_estimator=config.skl_estimator,
                skl_weight=config.skl_weight,
            )
        self._batches = epoch_batches(len(self.pairs), min(config.batch_size, len(self.pairs)), seed)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The MIB's encoder and critic parameters, for the reward trainer's optimiser."""
        return self.mib.parameters()

    def __call__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """L_M on the next minibatch of view pairs, computed through ``model`` so gradients reach its backbone.

        Returns:
            (loss, {"mib_loss", "mi", "skl"}): the unweighted L_M (the trainer multiplies by ``weight``) and its
            parts as floats for the training log.
        """
        batch = [self.pairs[i] for i in next(self._batches)]
        texts = [format_view(tokenizer, p.instruction, p.output_1) for p in batch]
        texts += [format_view(tokenizer, p.instruction, p.output_2) for p in batch]
        h = pooled_representation(model, tokenizer, texts, self.config.pooling, self.config.max_length)  # (2B, H)
        self.mib.to(h.device)
        loss, metrics = self.mib(h[: len(batch)], h[len(batch) :])
        return loss, {"mib_loss": loss.item(), **metrics}

    def cache_key(self) -> dict:
        """Everything that changes the retrained reward model: the pairs' content, the settings, the seed."""
        digest = hashlib.sha256(json.dumps(self.pairs, ensure_ascii=False).encode("utf-8")).hexdigest()
        return {
            "auxiliary": "rlp_uml",
            "pairs_sha256": digest,
            "n_pairs": len(self.pairs),
            "config": asdict(self.config),
            "in_dim": self.in_dim,
            "seed": self.seed,
        }


class RLPUML:
    """RLP-UML: refine the reward model on PPO-policy samples with the MIB loss, then run PPO again from SFT.

    Supported: any AutoModelForSequenceClassification reward model whose backbone sits at ``base_model_prefix``;
    the ``jsd``/``infonce`` estimators and ``skl_weight`` cover the paper's MVI and contrastive ablations.
    Assumed: the context's reward-model stage adds ``auxiliary.weight * auxiliary(model, tokenizer)`` to the
    Bradley-Terry loss at every step and optimises ``auxiliary.parameters()`` with the reward model.
    """

    name = "rlp_uml"

    def train(self, ctx: RunContext) -> TrainedPolicy:
        config: UMLConfig = ctx.config.uml
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
            diagnostics={
                "view_pairs": len(pairs),
                "instructions": len(instructions),
                "instructions_without_pair": len(instructions) - len(pairs),
            },
        )
