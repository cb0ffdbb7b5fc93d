"""DPO's trainer: TRL's DPOTrainer from a policy that is also its frozen reference (:mod:`methods.dpo`)."""

from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import DPOConfig as TRLDPOConfig
from trl import DPOTrainer

from harness.trainers.config import DPOConfig
from harness.trainers.reward import preference_pairs
from harness.trainers.sft import epoch_arguments, label_progress, save_final


def train_dpo(init_dir: Path, pairs: Dataset, cfg: DPOConfig, out_dir: Path, seed: int) -> None:
    """Trains a policy from ``init_dir`` (also the frozen reference) with DPO on ``pairs`` and saves it to ``out_dir``.

    Args:
        init_dir: the SFT checkpoint (causal LM + tokenizer with a chat template).
        pairs: preference-schema rows (instruction, output_1, output_2, preference); ties are dropped.
    """
    set_seed(seed)  # as SFT: the trainer's shuffling must not depend on what ran earlier in the process
    tokenizer = AutoTokenizer.from_pretrained(init_dir)
    model = AutoModelForCausalLM.from_pretrained(init_dir, dtype=torch.float32)
    args = TRLDPOConfig(beta=cfg.beta, **epoch_arguments(cfg, "dpo", seed, out_dir))
    trainer = DPOTrainer(model=model, args=args, train_dataset=preference_pairs(pairs), processing_class=tokenizer)
    label_progress(trainer, "dpo")
    trainer.train()
    save_final(trainer, tokenizer, out_dir)
