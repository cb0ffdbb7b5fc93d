"""GRPO's trainer: TRL's GRPOTrainer against a reward model, checkpointed as PPO is (:mod:`methods.grpo`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import GRPOConfig as TRLGRPOConfig
from trl import GRPOTrainer

from harness.core.chat import user_turn
from harness.core.types import PPORun
from harness.distributed import per_process_batch
from harness.trainers.config import GRPOConfig
from harness.trainers.ppo import RUN_FILE, load_ppo_run
from harness.trainers.ppo_losses import penalise_truncated
from harness.trainers.scoring import RewardModelScorer, Scorer
from harness.trainers.sft import label_progress, save_final, trainer_defaults


class RewardModelReward:
    """TRL's reward-function protocol over a :class:`~harness.trainers.scoring.Scorer`: one score per (prompt, completion).

    TRL passes conversational prompts (``[{"role": "user", ...}]``) and completions (``[{"role": "assistant",
    ...}]``) and the completions' token ids; the scorer sees the user turn and the response text, as in PPO, and a
    response without eos is penalised as PPO penalises it (:func:`~harness.trainers.ppo_losses.penalise_truncated`).
    """

    __name__ = "reward_model"  # the name TRL logs the reward under

    def __init__(self, scorer: Scorer, eos_token_id: int, truncation_penalty: float, truncation_rule: str = "replace"):
        self.scorer = scorer
        self.eos_token_id = eos_token_id
        self.truncation_penalty = truncation_penalty
        self.truncation_rule = truncation_rule

    def __call__(self, prompts: list[list[dict]], completions: list[list[dict]], completion_ids: list[list[int]],
                 **kwargs) -> list[float]:
        scores = self.scorer.score([p[-1]["content"] for p in prompts], [c[-1]["content"] for c in completions])
        ended = torch.tensor([self.eos_token_id in ids for ids in completion_ids], dtype=torch.bool)
        if len(ended) != len(scores):
            raise ValueError(f"{len(scores)} scores for {len(ended)} completions")
        return penalise_truncated(scores.float(), ended, self.truncation_penalty, self.truncation_rule).tolist()


class CheckpointRecorder(TrainerCallback):
    """Records each step's proxy reward and KL from TRL's logs and saves a checkpoint every ``save_every`` steps.

    TRL logs the step's mean reward and per-token KL (``logging_steps=1``); KL is turned into PPO's per-sequence
    figure by the step's mean response length.
    """

    def __init__(self, out_dir: Path, save_every: int):
        self.out_dir = out_dir
        self.save_every = save_every
        self.history: list[dict] = []
        self.checkpoints: list[dict] = []

    def on_log(self, args, state, control, logs=None, model=None, processing_class=None, **kwargs):
        if not logs or "reward" not in logs:  # the end-of-training summary has no step figures
            return
        length = logs.get("completions/mean_length") or 0.0
        record = {"step": state.global_step, "proxy_reward": logs["reward"],
                  "kl": (logs.get("kl") or 0.0) * length, "kl_per_token": logs.get("kl"),
                  "response_length": length, "truncated": logs.get("completions/clipped_ratio"),
                  "entropy": logs.get("entropy")}
        self.history.append(record)
        if state.global_step % self.save_every == 0:
            path = f"checkpoints/step-{state.global_step:04d}"
            if state.is_world_process_zero:
                model.save_pretrained(self.out_dir / path)
                processing_class.save_pretrained(self.out_dir / path)
            self.checkpoints.append({"step": state.global_step, "path": path, "proxy_reward": record["proxy_reward"],
                                     "kl": record["kl"]})


def train_grpo(policy_dir: Path, reward_model_dir: Path, prompts: list[str], cfg: GRPOConfig, out_dir: Path,
               seed: int, scorer: Scorer | None = None) -> PPORun:
    """Trains a policy with GRPO against a reward model; saves ``policy/``, checkpoints and ``ppo_run.json``.

    Args:
        policy_dir: the SFT checkpoint to start from, also the KL reference.
        reward_model_dir: the reward model that scores the samples (unless ``scorer`` is given).
        prompts: instructions to sample from (user turns, without the chat template).
        scorer: replaces the reward model (tests use a known reward).

    Returns:
        The run as :func:`harness.trainers.ppo.load_ppo_run` reads it back from ``out_dir``.
    """
    if not prompts:
        raise ValueError("prompts must not be empty")
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    scorer = scorer if scorer is not None else RewardModelScorer(reward_model_dir, device=PartialState().device)
    batch = per_process_batch(cfg.prompts_per_step * cfg.num_generations, "grpo.prompts_per_step")
    args = TRLGRPOConfig(
        output_dir=str(out_dir / "policy" / "trainer"),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        max_steps=cfg.num_steps,
        per_device_train_batch_size=batch,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        beta=cfg.beta,
        disable_dropout=True,  # as PPO: the ratio is exactly 1 before the first update
        seed=seed,
        **{**trainer_defaults(out_dir), "logging_steps": 1},  # every step's reward and KL, for the checkpoints
    )
    recorder = CheckpointRecorder(out_dir, cfg.save_every)
    trainer = GRPOTrainer(
        model=model, reward_funcs=RewardModelReward(scorer, tokenizer.eos_token_id, cfg.truncation_penalty,
                                                              cfg.truncation_rule),
        args=args, train_dataset=Dataset.from_dict({"prompt": [user_turn(p) for p in prompts]}),
        processing_class=tokenizer, callbacks=[recorder],
    )
    label_progress(trainer, "grpo")
    trainer.train()
    save_final(trainer, tokenizer, out_dir / "policy")
    if trainer.is_world_process_zero():
        run = {"policy": "policy", "reward_model": str(reward_model_dir), "checkpoints": recorder.checkpoints,
               "history": recorder.history, "seed": seed, "config": dataclasses.asdict(cfg)}
        (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2))
    trainer.accelerator.wait_for_everyone()
    return load_ppo_run(out_dir)
