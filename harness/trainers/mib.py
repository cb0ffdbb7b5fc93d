"""The multi-view information bottleneck (MIB) loss that RLP-UML adds to the reward model's objective.

RLP-UML (Lang et al., NAACL 2024, Sec. 4.2) takes two views of one instruction, v1 = (x, y1) and v2 = (x, y2),
two different policy samples, and trains the reward model's representation h(v) with the MIB loss of
Federici et al. (ICLR 2020, "Learning Robust Representations via Multi-View Information Bottleneck"):

    L_M = E[ -I(z1; z2) + beta * D_SKL(p(z|v1) || p(z|v2)) ],   p(z|v) = N(mu(h(v)), diag(sigma(h(v))^2))

The MI term keeps what the two views share (what the instruction asks for); the symmetric KL term drops what
only one view carries (the superficial differences between two samples). RLP uses beta = 1 with no annealing.

I(z1; z2) is estimated with the Jensen-Shannon lower bound of Hjelm et al. (arXiv 2018 / ICLR 2019, "Deep
InfoMax", Eq. 4), as Federici's code does; InfoNCE (van den Oord et al. 2018) is offered for the "contrastive" ablation.
Everything here is pure maths on tensors: the reward model and the data live in :mod:`methods.rlp_uml`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

ESTIMATORS = ("jsd", "infonce")
SKL_ESTIMATORS = ("closed_form", "sample")


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """The 3-layer MLP the paper uses for every head (two hidden ReLU layers, linear output)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


class StochasticEncoder(nn.Module):
    """Maps a representation h to a diagonal Gaussian p(z|h) = N(mu(h), diag(sigma(h)^2)).

    mu and sigma are separate 3-layer MLPs, as in the paper. sigma = softplus(.) + min_sigma: softplus keeps it
    positive and smooth (exp would explode for large pre-activations), and the floor keeps log(sigma) and the
    1/sigma^2 of the KL finite when the encoder tries to collapse a dimension (Federici's code uses 1e-7; we use a
    larger floor because the KL divides by sigma^2 and reward-model hidden states can be large).

    Args:
        in_dim: size of h (the reward model's hidden size).
        latent_dim: size of z (64 in Federici et al.).
        hidden_dim: width of the two hidden layers of each head.
        min_sigma: lower bound added to every standard deviation.
    """

    def __init__(self, in_dim: int, latent_dim: int = 64, hidden_dim: int = 256, min_sigma: float = 1e-4):
        super().__init__()
        self.mu = _mlp(in_dim, hidden_dim, latent_dim)
        self.sigma = _mlp(in_dim, hidden_dim, latent_dim)
        self.min_sigma = min_sigma

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mu, sigma), each (B, latent_dim), for h of shape (B, in_dim)."""
        return self.mu(h), F.softplus(self.sigma(h)) + self.min_sigma

    @staticmethod
    def sample(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Draws z = mu + sigma * eps, eps ~ N(0, I): the reparameterisation lets gradients reach both heads."""
        return mu + sigma * torch.randn_like(mu)


def symmetric_kl(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """D_SKL = (KL(p1||p2) + KL(p2||p1)) / 2 for diagonal Gaussians, in closed form.

    Per dimension KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2; the log terms
    of the two directions cancel, leaving (1/2) * [(s1^2 + d^2) / (2 s2^2) + (s2^2 + d^2) / (2 s1^2) - 1].
    Federici et al. estimate each KL from one sample because their code is written for any distribution; for
    diagonal Gaussians the closed form is exact, costs the same and adds no variance to the reward model's
    gradient, so it is the default (:func:`symmetric_kl_sampled` keeps Federici's estimator for comparison).

    Args:
        mu1, sigma1: mean and standard deviation of p1, shape (B, D).
        mu2, sigma2: mean and standard deviation of p2, shape (B, D).

    Returns:
        (B,) symmetric KL of each example, summed over the D latent dimensions.
    """
    var1, var2 = sigma1.pow(2), sigma2.pow(2)
    diff2 = (mu1 - mu2).pow(2)
    per_dim = 0.5 * ((var1 + diff2) / (2 * var2) + (var2 + diff2) / (2 * var1) - 1)
    return per_dim.sum(dim=-1)


def symmetric_kl_sampled(
    mu1: torch.Tensor,
    sigma1: torch.Tensor,
    mu2: torch.Tensor,
    sigma2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
) -> torch.Tensor:
    """Federici et al.'s single-sample estimate of D_SKL, with z1 ~ p1 and z2 ~ p2 (the same z the MI term uses).

    KL(p1||p2) ~ log p1(z1) - log p2(z1) and KL(p2||p1) ~ log p2(z2) - log p1(z2): unbiased, but noisy.

    Returns:
        (B,) estimate per example, summed over latent dimensions.
    """
    p1, p2 = torch.distributions.Normal(mu1, sigma1), torch.distributions.Normal(mu2, sigma2)
    kl_12 = p1.log_prob(z1) - p2.log_prob(z1)
    kl_21 = p2.log_prob(z2) - p1.log_prob(z2)
    return 0.5 * (kl_12 + kl_21).sum(dim=-1)


class JSDCritic(nn.Module):
    """The critic T(z1, z2): a 3-layer MLP on the concatenation [z1; z2], one scalar per pair.

    It works on any leading shape, so InfoNCE can score every (i, j) pair of a batch in one call.
    """

    def __init__(self, latent_dim: int, hidden: int = 256):
        super().__init__()
        self.net = _mlp(2 * latent_dim, hidden, 1)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """(..., D), (..., D) -> (...) scores."""
        return self.net(torch.cat([z1, z2], dim=-1)).squeeze(-1)


def _check_batch(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be (batch, latent_dim), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError(f"batch size must be >= 2: negatives pair z1 with another example's z2, got {z1.shape[0]}")


def jsd_mutual_information(critic: Critic, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon lower bound on I(z1; z2) (Hjelm et al. 2018, Deep InfoMax, Eq. 4).

        I_JSD = E_pos[-softplus(-T(z1_i, z2_i))] - E_neg[softplus(T(z1_i, z2_j))]

    Negatives pair z1_i with z2_{i-1}: the batch rolled by one, as in Federici's code. One negative per positive
    keeps the cost linear in the batch, and because the view pairs come one per instruction, a negative never pairs
    two views of the same instruction. The bound lies in [-2 log 2, 0] (it is 2 JSD - 2 log 2 at the optimal
    critic), so independent views give about -1.386 and strongly dependent ones approach 0.

    Args:
        critic: T, any callable (B, D), (B, D) -> (B,).
        z1, z2: (B, D) samples of the two views, row i of each from the same instruction; B >= 2.

    Returns:
        Scalar estimate (to maximise).
    """
    _check_batch(z1, z2)
    positive = critic(z1, z2)
    negative = critic(z1, torch.roll(z2, shifts=1, dims=0))
    return -F.softplus(-positive).mean() - F.softplus(negative).mean()


def infonce_mutual_information(critic: Critic, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """InfoNCE lower bound on I(z1; z2) (van den Oord et al. 2018), for the paper's "contrastive" ablation.

        I_NCE = mean_i [ T(z1_i, z2_i) - log sum_j exp T(z1_i, z2_j) ] + log B

    Every other example of the batch is a negative (B^2 critic calls). The bound is at most log B.

    Args:
        critic: T, a callable that broadcasts over leading dimensions: (B, B, D), (B, B, D) -> (B, B).
        z1, z2: (B, D) samples of the two views; B >= 2.

    Returns:
        Scalar estimate (to maximise).
    """
    _check_batch(z1, z2)
    batch = z1.shape[0]
    scores = critic(z1.unsqueeze(1).expand(-1, batch, -1), z2.unsqueeze(0).expand(batch, -1, -1))  # (B, B)
    return (scores.diagonal() - scores.logsumexp(dim=1)).mean() + math.log(batch)


_MI_ESTIMATORS = {"jsd": jsd_mutual_information, "infonce": infonce_mutual_information}


class MultiViewInformationBottleneck(nn.Module):
    """L_M = -I(z1; z2) + beta * D_SKL(p(z|v1) || p(z|v2)) on a batch of paired representations.

    One encoder serves both views: the two views are exchangeable (two samples from the same policy for the same
    instruction), which is the single-encoder setting of Federici et al.'s unsupervised experiments.

    Args:
        in_dim: size of the representations h1, h2.
        latent_dim: size of z.
        hidden_dim: width of the encoder heads and of the critic.
        estimator: "jsd" (the paper) or "infonce" (the contrastive ablation).
        skl_estimator: "closed_form" (exact, default) or "sample" (Federici's single-sample estimate).
        skl_weight: beta; 1 is the paper's L_M, 0 leaves multi-view InfoMax (the paper's "MVI" ablation).
        min_sigma: floor on the encoder's standard deviations.

    Raises:
        ValueError: for an unknown estimator or skl_estimator, or a negative skl_weight.
    """

    def __init__(
        self,
        in_dim: int,
        latent_dim: int = 64,
        hidden_dim: int = 256,
        estimator: str = "jsd",
        skl_estimator: str = "closed_form",
        skl_weight: float = 1.0,
        min_sigma: float = 1e-4,
    ):
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if skl_estimator not in SKL_ESTIMATORS:
            raise ValueError(f"skl_estimator must be one of {SKL_ESTIMATORS}, got {skl_estimator!r}")
        if skl_weight < 0:
            raise ValueError(f"skl_weight must be >= 0, got {skl_weight}")
        self.encoder = StochasticEncoder(in_dim, latent_dim, hidden_dim, min_sigma)
        self.critic = JSDCritic(latent_dim, hidden_dim)
        self.estimator = estimator
        self.skl_estimator = skl_estimator
        self.skl_weight = skl_weight

    def forward(self, h1: torch.Tensor, h2: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Computes L_M for (B, in_dim) representations of the two views, row i of each from the same instruction.

        Returns:
            (loss, metrics): the scalar loss to minimise, and {"mi": the MI estimate, "skl": the mean D_SKL}.
        """
        mu1, sigma1 = self.encoder(h1)
        mu2, sigma2 = self.encoder(h2)
        z1, z2 = self.encoder.sample(mu1, sigma1), self.encoder.sample(mu2, sigma2)
        mi = _MI_ESTIMATORS[self.estimator](self.critic, z1, z2)
        if self.skl_estimator == "closed_form":
            skl = symmetric_kl(mu1, sigma1, mu2, sigma2).mean()
        else:
            skl = symmetric_kl_sampled(mu1, sigma1, mu2, sigma2, z1, z2).mean()
        loss = -mi + self.skl_weight * skl
        return loss, {"mi": mi.item(), "skl": skl.item()}
