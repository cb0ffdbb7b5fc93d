"""RLP's U (harness/context.py: policy_samples): the unlabeled split by default, or |U| = ratio x |D| with the
split's instructions cycled, while PPO's prompts stay the unlabeled split."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.config import PolicySamplesConfig
from harness.context import RunContext, unlabeled_instructions
from harness.core.errors import ConfigError
from harness.core.schema import build

UNLABELED = ["u1", "u2", "u3"]


def test_u_is_the_unlabeled_split_unless_a_ratio_to_d_is_asked_for():
    assert unlabeled_instructions(UNLABELED, 4, None) == UNLABELED
    # the paper's |U| = 2|D|: 8 instructions for 4 pairs, the split's 3 taken in order and cycled
    assert unlabeled_instructions(UNLABELED, 4, 2.0) == ["u1", "u2", "u3", "u1", "u2", "u3", "u1", "u2"]
    assert unlabeled_instructions(UNLABELED, 4, 0.5) == ["u1", "u2"]  # fewer than the split: its first ones


@pytest.mark.parametrize(("ratio", "cap", "expected"), [(None, None, 3), (2.0, None, 8), (2.0, 5, 5), (None, 2, 2)])
def test_policy_samples_draws_n_samples_on_u(ratio, cap, expected):
    config = SimpleNamespace(policy_samples=PolicySamplesConfig(n=3, per_preference_pair=ratio, max_instructions=cap))
    splits = {"unlabeled": {"instruction": UNLABELED}, "preference": [{}] * 4}
    ctx = RunContext(config, suite=None, splits=splits, seed=0, cache=None, generator=None, base_model=Path("base"))
    asked = []

    def sample(policy, instructions, n, temperature, **kwargs):
        asked.append((instructions, n))
        return [["y"] * n for _ in instructions]

    ctx.sample = sample
    instructions, samples = ctx.policy_samples(Path("ppo"))
    assert len(instructions) == expected and asked == [(instructions, 3)] and len(samples) == expected
    assert instructions == unlabeled_instructions(UNLABELED, 4, ratio)[:expected]


def test_the_ratio_must_be_positive():
    with pytest.raises(ConfigError, match="policy_samples.per_preference_pair"):
        build(PolicySamplesConfig, {"per_preference_pair": 0}, "policy_samples")
