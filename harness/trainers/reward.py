"""The Bradley-Terry reward model, with TRL's RewardTrainer, and the hook RLP-UML adds its loss through.

The reward model is an ``AutoModelForSequenceClassification`` with one output, initialised from the SFT model and
trained on preference pairs with -log sigmoid(r(x, y_w) - r(x, y_l)). RLP retrains it (paper step 5): SPG appends
synthetic pairs to the data; UML adds ``lambda * L_M`` through an :class:`AuxiliaryLoss`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, set_seed
from trl import RewardConfig as TRLRewardConfig
from trl import RewardTrainer

from harness.core.chat import assistant_turn, user_turn
from harness.core.types import Preference
from harness.trainers.config import RewardConfig
from harness.trainers.sft import epoch_arguments, label_progress, save_final


class AuxiliaryLoss(Protocol):
    """An extra loss trained jointly with the Bradley-Terry loss (RLP-UML's multi-view loss is one).

    The trainer adds :meth:`parameters` to its optimiser, calls the loss once per training step, adds
    ``weight * loss`` to the Bradley-Terry loss and logs the returned metrics.
    """

    weight: float

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def __call__(self, model: PreTrainedModel, tokenizer) -> tuple[torch.Tensor, dict[str, float]]: ...

    def cache_key(self) -> dict: ...


def preference_pairs(data: Dataset) -> Dataset:
    """Turns the preference schema (instruction, output_1, output_2, preference) into TRL's chosen/rejected.

    Ties carry no Bradley-Terry signal and are dropped.
    """
    decided = data.filter(lambda row: row["preference"] in (Preference.FIRST, Preference.SECOND))

    def to_chosen_rejected(row: dict) -> dict:
        first_wins = row["preference"] == Preference.FIRST
        chosen, rejected = (row["output_1"], row["output_2"]) if first_wins else (row["output_2"], row["output_1"])
        return {"prompt": user_turn(row["instruction"]), "chosen": assistant_turn(chosen),
                "rejected": assistant_turn(rejected)}

    return decided.map(to_chosen_rejected, remove_columns=decided.column_names)


class _RewardTrainerWithAuxiliary(RewardTrainer):
    """RewardTrainer whose loss is BT + weight * auxiliary; the auxiliary's parameters join the optimiser."""

    def __init__(self, *args, auxiliary: AuxiliaryLoss, **kwargs):
        self.auxiliary = auxiliary
        self.auxiliary_curve: list[dict[str, float]] = []
        super().__init__(*args, **kwargs)

    def create_optimizer(self, *args, **kwargs):
        optimizer = super().create_optimizer(*args, **kwargs)
        optimizer.add_param_group({"params": list(self.auxiliary.parameters()), "weight_decay": 0.0})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not model.training:
            return result
        bt_loss = result[0] if return_outputs else result
        # The auxiliary reaches into the backbone, which a DDP wrapper hides; its gradients still reach DDP's hooks.
        aux_loss, metrics = self.auxiliary(self.accelerator.unwrap_model(model), self.processing_class)
        loss = bt_loss + self.auxiliary.weight * aux_loss
        record = {"step": self.state.global_step, "bt_loss": bt_loss.item(), **metrics}
        self.auxiliary_curve.append(record)
        return (loss, result[1]) if return_outputs else loss


def train_reward_model(
    init_dir: Path,
    pairs: Dataset,
    cfg: RewardConfig,
    out_dir: Path,
    seed: int,
    auxiliary: AuxiliaryLoss | None = None,
) -> list[dict]:
    """Trains a reward model from ``init_dir`` (the SFT checkpoint) on ``pairs`` and saves it to ``out_dir``.

    Args:
        init_dir: HF checkpoint whose backbone the reward model starts from; a fresh scalar head is added.
        pairs: preference-schema rows (instruction, output_1, output_2, preference).
        auxiliary: optional extra loss (RLP-UML), weighted by its ``weight``.

    Returns:
        The auxiliary loss curve (one record per step: bt_loss and the auxiliary's metrics); empty without one.
    """
    # Seed before building the model: a freshly initialised head draws from the global RNG, whose state would
    # otherwise depend on what ran earlier in the process (and so differ between a fresh and a resumed run).
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(init_dir)
    model = AutoModelForSequenceClassification.from_pretrained(init_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    args = TRLRewardConfig(**epoch_arguments(cfg, "reward", seed, out_dir))
    common = dict(model=model, args=args, train_dataset=preference_pairs(pairs), processing_class=tokenizer)
    if auxiliary is None:
        trainer = RewardTrainer(**common)
    else:
        trainer = _RewardTrainerWithAuxiliary(**common, auxiliary=auxiliary)
    label_progress(trainer, "reward")
    trainer.train()
    save_final(trainer, tokenizer, out_dir)
    return getattr(trainer, "auxiliary_curve", [])
