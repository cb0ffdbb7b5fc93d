"""Hand-checked maths of the multi-view information bottleneck (harness/trainers/mib.py)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from harness.trainers.mib import (
    JSDCritic,
    MultiViewInformationBottleneck,
    StochasticEncoder,
    infonce_mutual_information,
    jsd_mutual_information,
    symmetric_kl,
    symmetric_kl_sampled,
)


def dot_critic(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """T(z1, z2) = z1 . z2, a critic simple enough to evaluate by hand."""
    return (z1 * z2).sum(-1)


def zero_critic(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return torch.zeros(z1.shape[:-1])


def test_symmetric_kl_of_identical_gaussians_is_zero():
    mu, sigma = torch.randn(3, 5), torch.rand(3, 5) + 0.1
    assert torch.allclose(symmetric_kl(mu, sigma, mu, sigma), torch.zeros(3), atol=1e-6)


def test_symmetric_kl_matches_hand_computation():
    # KL(N(m1,s1^2) || N(m2,s2^2)) = log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2.
    # Example 0, 1-D in dim 0 (dim 1 identical, contributes 0): m1=0, s1=1, m2=1, s2=2:
    #   KL(p1||p2) = log 2 + (1 + 1)/8 - 1/2 = 0.693147 + 0.25 - 0.5 = 0.443147
    #   KL(p2||p1) = log(1/2) + (4 + 1)/2 - 1/2 = -0.693147 + 2.5 - 0.5 = 1.306853
    #   mean = 0.875
    # Example 1 adds dim 1: m1=m2=0, s1=1, s2=0.5:
    #   KL(p1||p2) = log 0.5 + 1/(2*0.25) - 1/2 = -0.693147 + 2 - 0.5 = 0.806853
    #   KL(p2||p1) = log 2 + 0.25/2 - 1/2 = 0.693147 + 0.125 - 0.5 = 0.318147
    #   mean = 0.5625, so example 1 totals 0.875 + 0.5625 = 1.4375.
    mu1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    sigma1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    mu2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    sigma2 = torch.tensor([[2.0, 1.0], [2.0, 0.5]])
    assert torch.allclose(symmetric_kl(mu1, sigma1, mu2, sigma2), torch.tensor([0.875, 1.4375]))
    # Symmetric by construction: swapping the two distributions changes nothing.
    assert torch.allclose(symmetric_kl(mu2, sigma2, mu1, sigma1), torch.tensor([0.875, 1.4375]))


def test_sampled_symmetric_kl_is_unbiased():
    # Federici's single-sample estimate averages to the closed form (0.875 from the hand example above).
    torch.manual_seed(0)
    n = 20000
    mu1, sigma1 = torch.zeros(n, 1), torch.ones(n, 1)
    mu2, sigma2 = torch.ones(n, 1), torch.full((n, 1), 2.0)
    z1 = StochasticEncoder.sample(mu1, sigma1)
    z2 = StochasticEncoder.sample(mu2, sigma2)
    estimate = symmetric_kl_sampled(mu1, sigma1, mu2, sigma2, z1, z2).mean().item()
    assert estimate == pytest.approx(0.875, abs=0.05)


def test_jsd_bound_is_minus_two_log_two_for_a_zero_critic():
    # softplus(0) = log 2, so at T = 0: -softplus(-0) - softplus(0) = -2 log 2 = -1.386294.
    z = torch.randn(4, 3)
    assert jsd_mutual_information(zero_critic, z, z).item() == pytest.approx(-2 * math.log(2))


def test_jsd_pairs_each_z1_with_the_previous_examples_z2():
    # z1 = z2 = [[1], [2]]; dot critic. Positives T = [1*1, 2*2] = [1, 4].
    # Negatives pair z1 with z2 rolled by one ([[2], [1]]): T = [1*2, 2*1] = [2, 2].
    # softplus(-1) = 0.313262, softplus(-4) = 0.018150, softplus(2) = 2.126928.
    # I = -(0.313262 + 0.018150)/2 - 2.126928 = -0.165706 - 2.126928 = -2.292634.
    z = torch.tensor([[1.0], [2.0]])
    assert jsd_mutual_information(dot_critic, z, z).item() == pytest.approx(-2.292634, abs=1e-5)


def test_infonce_matches_hand_computation():
    # Zero critic: every row is 0 - log(B * e^0) + log B = 0.
    z = torch.randn(4, 3)
    assert infonce_mutual_information(zero_critic, z, z).item() == pytest.approx(0.0, abs=1e-6)
    # Dot critic on z1 = z2 = [[1], [2]]: scores S = [[1, 2], [2, 4]].
    # row 0: 1 - log(e^1 + e^2) = 1 - 2.313262 = -1.313262; row 1: 4 - log(e^2 + e^4) = 4 - 4.126928 = -0.126928.
    # mean = -0.720095, plus log 2 = 0.693147 -> -0.026948.
    z = torch.tensor([[1.0], [2.0]])
    assert infonce_mutual_information(dot_critic, z, z).item() == pytest.approx(-0.026948, abs=1e-5)


def test_mi_estimators_need_two_examples():
    z = torch.randn(1, 3)
    with pytest.raises(ValueError, match="batch size"):
        jsd_mutual_information(zero_critic, z, z)
    with pytest.raises(ValueError, match="batch size"):
        infonce_mutual_information(zero_critic, z, z)


def _trained_jsd(z2_of: callable, steps: int = 60) -> float:
    """Trains a critic for a few dozen steps on (z1, z2_of(z1)) and returns its JSD estimate on fresh data."""
    torch.manual_seed(0)
    critic = JSDCritic(latent_dim=4, hidden=32)
    optimiser = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(steps):
        z1 = torch.randn(64, 4)
        loss = -jsd_mutual_information(critic, z1, z2_of(z1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        z1 = torch.randn(512, 4)
        return jsd_mutual_information(critic, z1, z2_of(z1)).item()


def test_jsd_estimate_is_higher_for_dependent_views():
    dependent = _trained_jsd(lambda z1: z1 + 0.1 * torch.randn_like(z1))
    independent = _trained_jsd(lambda z1: torch.randn_like(z1))
    print(f"JSD estimate after 60 critic steps: dependent {dependent:.3f}, independent {independent:.3f}")
    # Independent views cannot beat the -2 log 2 = -1.386 floor by much; dependent ones climb towards 0.
    assert dependent > independent + 0.5


def test_encoder_sigma_stays_positive_and_sampling_reaches_both_heads():
    torch.manual_seed(0)
    encoder = StochasticEncoder(in_dim=8, latent_dim=4, hidden_dim=16)
    mu, sigma = encoder(1e4 * torch.randn(16, 8))  # huge inputs push softplus to 0 for some units
    assert (sigma >= encoder.min_sigma).all()
    StochasticEncoder.sample(mu, sigma).sum().backward()
    assert encoder.mu[0].weight.grad.abs().sum() > 0
    assert encoder.sigma[0].weight.grad.abs().sum() > 0


def test_mib_loss_is_minus_mi_plus_weighted_skl():
    torch.manual_seed(0)
    h1, h2 = torch.randn(6, 8), torch.randn(6, 8)
    mib = MultiViewInformationBottleneck(in_dim=8, latent_dim=4, hidden_dim=16, skl_weight=0.5)
    loss, metrics = mib(h1, h2)
    assert loss.item() == pytest.approx(-metrics["mi"] + 0.5 * metrics["skl"], abs=1e-5)
    assert metrics["skl"] > 0  # two different inputs give two different Gaussians


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"estimator": "mine"}, "estimator"),
        ({"skl_estimator": "exact"}, "skl_estimator"),
        ({"skl_weight": -1}, "skl_weight"),
    ],
)
def test_mib_rejects_bad_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MultiViewInformationBottleneck(in_dim=8, **kwargs)


@pytest.mark.parametrize("estimator, skl_estimator", [("jsd", "closed_form"), ("infonce", "sample")])
def test_mib_gradient_reaches_a_backbone_placed_before_it(estimator, skl_estimator):
    torch.manual_seed(0)
    backbone = LlamaModel(
        LlamaConfig(
            vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
        )
    )
    mib = MultiViewInformationBottleneck(in_dim=16, latent_dim=4, hidden_dim=16, estimator=estimator,
                                         skl_estimator=skl_estimator)
    views_1, views_2 = torch.randint(0, 50, (4, 7)), torch.randint(0, 50, (4, 7))
    h1 = backbone(input_ids=views_1).last_hidden_state[:, -1]  # (B, H): last-token pooling
    h2 = backbone(input_ids=views_2).last_hidden_state[:, -1]
    loss, _ = mib(h1, h2)
    loss.backward()
    for name in ("embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.1.mlp.down_proj.weight"):
        grad = backbone.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_training_the_mib_raises_the_mi_estimate_for_paired_views():
    # A number moving the right way: on views that share a signal, 120 steps of the full loss (beta = 1) raise I
    # from the -2 log 2 floor. The inputs are scaled by 3 on purpose: with PyTorch's default init the encoder's
    # means spread by about 0.1 x rms(h) while sigma starts at softplus(0) = 0.69, and at rms(h) = 1 the MI term
    # has almost no gradient, so the SKL term collapses the encoder first (seen on 64-d inputs for 300 steps).
    torch.manual_seed(0)
    mib = MultiViewInformationBottleneck(in_dim=8, latent_dim=4, hidden_dim=32)
    optimiser = torch.optim.Adam(mib.parameters(), lr=3e-3)
    history = []
    for _ in range(120):
        shared = 3 * torch.randn(32, 8)
        loss, metrics = mib(shared + 0.1 * torch.randn_like(shared), shared + 0.1 * torch.randn_like(shared))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(metrics["mi"])
    first, last = sum(history[:10]) / 10, sum(history[-20:]) / 20
    print(f"MIB training: mean MI estimate over the first 10 steps {first:.3f}, last 20 steps {last:.3f}")
    assert last > first + 0.4
