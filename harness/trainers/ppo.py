"""PPO for RLHF, the project's own, on accelerate (TRL removed its PPOTrainer in 1.13).

It follows AlpacaFarm's PPO (Dubois et al., 2023), which the RLP paper uses unchanged: a frozen reference copy of
the initial policy, a per-token KL penalty (InstructGPT's objective), the sequence score at the last token, a value
model initialised from the reward model, GAE with gamma = lambda = 1, whitened rewards and advantages, two PPO
epochs per rollout batch, and a fixed penalty for responses cut off before eos. The maths lives in
:mod:`harness.trainers.ppo_losses`; this file is the loop, readable top to bottom in :func:`train_ppo`.

Supported: any causal LM with a chat template as the policy, and any ``AutoModelForSequenceClassification``
(num_labels=1) whose backbone sits at ``model.<base_model_prefix>`` and whose head is ``model.score`` (LLaMA,
Mistral, Qwen, SmolLM, GPT-NeoX, ...) as the reward/value model. Runs on CPU, one GPU, or several through
``accelerate launch``; with several processes the rollout batch, the whitening and the optimiser steps are per
process (gradients are averaged by DDP), and the logged figures are averages over all processes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path
from statistics import fmean
from typing import Iterator, NamedTuple

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BatchEncoding,
    GenerationConfig,
)

from harness import jobs
from harness.core.chat import prompt_text
from harness.core.types import PPOCheckpoint, PPORun, ScoreScale
from harness.trainers.config import PPOConfig
from harness.trainers.ppo_losses import (
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gae,
    masked_mean,
    masked_whiten,
    penalise_truncated,
    per_token_kl,
    shape_rewards,
)
from harness.trainers.scoring import RewardModelScorer, Scorer
from harness.trainers.tracking import accelerator_reporting, tracker_init

RUN_FILE = "ppo_run.json"


class ValueModel(torch.nn.Module):
    """Per-token values: a reward model's backbone and ``score`` head applied at every position.

    Initialising the value model from the reward model (AlpacaFarm's choice) starts it from features that already
    predict the score. Wrapping the two parts in one module lets accelerate prepare it like any model.
    """

    def __init__(self, reward_model: torch.nn.Module):
        super().__init__()
        if not isinstance(getattr(reward_model, "score", None), torch.nn.Linear):
            raise ValueError(f"the reward model ({type(reward_model).__name__}) has no `score` linear head; "
                             "a value model needs an AutoModelForSequenceClassification with one")
        self.backbone = getattr(reward_model, reward_model.base_model_prefix)
        self.head = reward_model.score

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=_position_ids(attention_mask)
        ).last_hidden_state  # (B, L, H)
        return self.head(hidden).squeeze(-1).float()  # (B, L)


class Rollout(NamedTuple):
    """One PPO step's experience; every tensor has the rollout batch as its first dimension."""

    sequences: torch.Tensor  # (B, P + R) left-padded prompt then response token ids
    attention_mask: torch.Tensor  # (B, P + R) 1 on real prompt tokens and on the response up to its eos
    response_mask: torch.Tensor  # (B, R) the response part of attention_mask
    logprobs: torch.Tensor  # (B, R) log pi_old of each response token
    values: torch.Tensor  # (B, R) V_old before each response token
    advantages: torch.Tensor  # (B, R) whitened GAE advantages
    returns: torch.Tensor  # (B, R) value targets

    def select(self, index: torch.Tensor) -> Rollout:
        return Rollout(*(t[index] for t in self))


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, as ``generate`` does, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _response_logprobs(
    policy: torch.nn.Module, sequences: torch.Tensor, attention_mask: torch.Tensor, response_len: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and entropies of the sampling distribution at each response token, each ``(B, R)``."""
    logits = policy(
        input_ids=sequences, attention_mask=attention_mask, position_ids=_position_ids(attention_mask)
    ).logits  # (B, P + R, V)
    # the logits at position t predict token t + 1, so the response is predicted from P - 1 to P + R - 2
    logits = logits[:, -response_len - 1 : -1].float() / temperature  # (B, R, V)
    logprobs = torch.log_softmax(logits, dim=-1)
    tokens = sequences[:, -response_len:].unsqueeze(-1)  # (B, R, 1)
    return logprobs.gather(-1, tokens).squeeze(-1), entropy_from_logits(logits)


def _response_values(value_model: torch.nn.Module, sequences: torch.Tensor, attention_mask: torch.Tensor,
                     response_len: int) -> torch.Tensor:
    """Value before each response token (the state that token is sampled from), ``(B, R)``."""
    return value_model(sequences, attention_mask)[:, -response_len - 1 : -1]


def _response_mask(responses: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 on each response token up to and including the first eos, 0 after it (``generate`` pads there)."""
    is_eos = (responses == eos_token_id).long()  # (B, R)
    eos_before = is_eos.cumsum(-1) - is_eos
    return (eos_before == 0).long()


class Sampled(NamedTuple):
    """A batch of sampled responses to prompts formatted as the first user turn."""

    prompts: BatchEncoding  # (B, P) left-padded prompt ids and attention mask
    responses: torch.Tensor  # (B, R) response token ids, padded after eos to the longest response
    response_mask: torch.Tensor  # (B, R) 1 up to and including each response's eos
    texts: list[str]  # the decoded responses, without special tokens
    ended: torch.Tensor  # (B,) bool, whether each response ended with eos


def _sample(policy: torch.nn.Module, tokenizer, prompts: list[str], sampling: GenerationConfig,
            device: torch.device) -> Sampled:
    """One response per prompt; left padding so that every response starts at the same column."""
    chats = [prompt_text(tokenizer, p) for p in prompts]
    encoded = tokenizer(chats, padding=True, padding_side="left", add_special_tokens=False,
                        return_tensors="pt").to(device)
    responses = policy.generate(**encoded, generation_config=sampling)[:, encoded.input_ids.shape[1]:]
    response_mask = _response_mask(responses, sampling.eos_token_id)
    texts = tokenizer.batch_decode(
        [r[:n] for r, n in zip(responses, response_mask.sum(-1).tolist())], skip_special_tokens=True
    )
    return Sampled(encoded, responses, response_mask, texts, (responses == sampling.eos_token_id).any(-1))


@torch.no_grad()
def _initial_score_scale(accelerator: Accelerator, policy: torch.nn.Module, tokenizer, scorer: Scorer,
                         prompts: list[str], sampling: GenerationConfig, cfg: PPOConfig,
                         prompt_order: torch.Generator) -> ScoreScale:
    """Mean and standard deviation of the scorer on ``cfg.reward_normalization_samples`` responses of the initial
    policy (over all processes) to the prompts of PPO's first steps (Ziegler et al., 2019, section 2.2). Cut-off
    responses count too: the scale is the reward model's, whatever PPO then does with them (truncation_rule).
    """
    order = _prompt_batches(len(prompts), cfg.rollout_batch_size, prompt_order)
    scores: list[torch.Tensor] = []
    with accelerator.autocast():
        for _ in range(-(-cfg.reward_normalization_samples // cfg.rollout_batch_size)):
            batch_prompts = [prompts[i] for i in next(order).tolist()]
            sampled = _sample(accelerator.unwrap_model(policy), tokenizer, batch_prompts, sampling, accelerator.device)
            scores.append(scorer.score(batch_prompts, sampled.texts).to(accelerator.device).float())
    pooled = accelerator.gather(torch.cat(scores))
    if len(pooled) < 2 or pooled.std() == 0:
        raise ValueError(f"reward_normalization_samples: the reward model gives all {len(pooled)} samples of the "
                         "initial policy one score, so there is no spread to standardise by; raise it or set 0")
    return ScoreScale(mean=pooled.mean().item(), std=pooled.std().item())


def _prompt_batches(num_prompts: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless prompt indices: shuffled passes over all prompts, cut into batches (a batch may span two passes)."""
    pending = torch.zeros(0, dtype=torch.long)
    while True:
        while len(pending) < batch_size:
            pending = torch.cat([pending, torch.randperm(num_prompts, generator=generator)])
        yield pending[:batch_size]
        pending = pending[batch_size:]


def train_ppo(
    policy_dir: Path | str,
    reward_model_dir: Path | str,
    prompts: list[str],
    cfg: PPOConfig,
    out_dir: Path | str,
    seed: int,
    *,
    scorer: Scorer | None = None,
    show_progress: bool = True,
) -> PPORun:
    """Trains a policy with PPO against a reward model and saves it with its checkpoints and history.

    Args:
        policy_dir: HF checkpoint (causal LM + tokenizer with a chat template and an eos token) to start from;
            it is also the frozen KL reference.
        reward_model_dir: Sequence-classification reward model; it scores responses (unless ``scorer`` is
            given) and initialises the value model.
        prompts: Instructions to sample rollout batches from (user turns, without the chat template).
        cfg: Hyper-parameters.
        out_dir: Where ``policy/``, ``checkpoints/step-NNNN/`` and ``ppo_run.json`` are written.
        seed: Seeds prompt sampling, generation and minibatch shuffling.
        scorer: Replaces the reward model as the source of scores (tests use a known reward).
        show_progress: Show a progress bar with the proxy reward and KL.

    Returns:
        The run as :func:`load_ppo_run` reads it back from ``out_dir``.

    Raises:
        ValueError: If ``prompts`` is empty or the tokenizer has no eos token.
    """
    if not prompts:
        raise ValueError("prompts must not be empty")
    out_dir = Path(out_dir)
    accelerator = Accelerator(**accelerator_reporting())  # the run's tracker (--report-to), if any
    if accelerator.log_with:
        accelerator.init_trackers(**tracker_init(out_dir), config=asdict(cfg))
    device = accelerator.device
    set_seed(seed, device_specific=True)
    prompt_order = torch.Generator().manual_seed(seed + accelerator.process_index)

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {policy_dir} has no eos token; PPO needs one to end responses")
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    # Every sampling knob is set so that nothing in the checkpoint's generation_config (top_k=50 by default,
    # repetition penalties, ...) reshapes the distribution: PPO's ratio assumes samples from softmax(logits / T).
    sampling = GenerationConfig(
        do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0, typical_p=1.0, repetition_penalty=1.0,
        no_repeat_ngram_size=0, max_new_tokens=cfg.max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id,
        use_cache=True,
    )

    # Models: the policy and the value model train; the reference and the scorer stay frozen. Dropout is off
    # throughout (eval mode), so that before the first update the PPO ratio is exactly 1.
    policy = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    reference = copy.deepcopy(policy).requires_grad_(False).to(device)
    value_model = ValueModel(AutoModelForSequenceClassification.from_pretrained(reward_model_dir)).eval()
    scorer = scorer if scorer is not None else RewardModelScorer(reward_model_dir, device=device)
    # AdamW without weight decay, as AlpacaFarm (the HF Trainer default), and fused, as the HF Trainer steps it:
    # torch's default on the CPU is a loop over tensors, which made PPO on the tiny preset 7% slower.
    adamw = dict(lr=cfg.learning_rate, weight_decay=0.0, fused=device.type in ("cpu", "cuda"))
    policy_opt = torch.optim.AdamW(policy.parameters(), **adamw)
    value_opt = torch.optim.AdamW(value_model.parameters(), **adamw)
    policy, value_model, policy_opt, value_opt = accelerator.prepare(policy, value_model, policy_opt, value_opt)

    def across_processes(x: torch.Tensor | float) -> float:
        return accelerator.gather(torch.as_tensor(x, dtype=torch.float32, device=device).reshape(1)).mean().item()

    # 0. Standardise the reward model's scores by those of the initial policy (reward_normalization_samples), so
    #    that kl_coef means the same against any reward model; sampled on a forked random state, so that the
    #    rollouts below are those of a run without it.
    scale = ScoreScale()
    if cfg.reward_normalization_samples:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            first_steps = torch.Generator().set_state(prompt_order.get_state())  # a copy: PPO's own stays put
            scale = _initial_score_scale(accelerator, policy, tokenizer, scorer, prompts, sampling, cfg, first_steps)

    history: list[dict] = []
    checkpoints: list[dict] = []
    batches = _prompt_batches(len(prompts), cfg.rollout_batch_size, prompt_order)
    progress = tqdm(range(1, cfg.num_steps + 1), **jobs.bar("ppo"),
                    disable=not (show_progress and accelerator.is_local_main_process))
    for step in progress:
        # 1. Sample prompts.
        batch_prompts = [prompts[i] for i in next(batches).tolist()]

        # autocast (a no-op unless mixed precision is configured) so the unprepared reference and scorer run at
        # the same precision as the prepared policy, keeping the first step's KL at zero
        with torch.no_grad(), accelerator.autocast():
            # 2. Generate. Finished rows are padded to the longest response in the batch.
            sampled = _sample(accelerator.unwrap_model(policy), tokenizer, batch_prompts, sampling, device)
            responses, response_mask = sampled.responses, sampled.response_mask  # (B, R) each
            response_len = responses.shape[1]  # R
            sequences = torch.cat([sampled.prompts.input_ids, responses], dim=1)  # (B, P + R)
            attention_mask = torch.cat([sampled.prompts.attention_mask, response_mask], dim=1)  # (B, P + R)

            # 3. Score: the scorer on the decoded text, standardised by the initial policy's scores (step 0), and a
            #    response without eos penalised (truncation_rule).
            lengths = response_mask.sum(-1)  # (B,)
            raw_scores = scorer.score(batch_prompts, sampled.texts).to(device).float()  # (B,)
            scores = penalise_truncated(
                (raw_scores - scale.mean) / scale.std, sampled.ended, cfg.truncation_penalty, cfg.truncation_rule
            )

            # 4. Log-probabilities under the policy and the reference, values, KL-shaped rewards. The forward
            #    passes go in minibatch-sized chunks to bound the (chunk, P + R, vocab) logits in memory.
            chunks = [
                (sequences[i : i + cfg.minibatch_size], attention_mask[i : i + cfg.minibatch_size])
                for i in range(0, len(sequences), cfg.minibatch_size)
            ]
            policy_out = [_response_logprobs(policy, s, m, response_len, cfg.temperature) for s, m in chunks]
            logprobs = torch.cat([lp for lp, _ in policy_out])  # (B, R)
            entropy = torch.cat([e for _, e in policy_out])  # (B, R)
            ref_logprobs = torch.cat(
                [_response_logprobs(reference, s, m, response_len, cfg.temperature)[0] for s, m in chunks]
            )  # (B, R)
            values = torch.cat([_response_values(value_model, s, m, response_len) for s, m in chunks])  # (B, R)
            kl = per_token_kl(logprobs, ref_logprobs) * response_mask  # (B, R)
            rewards = shape_rewards(scores, kl, response_mask, cfg.kl_coef)  # (B, R)

            # 5. Advantages and returns by GAE; advantages whitened over the batch's real tokens.
            if cfg.whiten_rewards:
                rewards = masked_whiten(rewards, response_mask, shift_mean=False)
            advantages, returns = gae(rewards, values, response_mask, cfg.gamma, cfg.lam)
            advantages = masked_whiten(advantages, response_mask)
            rollout = Rollout(sequences, attention_mask, response_mask, logprobs, values, advantages, returns)

        # 6. Optimise: ppo_epochs passes over shuffled minibatches, both models stepping on the joint loss.
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clipfrac": []}
        for _ in range(cfg.ppo_epochs):
            for index in torch.randperm(cfg.rollout_batch_size, device=device).split(cfg.minibatch_size):
                mb = rollout.select(index)
                new_logprobs, _ = _response_logprobs(
                    policy, mb.sequences, mb.attention_mask, response_len, cfg.temperature
                )
                new_values = _response_values(value_model, mb.sequences, mb.attention_mask, response_len)
                policy_loss, clipfrac = clipped_policy_loss(
                    new_logprobs, mb.logprobs, mb.advantages, mb.response_mask, cfg.clip_range
                )
                value_loss = clipped_value_loss(
                    new_values, mb.values, mb.returns, mb.response_mask, cfg.value_clip_range
                )
                accelerator.backward(policy_loss + cfg.vf_coef * value_loss)
                accelerator.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                accelerator.clip_grad_norm_(value_model.parameters(), cfg.max_grad_norm)
                policy_opt.step()
                value_opt.step()
                policy_opt.zero_grad()
                value_opt.zero_grad()
                stats["policy_loss"].append(policy_loss.item())
                stats["value_loss"].append(value_loss.item())
                stats["clipfrac"].append(clipfrac.item())

        # 7. Log (averaged over processes) and save a checkpoint every save_every steps.
        record = {
            "step": step,
            "proxy_reward": across_processes(scores.mean() * scale.std + scale.mean),  # in the scorer's units
            "kl": across_processes(kl.sum(-1).mean()),
            "policy_loss": across_processes(fmean(stats["policy_loss"])),
            "value_loss": across_processes(fmean(stats["value_loss"])),
            "clipfrac": across_processes(fmean(stats["clipfrac"])),
            "response_length": across_processes(lengths.float().mean()),
            "truncated": across_processes((~sampled.ended).float().mean()),
            "entropy": across_processes(masked_mean(entropy, response_mask)),
        }
        history.append(record)
        accelerator.log({f"ppo/{key}": value for key, value in record.items() if key != "step"}, step=step)
        progress.set_postfix(reward=f"{record['proxy_reward']:.3f}", kl=f"{record['kl']:.3f}")
        if step % cfg.save_every == 0:
            path = f"checkpoints/step-{step:04d}"
            _save_policy(accelerator, policy, tokenizer, out_dir / path)
            checkpoints.append({"step": step, "path": path, "proxy_reward": record["proxy_reward"],
                                "kl": record["kl"]})

    _save_policy(accelerator, policy, tokenizer, out_dir / "policy")
    if accelerator.is_main_process:
        run = {"policy": "policy", "reward_model": str(reward_model_dir), "checkpoints": checkpoints,
               "history": history, "seed": seed, "config": asdict(cfg),
               "score_scale": scale._asdict() if cfg.reward_normalization_samples else None}
        (out_dir / RUN_FILE).write_text(json.dumps(run, indent=2))
    for tracker in accelerator.trackers:  # not end_training(): that also ends the process group later stages use
        tracker.finish()
    accelerator.wait_for_everyone()
    return load_ppo_run(out_dir)


def _save_policy(accelerator: Accelerator, policy: torch.nn.Module, tokenizer, path: Path) -> None:
    """Saves a plain HF checkpoint (model + tokenizer) from the main process only."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(policy).save_pretrained(path)
        tokenizer.save_pretrained(path)


def load_ppo_run(stage_dir: Path | str) -> PPORun:
    """Reads the ``ppo_run.json`` that :func:`train_ppo` wrote, resolving its relative paths against ``stage_dir``.

    The paths are stored relative so that a stage written into a temporary directory stays valid after the
    caller renames it.
    """
    stage_dir = Path(stage_dir)
    run = json.loads((stage_dir / RUN_FILE).read_text())
    return PPORun(
        policy=stage_dir / run["policy"],
        reward_model=Path(run["reward_model"]),
        checkpoints=tuple(
            PPOCheckpoint(step=c["step"], path=stage_dir / c["path"], proxy_reward=c["proxy_reward"], kl=c["kl"])
            for c in run["checkpoints"]
        ),
        history=tuple(run["history"]),
        score_scale=ScoreScale(**run["score_scale"]) if run.get("score_scale") else None,
    )
