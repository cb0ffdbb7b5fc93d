"""Iterated DPO's logic against a small fake run context: which stages it asks for, in which order, on which pairs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import harness.trainers.dpo
from harness.core.schema import build
from harness.trainers.config import DPOConfig
from rlp_iterated_dpo import IteratedDPO, IteratedDPOConfig, ranked_pairs

INSTRUCTIONS = ["say yes", "say no", "the cat is"]


class FakeContext:
    """Samples "<policy> <instruction> <k>" and scores a sample by its k (the last sample is the best), except
    the third instruction's, which all score the same; records the stages it is asked for."""

    def __init__(self, cfg: IteratedDPOConfig):
        self.config = SimpleNamespace(options={"iterated_dpo": cfg})
        self.splits = {"unlabeled": {"instruction": INSTRUCTIONS}}
        self.seed = 7
        self.sampled: list[Path] = []
        self.stages: list[tuple] = []

    def sft(self) -> Path:
        return Path("sft")

    def reward_model(self) -> Path:
        return Path("rm")

    def sample(self, policy, instructions, n, temperature, name="samples", sample_seed=None, training=False):
        assert (name, training) == ("iterated_dpo_samples", True)
        self.sampled.append(Path(policy))
        return [[f"{policy} {instruction} {k}" for k in range(n)] for instruction in instructions]

    def score(self, reward_model, instructions, outputs):
        assert reward_model == Path("rm")
        return [0.0 if instruction == "the cat is" else float(output.rsplit(" ", 1)[1])
                for instruction, output in zip(instructions, outputs)]

    def stage(self, name, inputs, build, collective=False, training=None):
        self.stages.append((name, inputs, collective))
        out = Path(f"{name}-round{len(self.stages)}")
        build(out)
        return out


def test_each_round_trains_dpo_from_the_last_round_on_its_own_ranked_samples(monkeypatch):
    calls = []
    monkeypatch.setattr(harness.trainers.dpo, "train_dpo", lambda *args: calls.append(args))
    ctx = FakeContext(IteratedDPOConfig(rounds=2, n=3, beta=0.2))
    trained = IteratedDPO().train(ctx)

    assert ctx.sampled == [Path("sft"), Path("iterated_dpo-round1")]  # round 2 samples round 1's policy
    assert [init for init, *_ in calls] == [Path("sft"), Path("iterated_dpo-round1")]
    assert [stage[1]["init"] for stage in ctx.stages] == [Path("sft"), Path("iterated_dpo-round1")]
    assert all(collective for *_, collective in ctx.stages)
    init, pairs, dpo, out, seed = calls[1]
    assert pairs["output_1"] == ["iterated_dpo-round1 say yes 2", "iterated_dpo-round1 say no 2"]  # best first
    assert pairs["output_2"] == ["iterated_dpo-round1 say yes 0", "iterated_dpo-round1 say no 0"]
    assert (dpo, out, seed) == (DPOConfig(beta=0.2), Path("iterated_dpo-round2"), 7)
    assert trained.policy == Path("iterated_dpo-round2") and trained.reward_model == Path("rm")
    assert trained.method == "iterated_dpo"
    assert trained.diagnostics == {"round_1_pairs": 2, "round_1_margin": 2.0, "round_2_pairs": 2,
                                   "round_2_margin": 2.0}


def test_ranked_pairs_put_the_best_first_and_drop_instructions_without_a_preference():
    pairs, margin = ranked_pairs(["a", "b"], [["x", "y", "z"], ["p", "q"]], [[0.5, 2.0, -1.0], [1.0, 1.0]])
    assert pairs.to_list() == [{"instruction": "a", "output_1": "y", "output_2": "z", "preference": 1.0}]
    assert margin == 3.0


def test_a_round_with_no_pair_says_so():
    ctx = FakeContext(IteratedDPOConfig(rounds=1, n=2))
    ctx.score = lambda reward_model, instructions, outputs: [1.0] * len(outputs)
    with pytest.raises(ValueError, match="iterated_dpo round 1: the reward model scores all 2 samples"):
        IteratedDPO().train(ctx)


@pytest.mark.parametrize("field, value, allowed", [("n", 1, "a number >= 2"), ("rounds", 0, "a number > 0"),
                                                   ("beta", -0.1, "a number > 0")])
def test_bad_options_are_one_line_naming_the_field(field, value, allowed):
    with pytest.raises(ValueError, match=rf"^iterated_dpo\.{field}: got {value}.*; allowed: {allowed}"):
        build(IteratedDPOConfig, {field: value}, "iterated_dpo")
    assert all(f.metadata.get("help") for f in IteratedDPOConfig.__dataclass_fields__.values())
