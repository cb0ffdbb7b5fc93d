"""Supervised fine-tuning on the suite's demonstrations, with TRL's SFTTrainer.

The SFT model is the starting point of every other method and the reference policy of PPO's KL penalty.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import SFTConfig as TRLSFTConfig
from trl import SFTTrainer

from harness import jobs
from harness.core.chat import assistant_turn, user_turn
from harness.core.precision import trainer_precision
from harness.distributed import per_process_batch
from harness.trainers.config import SFTConfig
from harness.trainers.tracking import trainer_reporting

# The trainers' per-step dicts ({'loss': ...}); harness.logs sends them to run.log (and to stderr with --verbose).
log = logging.getLogger("harness.training")


def train_sft(base_dir: Path, demonstrations: Dataset, cfg: SFTConfig, out_dir: Path, seed: int) -> None:
    """Fine-tunes ``base_dir`` on ``demonstrations`` (instruction, output) and saves model + tokenizer to ``out_dir``.

    The loss covers the response tokens only (TRL's prompt-completion format), as AlpacaFarm's SFT does.
    """
    # Seed before building the model: a freshly initialised head draws from the global RNG, whose state would
    # otherwise depend on what ran earlier in the process (and so differ between a fresh and a resumed run).
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    data = demonstrations.map(
        lambda row: {"prompt": user_turn(row["instruction"]), "completion": assistant_turn(row["output"])},
        remove_columns=demonstrations.column_names,
    )
    args = TRLSFTConfig(**epoch_arguments(cfg, "sft", seed, out_dir, warmup_ratio=cfg.warmup_ratio))
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    label_progress(trainer, "sft")
    trainer.train()
    save_final(trainer, tokenizer, out_dir)


def epoch_arguments(cfg, section: str, seed: int, out_dir: Path, warmup_ratio: float = 0.03) -> dict:
    """TrainingArguments of a trainer that makes passes over a fixed dataset (SFT, reward model, DPO): the
    section's learning rate, epochs, batch (over all processes) and length, AlpacaFarm's cosine schedule with a
    linear warm-up over ``warmup_ratio`` of the steps, and :func:`trainer_defaults`.

    Args:
        cfg: the section's config, with ``learning_rate``, ``epochs``, ``batch_size`` and ``max_length``.
        section: its name in a preset, for the batch-size error message.
    """
    return dict(
        output_dir=str(out_dir / "trainer"),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=per_process_batch(cfg.batch_size, f"{section}.batch_size"),
        max_length=cfg.max_length,
        lr_scheduler_type="cosine",
        warmup_steps=warmup_ratio,  # a float in [0, 1) is a ratio of all steps in transformers 5
        seed=seed,
        **trainer_defaults(out_dir),
    )


def trainer_defaults(out_dir: Path) -> dict:
    """TrainingArguments shared by every TRL trainer here: no checkpoints, no hub, no checkpointing, the
    process's mixed precision (:func:`harness.core.precision.trainer_precision`: bf16 where the run asks for it,
    fp16 on a GPU only), and the run's tracker (:func:`harness.trainers.tracking.trainer_reporting`) for a stage
    built in ``out_dir``.

    TRL defaults bf16 and gradient checkpointing to True, which makes CPU training about 4x slower.
    """
    return dict(
        **trainer_precision(),
        gradient_checkpointing=False,
        save_strategy="no",
        **trainer_reporting(out_dir),
        logging_steps=10,
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


class LabelledProgress(TrainerCallback):
    """The trainer's progress bar, labelled with the stage it trains, and its logs sent to ``run.log``.

    It replaces transformers' ``ProgressCallback``, whose bar has no label and which prints every log dict
    (``{'loss': ...}``) on the console.
    """

    def __init__(self, label: str):
        self.label = label
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, **jobs.bar(self.label), unit="step", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            log.info("%s step %d: %s", self.label, state.global_step, json.dumps(logs, default=str))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def label_progress(trainer, label: str) -> None:
    """Swaps ``trainer``'s unlabelled progress bar and printed logs for :class:`LabelledProgress`."""
    from transformers.trainer_callback import ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LabelledProgress(label))


def save_final(trainer, tokenizer, out_dir: Path) -> None:
    """Saves the trained model and its tokenizer as a plain HF dir, dropping the trainer's scratch files.

    Every process calls it (DeepSpeed ZeRO-3 gathers the sharded weights to save them); only the main one writes.
    """
    trainer.save_model(str(out_dir))
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(str(out_dir))
    log_history = getattr(trainer.state, "log_history", [])
    (out_dir / "train_log.json").write_text(json.dumps(log_history, indent=1))
    scratch = out_dir / "trainer"
    if scratch.exists():
        shutil.rmtree(scratch)
