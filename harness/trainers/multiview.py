"""RLP-UML's term of the reward-model objective: the multi-view information bottleneck on policy samples.

Each view is one (instruction, policy sample) pair formatted as the reward model reads it; the loss
(:mod:`harness.trainers.mib`) runs on the reward model's own final-layer representation, so it shapes the features
the reward is computed from. The reward trainer adds it through its :class:`~harness.trainers.reward.AuxiliaryLoss`
hook.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

import torch

from harness.core.chat import conversation_text
from harness.trainers.mib import MultiViewInformationBottleneck

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class MultiViewSettings(Protocol):
    """The settings the loss reads (RLP-UML's ``uml`` section)."""

    weight: float
    skl_weight: float
    estimator: str
    skl_estimator: str
    latent_dim: int
    hidden_dim: int
    pooling: str
    batch_size: int
    max_length: int


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
    raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")


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
        pairs: the view pairs (instruction, output_1, output_2), at least two.
        config: the UML settings (:class:`methods.rlp_uml.UMLConfig`).
        in_dim: the reward model's hidden size.
        seed: seeds the heads' initialisation and the batch order.
    """

    def __init__(self, pairs: Sequence[tuple[str, str, str]], config: MultiViewSettings, in_dim: int, seed: int = 0):
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
        texts = [conversation_text(tokenizer, instruction, first) for instruction, first, _ in batch]
        texts += [conversation_text(tokenizer, instruction, second) for instruction, _, second in batch]
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
