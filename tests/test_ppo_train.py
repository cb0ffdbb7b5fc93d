"""End-to-end PPO on a tiny random LLaMA: the reward must rise, and the run must be saved and reloadable."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

from harness.core.types import PPORun
from harness.trainers.config import PPOConfig
from harness.trainers.ppo import (
    _response_logprobs,
    _response_mask,
    load_ppo_run,
    train_ppo,
)
from harness.trainers.scoring import RewardModelScorer
from methods.ppo import PPO


# A cut-off response scores the lowest raw score (0) or, standardised, about the lowest (the initial policy's
# scores have mean 0.13 and standard deviation 0.28: -0.46 sits at a raw 0).
@pytest.mark.parametrize(("normalization_samples", "truncation_penalty"), [(0, 0.0), (48, -0.46)],
                         ids=["raw", "standardised"])
def test_ppo_raises_a_known_reward_and_saves_the_run(models_dir, tmp_path, word_prompts, yes_scorer,
                                                     normalization_samples, truncation_penalty):
    cfg = PPOConfig(
        rollout_batch_size=16, minibatch_size=8, max_new_tokens=6, num_steps=30, learning_rate=3e-3,
        kl_coef=0.02, truncation_penalty=truncation_penalty, save_every=10,
        reward_normalization_samples=normalization_samples,
    )
    start = time.perf_counter()
    run = train_ppo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path / "stage", seed=0,
                    scorer=yes_scorer, show_progress=False)
    seconds = time.perf_counter() - start
    rewards = [r["proxy_reward"] for r in run.history]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    print(f"\nPPO {cfg.num_steps} steps in {seconds:.1f} s ({seconds / cfg.num_steps:.2f} s/step); "
          f"reward first 5 steps {first:.3f}, last 5 {last:.3f}; final KL {run.history[-1]['kl']:.3f}")
    # before the first update the policy is its reference: the KL of the first rollout is exactly 0
    assert abs(run.history[0]["kl"]) < 1e-5
    # a random policy says "yes" about 1 word in 17 and is often cut off (score 0): ~0.01 at the start
    assert last > first + 0.3
    assert sum(r["kl"] for r in run.history[-5:]) / 5 > 0.05  # it moved away from the reference
    assert all(0.0 <= r["clipfrac"] <= 1.0 and r["response_length"] > 0 for r in run.history)

    # checkpoints every 10 steps, the final policy, and a json with paths relative to the stage dir
    assert [c.step for c in run.checkpoints] == [10, 20, 30]
    for path in [c.path for c in run.checkpoints] + [run.policy]:
        assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    saved = json.loads((tmp_path / "stage" / "ppo_run.json").read_text())
    assert saved["policy"] == "policy" and saved["checkpoints"][0]["path"] == "checkpoints/step-0010"

    # the stage survives a rename, which is what the stage cache does after writing into a temporary dir
    moved = (tmp_path / "stage").rename(tmp_path / "final")
    reloaded = load_ppo_run(moved)
    assert reloaded.policy == moved / "policy" and reloaded.checkpoints[-1].path == moved / "checkpoints/step-0030"
    assert reloaded.history == run.history and reloaded.checkpoints[1].proxy_reward == rewards[19]


def test_kl_penalty_keeps_the_policy_near_its_reference(models_dir, tmp_path, word_prompts, yes_scorer):
    def late_kl(kl_coef: float) -> float:
        cfg = PPOConfig(rollout_batch_size=16, minibatch_size=8, max_new_tokens=6, num_steps=15, learning_rate=3e-3,
                        kl_coef=kl_coef, truncation_penalty=0.0, save_every=15)
        run = train_ppo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path / str(kl_coef), seed=0,
                        scorer=yes_scorer, show_progress=False)
        return sum(r["kl"] for r in run.history[-5:]) / 5

    free, penalised = late_kl(0.0), late_kl(0.3)
    print(f"\nmean KL of the last 5 of 15 steps: kl_coef 0 -> {free:.3f}, kl_coef 0.3 -> {penalised:.3f}")
    assert penalised < 0.5 * free


class ZeroScorer:
    """Scores every response 0, so a rollout's mean score is the truncation penalty times the share cut off."""

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.zeros(len(responses))



class AffineScorer:
    """Another reward model's view of the same preferences: ``scale * score + shift`` of a known scorer."""

    def __init__(self, scorer, scale: float, shift: float):
        self.scorer, self.scale, self.shift = scorer, scale, shift

    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return self.scale * self.scorer.score(prompts, responses) + self.shift


def test_normalised_rewards_make_ppo_blind_to_the_reward_models_scale(models_dir, tmp_path, word_prompts,
                                                                       yes_scorer):
    """Two reward models that rank alike but put scores 5x as far apart train the same policy once normalised
    (Ziegler et al., 2019); unnormalised, the wider one weighs 5x more against the KL penalty."""

    def kls_and_scale(scorer, samples: int, name: str) -> tuple[list[float], dict]:
        cfg = PPOConfig(rollout_batch_size=16, minibatch_size=8, max_new_tokens=6, num_steps=10, learning_rate=3e-3,
                        kl_coef=1.0, truncation_penalty=-1.0, save_every=10, reward_normalization_samples=samples)
        run = train_ppo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path / name, seed=0,
                        scorer=scorer, show_progress=False)
        return [r["kl"] for r in run.history], json.loads((tmp_path / name / "ppo_run.json").read_text())

    wide = AffineScorer(yes_scorer, scale=5.0, shift=3.0)
    narrow_kl, narrow = kls_and_scale(yes_scorer, 48, "narrow")
    wide_kl, wide_run = kls_and_scale(wide, 48, "wide")
    raw_narrow_kl, raw = kls_and_scale(yes_scorer, 0, "raw-narrow")
    raw_wide_kl, _ = kls_and_scale(wide, 0, "raw-wide")
    print(f"\nfinal KL normalised {narrow_kl[-1]:.4f} / {wide_kl[-1]:.4f}, raw {raw_narrow_kl[-1]:.4f} / "
          f"{raw_wide_kl[-1]:.4f}; scale {narrow['score_scale']} / {wide_run['score_scale']}")

    # the initial policy's scores, measured once: the wide scorer's are the narrow one's, moved and stretched
    assert narrow["score_scale"]["std"] > 0 and raw["score_scale"] is None
    assert wide_run["score_scale"]["std"] == pytest.approx(5.0 * narrow["score_scale"]["std"], rel=1e-5)
    assert wide_run["score_scale"]["mean"] == pytest.approx(5.0 * narrow["score_scale"]["mean"] + 3.0, rel=1e-5)
    assert load_ppo_run(tmp_path / "wide").score_scale._asdict() == wide_run["score_scale"]
    # normalised, the two runs are the same run; the proxy reward is still logged in each scorer's own units
    assert wide_kl == pytest.approx(narrow_kl, rel=1e-4, abs=1e-6)
    assert [r["proxy_reward"] for r in wide_run["history"]] == pytest.approx(
        [5.0 * r["proxy_reward"] + 3.0 for r in narrow["history"]], rel=1e-4, abs=1e-5)
    # normalising does not change the rollouts' random draws: its first step is the raw run's first step
    assert raw["history"][0]["response_length"] == narrow["history"][0]["response_length"]
    # raw, the policy moves further from its reference against the wide scorer
    assert raw_wide_kl[-1] > 1.5 * raw_narrow_kl[-1]

@pytest.mark.parametrize("max_new_tokens", [1, 8])
def test_ppo_logs_the_share_of_rollouts_cut_off_before_eos(models_dir, tmp_path, word_prompts, max_new_tokens):
    """The collapse check a report reads: ``truncated`` is the share of each step's rollouts that got the penalty."""
    cfg = PPOConfig(rollout_batch_size=16, minibatch_size=8, max_new_tokens=max_new_tokens, num_steps=3,
                    learning_rate=1e-3, truncation_penalty=-7.0, save_every=3)
    run = train_ppo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path, seed=0,
                    scorer=ZeroScorer(), show_progress=False)
    for record in run.history:
        assert 0.0 <= record["truncated"] <= 1.0
        # every score is 0 except the penalty of the cut-off rollouts: mean score = -7 x share cut off
        assert record["proxy_reward"] == pytest.approx(-7.0 * record["truncated"], abs=1e-5)
    shares = [r["truncated"] for r in run.history]
    print(f"\nshare cut off at {max_new_tokens} new tokens: {shares}")
    if max_new_tokens == 1:  # a random policy's first token is eos about 1 time in the vocabulary's size
        assert min(shares) > 0.5
    else:
        assert min(shares) < 1.0 and run.history[0]["response_length"] > 1


def test_response_mask_keeps_the_first_eos_and_drops_the_rest():
    eos = 1
    responses = torch.tensor([[5, 1, 0, 0], [5, 6, 7, 8], [1, 1, 1, 1]])
    # row 0 ends at its eos (index 1), then generate's pads (0); row 1 never ends (truncated, all 4 count);
    # row 2 says eos at once and is then padded with eos itself (a tokenizer whose pad is its eos)
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert torch.equal(_response_mask(responses, eos), expected)


def test_rollout_logprobs_match_generation_under_left_padding(models_dir):
    """The log-probabilities PPO recomputes must be those the samples were drawn from, prompt padding or not."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models_dir / "policy")
    policy = AutoModelForCausalLM.from_pretrained(models_dir / "policy").eval()
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                           tokenize=False) for p in ("say yes", "please say yes now the cat")]
    encoded = tokenizer(chats, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
    assert encoded.attention_mask[0, 0] == 0  # the short prompt is left-padded
    torch.manual_seed(0)
    out = policy.generate(**encoded, do_sample=True, top_k=0, max_new_tokens=5, min_new_tokens=5,
                          output_logits=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
    sampled = torch.log_softmax(torch.stack(out.logits, dim=1), dim=-1)  # (B, R, V)
    responses = out.sequences[:, encoded.input_ids.shape[1]:]
    expected = sampled.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    attention_mask = torch.cat([encoded.attention_mask, torch.ones_like(responses)], dim=1)
    with torch.no_grad():
        logprobs, entropy = _response_logprobs(policy, out.sequences, attention_mask, responses.shape[1], 1.0)
    torch.testing.assert_close(logprobs, expected, atol=1e-4, rtol=1e-4)
    assert (entropy > 0).all()


def test_reward_model_scores_do_not_depend_on_batching(models_dir):
    prompts = ["say yes", "the cat is", "please say yes now"]
    responses = ["yes", "a dog is the cat now", ""]
    one_by_one = RewardModelScorer(models_dir / "rm", batch_size=1).score(prompts, responses)
    padded = RewardModelScorer(models_dir / "rm", batch_size=3).score(prompts, responses)
    torch.testing.assert_close(padded, one_by_one, atol=1e-5, rtol=1e-5)
    assert one_by_one.shape == (3,) and one_by_one.std() > 0  # a random head still tells the responses apart


def test_ppo_with_the_reward_model_scorer(models_dir, tmp_path, word_prompts):
    cfg = PPOConfig(rollout_batch_size=4, minibatch_size=2, max_new_tokens=4, num_steps=2, save_every=1)
    run = train_ppo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path, seed=1, show_progress=False)
    assert len(run.history) == 2 and len(run.checkpoints) == 2
    for record in run.history:
        assert all(torch.isfinite(torch.tensor(v)) for v in record.values())
    assert run.reward_model == models_dir / "rm"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"rollout_batch_size": 0}, "rollout_batch_size"), ({"num_steps": -1}, "num_steps"),
     ({"minibatch_size": 3}, "minibatch_size"), ({"learning_rate": 0.0}, "learning_rate"),
     ({"lam": 1.5}, "lam"), ({"reward_normalization_samples": -1}, "reward_normalization_samples")],
)
def test_config_rejects_bad_values(overrides, field):
    with pytest.raises(ValueError, match=field):
        PPOConfig(**overrides)


def test_ppo_method_trains_from_sft_against_the_first_reward_model(tmp_path):
    class FakeContext:
        def sft(self):
            return tmp_path / "sft"

        def reward_model(self):
            return tmp_path / "rm"

        def ppo(self, init, reward_model):
            return PPORun(policy=init / "ppo", reward_model=reward_model, checkpoints=())

    trained = PPO().train(FakeContext())
    assert (trained.method, trained.policy, trained.reward_model) == ("ppo", tmp_path / "sft/ppo", tmp_path / "rm")
    assert trained.ppo.reward_model == tmp_path / "rm"


def test_ppo_trains_in_bf16_autocast_on_the_cpu(models_dir, tmp_path, word_prompts, yes_scorer, monkeypatch):
    """``runtime.mixed_precision: bf16`` on the CPU: PPO's Accelerator autocasts, and its statistics stay finite."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    cfg = PPOConfig(rollout_batch_size=8, minibatch_size=4, max_new_tokens=6, num_steps=2, learning_rate=1e-3,
                    truncation_penalty=0.0, save_every=2)
    run = train_ppo(models_dir / "policy", models_dir / "rm", word_prompts, cfg, tmp_path, seed=0,
                    scorer=yes_scorer, show_progress=False)
    assert len(run.history) == 2 and abs(run.history[0]["kl"]) < 0.05  # bf16 rounding, not a moved policy
    assert all(math.isfinite(v) for record in run.history for v in record.values())
