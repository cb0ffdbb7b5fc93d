"""PPO maths checked against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from harness.trainers.ppo_losses import (
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    gae,
    masked_mean,
    masked_var,
    masked_whiten,
    penalise_truncated,
    per_token_kl,
    shape_rewards,
)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=1e-6, rtol=1e-6)


def test_masked_mean_ignores_masked_values():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # all: (1 + 2 + 3 + 4 + 5) / 5 = 3; rows: (1 + 2) / 2 = 1.5 and (3 + 4 + 5) / 3 = 4
    close(masked_mean(x, mask), 3.0)
    close(masked_mean(x, mask, dim=1), [1.5, 4.0])


def test_masked_var_is_unbiased_and_needs_two_positions():
    # [1, 2, 3]: mean 2, squared deviations 1 + 0 + 1 = 2, divided by n - 1 = 2 -> 1
    close(masked_var(torch.tensor([1.0, 2.0, 3.0, 50.0]), torch.tensor([1, 1, 1, 0])), 1.0)
    with pytest.raises(ValueError, match="mask"):
        masked_var(torch.tensor([1.0, 2.0]), torch.tensor([1, 0]))


def test_masked_whiten_of_one_two_three():
    x = torch.tensor([[1.0, 2.0], [3.0, 50.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    # real values [1, 2, 3]: mean 2, unbiased variance 1 -> (x - 2) / 1 = [-1, 0, 1]; the masked 50 becomes 0
    close(masked_whiten(x, mask), [[-1.0, 0.0], [1.0, 0.0]])
    # shift_mean=False adds the mean 2 back: [1, 2, 3], the scale was already 1
    close(masked_whiten(x, mask, shift_mean=False), [[1.0, 2.0], [3.0, 0.0]])
    # doubling x doubles the std, so whitening gives the same result: scale-free
    close(masked_whiten(2 * x, mask), [[-1.0, 0.0], [1.0, 0.0]])


def test_per_token_kl_is_logprob_difference():
    # log 0.5 - log 0.25 = log 2; the estimator is negative where the policy is less likely than the reference
    kl = per_token_kl(torch.log(torch.tensor([0.5, 0.25])), torch.log(torch.tensor([0.25, 0.5])))
    close(kl, [math.log(2), -math.log(2)])


def test_shape_rewards_puts_score_on_last_real_token():
    scores = torch.tensor([2.0, -1.0])
    kl = torch.tensor([[0.5, 1.0, 9.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # row 0: -0.1 * [0.5, 1.0] = [-0.05, -0.1], score 2 on token 1 -> [-0.05, 1.9, 0] (masked KL 9 ignored)
    # row 1: -0.1 * [1, 2, 3] = [-0.1, -0.2, -0.3], score -1 on token 2 -> [-0.1, -0.2, -1.3]
    close(shape_rewards(scores, kl, mask, kl_coef=0.1), [[-0.05, 1.9, 0.0], [-0.1, -0.2, -1.3]])


def test_penalise_truncated_replaces_or_adds_by_hand():
    scores, ended = torch.tensor([2.0, -3.0, 0.5]), torch.tensor([True, False, False])
    # replace (AlpacaFarm): a cut-off response scores the penalty, even above its own score (-3 -> -1)
    assert penalise_truncated(scores, ended, -1.0, "replace").tolist() == [2.0, -1.0, -1.0]
    # add (TRL's missing_eos_penalty): its own score plus the penalty, whatever the reward model's offset
    assert penalise_truncated(scores, ended, -1.0, "add").tolist() == [2.0, -4.0, -0.5]
    shifted = penalise_truncated(scores + 10.0, ended, -1.0, "add") - 10.0
    assert shifted.tolist() == [2.0, -4.0, -0.5]  # an offset of the reward model passes through unchanged
    with pytest.raises(ValueError, match="rule: must be 'replace' or 'add', got 'drop'"):
        penalise_truncated(scores, ended, -1.0, "drop")


def test_gae_undiscounted_gives_monte_carlo_returns():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    mask = torch.ones(1, 3)
    # gamma = lam = 1: delta = [0 + 0.5 - 0.5, 0 + 0.5 - 0.5, 1 + 0 - 0.5] = [0, 0, 0.5]
    # A = suffix sums of delta = [0.5, 0.5, 0.5]; returns = A + V = [1, 1, 1], the reward still to come
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(advantages, [[0.5, 0.5, 0.5]])
    close(returns, [[1.0, 1.0, 1.0]])


def test_gae_discounted():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    mask = torch.ones(1, 3)
    # gamma = 0.9, lam = 0.95, gamma * lam = 0.855
    # delta_2 = 1 - 0.5 = 0.5; delta_1 = delta_0 = 0 + 0.9 * 0.5 - 0.5 = -0.05
    # A_2 = 0.5; A_1 = -0.05 + 0.855 * 0.5 = 0.3775; A_0 = -0.05 + 0.855 * 0.3775 = 0.2727625
    # returns = A + 0.5 = [0.7727625, 0.8775, 1.0]
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    close(advantages, [[0.2727625, 0.3775, 0.5]])
    close(returns, [[0.7727625, 0.8775, 1.0]])


def test_gae_masked_tail_contributes_nothing():
    rewards = torch.tensor([[0.0, 1.0, 7.0, 7.0]])
    values = torch.tensor([[0.5, 0.5, 3.0, 3.0]])
    mask = torch.tensor([[1, 1, 0, 0]])
    # the episode ends at token 1, so the tail's rewards and values are ignored:
    # delta_1 = 1 - 0.5 = 0.5, delta_0 = 0 + 0.5 - 0.5 = 0 -> A = [0.5, 0.5, 0, 0], returns = [1, 1, 0, 0]
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(advantages, [[0.5, 0.5, 0.0, 0.0]])
    close(returns, [[1.0, 1.0, 0.0, 0.0]])


def test_clipped_policy_loss_both_sides_and_both_signs():
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.1, 9.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    old_logprobs = torch.full_like(ratios, -2.0)
    logprobs = old_logprobs + torch.log(ratios)
    # clip 0.2, loss_t = max(-A * r, -A * clip(r, 0.8, 1.2)):
    #   A=+1, r=1.5: max(-1.5, -1.2) = -1.2   clipped (no gain beyond 1 + eps)
    #   A=+1, r=0.5: max(-0.5, -0.8) = -0.5   unclipped (the worse, unclipped term is kept)
    #   A=-1, r=1.5: max( 1.5,  1.2) =  1.5   unclipped
    #   A=-1, r=0.5: max( 0.5,  0.8) =  0.8   clipped (no gain beyond 1 - eps)
    #   A=+1, r=1.1: max(-1.1, -1.1) = -1.1   inside the range, not clipped
    #   the masked token with r=9 would add -1.2 and a clip; it must count for nothing
    # mean = (-1.2 - 0.5 + 1.5 + 0.8 - 1.1) / 5 = -0.5 / 5 = -0.1; clipfrac = 2 / 5 = 0.4
    loss, clipfrac = clipped_policy_loss(logprobs, old_logprobs, advantages, mask, clip_range=0.2)
    close(loss, -0.1)
    close(clipfrac, 0.4)


def test_clipped_policy_loss_gradient_raises_advantaged_token():
    logprobs = torch.zeros(1, 2, requires_grad=True)
    loss, _ = clipped_policy_loss(logprobs, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), 0.2)
    loss.backward()
    # d loss / d logprob_t = -A_t * ratio / n = [-0.5, +0.5]: descent raises the good token, lowers the bad one
    close(logprobs.grad, [[-0.5, 0.5]])


def test_clipped_value_loss():
    values = torch.tensor([[1.0, 0.0, 0.5, 5.0]])
    old_values = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # clip 0.2, V_clip = clip(V, -0.2, 0.2) = [0.2, 0, 0.2]:
    #   t0: max((1 - 1)^2, (0.2 - 1)^2) = max(0, 0.64) = 0.64   moving 1.0 in one go is not rewarded
    #   t1: max((0 - 1)^2, (0 - 1)^2) = 1
    #   t2: max((0.5 - 0)^2, (0.2 - 0)^2) = 0.25
    #   t3 is masked
    # loss = 0.5 * (0.64 + 1 + 0.25) / 3 = 0.5 * 0.63 = 0.315
    close(clipped_value_loss(values, old_values, returns, mask, clip_range=0.2), 0.315)


def test_entropy_from_logits():
    # uniform over 4 -> log 4; a (near) one-hot distribution -> ~0
    close(entropy_from_logits(torch.zeros(4)), math.log(4))
    assert entropy_from_logits(torch.tensor([100.0, 0.0, 0.0])) < 1e-6
