"""The maths of PPO for language models, as pure functions on padded ``(batch, response_len)`` tensors.

Every function takes a ``mask`` (1 for a real response token, 0 for padding and for everything after the first
eos) and guarantees that masked positions contribute nothing to its result. The formulas follow the PPO setup of
InstructGPT (Ouyang et al., 2022, "Training language models to follow instructions with human feedback") as
implemented by AlpacaFarm (Dubois et al., 2023), which the RLP paper (Lang et al., NAACL 2024) uses unchanged.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1.

    Args:
        x: Values, any shape.
        mask: Same shape as ``x``; 1 (or True) where a value counts.
        dim: Reduce along this dimension only; ``None`` reduces over everything.

    Returns:
        A scalar, or ``x`` reduced along ``dim``. A slice with no counted position gives NaN, on purpose: every
        response has at least one token, so an empty slice is a bug upstream that should not be averaged away.
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(dim) / mask.sum(dim)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased (Bessel-corrected) variance of ``x`` over the positions where ``mask`` is 1.

    Unbiased because AlpacaFarm and TRL whiten with it; with a few hundred tokens per batch the choice barely
    matters, but matching them keeps our numbers comparable.

    Raises:
        ValueError: If fewer than two positions are counted (the unbiased variance is undefined).
    """
    count = mask.sum()
    if count < 2:
        raise ValueError(f"mask must select at least 2 positions for a variance, got {int(count)}")
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask) * count / (count - 1)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Normalises ``x`` to unit variance (and zero mean) over the masked positions.

    ``(x - mean) / sqrt(var + eps)`` with the unbiased variance of :func:`masked_var`. With ``shift_mean=False``
    the mean is added back, which is how AlpacaFarm whitens rewards: the scale is normalised but the sign of the
    average reward, which tells the policy whether it is doing well, is kept.

    Returns:
        A tensor shaped like ``x`` with zeros at masked-out positions.
    """
    mean = masked_mean(x, mask)
    whitened = (x - mean) * torch.rsqrt(masked_var(x, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``log pi(y_t) - log pi_ref(y_t)`` (the "k1" estimator).

    Summed over a sampled response it is an unbiased estimate of KL(pi || pi_ref) for that prompt; single tokens
    can be negative. InstructGPT (eq. 2) and AlpacaFarm penalise the reward with exactly this quantity.
    """
    return logprobs - ref_logprobs


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position with mask 1 in each row, shape ``(batch,)``."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.long()).argmax(dim=1)


def penalise_truncated(scores: torch.Tensor, ended: torch.Tensor, penalty: float, rule: str) -> torch.Tensor:
    """The sequence scores with the penalty of the responses cut off before eos.

    ``replace`` (AlpacaFarm): a cut-off response scores ``penalty`` whatever the reward model said. ``add`` (TRL's
    ``missing_eos_penalty``, with the sign kept): it scores the reward model's score plus ``penalty``. A
    Bradley-Terry reward model's offset is arbitrary, so a fixed replacement can sit above the scores of finished
    responses and reward stopping mid-sentence (or so far below that the policy learns only to stop early);
    adding keeps the penalty the same size relative to every score.

    Args:
        scores: ``(batch,)`` reward-model scores.
        ended: ``(batch,)`` bool, whether each response ended with eos.
        penalty: the truncation penalty (negative to penalise).
        rule: ``"replace"`` or ``"add"``.
    """
    if rule == "replace":
        return torch.where(ended, scores, torch.full_like(scores, penalty))
    if rule == "add":
        return torch.where(ended, scores, scores + penalty)
    raise ValueError(f"rule: must be 'replace' or 'add', got {rule!r}")


def shape_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards of InstructGPT's objective (Ouyang et al., 2022, eq. 2).

    ``r_t = -kl_coef * kl_t`` at every response token, plus the reward model's sequence score at the last real
    token, so the return of a whole response is ``score - kl_coef * sum_t kl_t``.

    Args:
        scores: ``(batch,)`` sequence scores (reward model, or the truncation penalty).
        kl: ``(batch, response_len)`` per-token KL from :func:`per_token_kl`.
        mask: ``(batch, response_len)`` response mask; each row must have at least one real token.
        kl_coef: Weight of the KL penalty (AlpacaFarm: 0.0067).

    Returns:
        ``(batch, response_len)`` rewards, zero at masked positions.
    """
    rewards = -kl_coef * kl * mask.to(kl.dtype)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16).

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, with ``V`` and ``A``
    zero after the last real token (the episode ends there). With ``gamma = lam = 1`` (AlpacaFarm) the return
    ``A_t + V_t`` is the plain sum of the rewards still to come.

    Args:
        rewards: ``(batch, response_len)`` per-token rewards from :func:`shape_rewards`.
        values: ``(batch, response_len)`` value estimates made before each token was sampled.
        mask: ``(batch, response_len)`` response mask.
        gamma: Discount factor.
        lam: GAE's bias/variance trade-off (1 = Monte-Carlo returns, 0 = one-step TD).

    Returns:
        ``(advantages, returns)``, each ``(batch, response_len)`` and zero at masked positions; ``returns`` are the
        value model's regression targets.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate objective, negated to be minimised (Schulman et al., 2017, eq. 7).

    ``loss_t = max(-A_t * rho_t, -A_t * clip(rho_t, 1 - eps, 1 + eps))`` with ``rho_t = pi(y_t) / pi_old(y_t)``:
    the pessimistic bound, so a token's gain stops counting once the ratio has moved ``eps`` in its favour.

    Returns:
        ``(loss, clipfrac)``: the masked mean loss and the fraction of tokens where the clipped term was the one
        taken (a health signal: it should stay well below ~0.2).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    return loss, clipfrac


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> torch.Tensor:
    """Clipped value regression of PPO implementations (OpenAI baselines' ppo2, used by AlpacaFarm).

    ``0.5 * max((V - R)^2, (V_clip - R)^2)`` with ``V_clip = V_old + clip(V - V_old, -eps, eps)``: the value model
    may not gain by moving more than ``eps`` away from its rollout-time prediction in one PPO iteration.
    """
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    squared_error = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_mean(squared_error, mask)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution ``softmax(logits)`` along the last dimension.

    ``H = logsumexp(z) - sum_i p_i z_i``, which avoids taking the log of tiny probabilities.
    """
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)
