"""Reward-model scores of (instruction, response) pairs: the reward PPO maximises and every proxy-reward figure."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from harness.core.chat import conversation_text
from harness.core.precision import mixed_precision


class Scorer(Protocol):
    """Gives each (prompt, response) pair one scalar score: the reward PPO maximises."""

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """Returns a float tensor of shape ``(len(responses),)``."""
        ...


class RewardModelScorer:
    """Scores responses with a sequence-classification reward model (num_labels=1).

    The conversation [user: prompt, assistant: response] is formatted with the reward model's own chat template,
    the same way the policy sees its prompts, and the template alone adds special tokens (as TRL's RewardTrainer
    tokenises conversations, so scores match training). ``path`` is the reward model's directory. Scores are
    computed in bf16 autocast when the run trains in bf16 (:mod:`harness.core.precision`), as the model was trained.
    """

    def __init__(self, reward_model_dir: Path | str, device: torch.device | str = "cpu", batch_size: int = 32):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.path = Path(reward_model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(reward_model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(reward_model_dir).to(device).eval()
        if self.model.config.pad_token_id is None:  # needed to find each row's last token in a padded batch
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"prompts and responses must have the same length, got {len(prompts)} and "
                             f"{len(responses)}")
        texts = [conversation_text(self.tokenizer, p, r) for p, r in zip(prompts, responses)]
        scores = []
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=mixed_precision() == "bf16"):
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size], padding=True, padding_side="right",
                    add_special_tokens=False, return_tensors="pt",
                ).to(self.device)
                scores.append(self.model(**batch).logits[:, 0].float().cpu())
        return torch.cat(scores) if scores else torch.zeros(0)
