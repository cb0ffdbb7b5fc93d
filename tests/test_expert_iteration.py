"""Expert iteration (methods/expert_iteration.py) against a fake run context: each round samples n outputs of the
previous round's policy, the reward model keeps its favourites, and the SFT checkpoint is fine-tuned on them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import re

import pytest

import harness.trainers.sft
from harness.core.schema import build
from harness.trainers.config import SFTConfig
from methods.expert_iteration import ExpertIteration, ExpertIterationConfig

# Samples per policy; the reward model's score is the number each sample ends with.
SAMPLES = {
    "sft": {"q1": ["a 1", "b 5", "c 3"], "q2": ["d 2", "e 2", "f 0"]},
    "expert_iteration-1": {"q1": ["g 0", "h 1", "i 9"], "q2": ["j 7", "k 8", "l 1"]},
}


class FakeContext:
    """Samples from SAMPLES by policy, scores by the last word, numbers each stage it builds; records every call."""

    def __init__(self, tmp_path: Path, n: int, rounds: int):
        options = ExpertIterationConfig(n=n, rounds=rounds, temperature=0.9)
        self.config = SimpleNamespace(options={"expert_iteration": options}, sft=SFTConfig(epochs=2))
        self.splits = {"unlabeled": {"instruction": ["q1", "q2"]}}
        self.seed = 1
        self.tmp_path = tmp_path
        self.calls: list[tuple] = []

    def sft(self) -> Path:
        return Path("sft")

    def reward_model(self) -> Path:
        return Path("rm")

    def sample(self, policy, instructions, n, temperature, name="samples", training=False):
        assert training, "the samples expert iteration fine-tunes on count in its training time"
        self.calls.append(("sample", str(policy), n, temperature, name))
        return [SAMPLES[str(policy)][x][:n] for x in instructions]

    def score(self, reward_model, instructions, outputs):
        self.calls.append(("score", str(reward_model), len(outputs)))
        return [float(y.split()[-1]) for y in outputs]

    def stage(self, name, inputs, build, collective=False) -> Path:
        number = sum(call[0] == "stage" for call in self.calls) + 1
        self.calls.append(("stage", name, inputs["init"], collective))
        build(self.tmp_path / f"{name}-{number}")
        return Path(f"{name}-{number}")


@pytest.fixture
def fine_tuned(monkeypatch):
    """Every train_sft call, as (init, demonstrations, cfg, out, seed), instead of training."""
    calls = []
    monkeypatch.setattr(harness.trainers.sft, "train_sft",
                        lambda init, data, cfg, out, seed: calls.append((init, data.to_list(), cfg, out, seed)))
    return calls


def test_one_round_fine_tunes_sft_on_the_reward_models_favourites(tmp_path, fine_tuned):
    ctx = FakeContext(tmp_path, n=3, rounds=1)
    trained = ExpertIteration().train(ctx)
    assert ctx.calls[:2] == [("sample", "sft", 3, 0.9, "expert_iteration_samples"), ("score", "rm", 6)]
    [(init, demonstrations, cfg, out, seed)] = fine_tuned
    assert (init, cfg, out, seed) == (Path("sft"), ctx.config.sft, tmp_path / "expert_iteration-1", 1)
    # q1: "b 5" scores highest; q2: "d 2" and "e 2" tie and the first wins
    assert demonstrations == [{"instruction": "q1", "output": "b 5"}, {"instruction": "q2", "output": "d 2"}]
    assert ("stage", "expert_iteration", Path("sft"), True) in ctx.calls
    assert (trained.method, trained.policy, trained.reward_model) == ("expert_iteration",
                                                                      Path("expert_iteration-1"), Path("rm"))
    assert trained.diagnostics == {"n": 3, "rounds": 1, "round_1_chosen_reward": 3.5}


def test_round_two_samples_round_ones_policy_and_fine_tunes_from_sft_again(tmp_path, fine_tuned):
    ctx = FakeContext(tmp_path, n=2, rounds=2)
    trained = ExpertIteration().train(ctx)
    samples = [call for call in ctx.calls if call[0] == "sample"]
    assert samples == [("sample", "sft", 2, 0.9, "expert_iteration_samples"),
                       ("sample", "expert_iteration-1", 2, 0.9, "expert_iteration_samples")]
    assert [call[0] for call in fine_tuned] == [Path("sft"), Path("sft")]
    # round 2, n = 2 of round 1's policy: q1 "g 0", "h 1" -> "h 1"; q2 "j 7", "k 8" -> "k 8"
    assert fine_tuned[1][1] == [{"instruction": "q1", "output": "h 1"}, {"instruction": "q2", "output": "k 8"}]
    assert trained.policy == Path("expert_iteration-2")
    assert trained.diagnostics["round_2_chosen_reward"] == pytest.approx(4.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "expert_iteration.n: got 0; allowed: a number > 0"),
    ({"rounds": 1.5}, "expert_iteration.rounds: got 1.5; allowed: an integer"),
    ({"temperature": 0.0}, "expert_iteration.temperature: got 0.0; allowed: a number > 0"),
])
def test_config_rejects_bad_values_and_documents_every_field(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build(ExpertIterationConfig, kwargs, "expert_iteration")
    assert all(f.metadata.get("help") for f in ExpertIterationConfig.__dataclass_fields__.values())
