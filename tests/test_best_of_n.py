"""Best-of-n (methods/best_of_n.py): the method against a fake run context, the reranking, its analytic KL, and
that evaluation answers with the reward model's favourite sample (harness/evals/evaluate.py)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.core.types import Rerank, TrainedPolicy
from harness.evals.evaluate import answers, proxy_reward_and_kl
from methods.best_of_n import BestOfN, BestOfNConfig, best_of_n_kl, pick_best, rerank

# Three samples per instruction; the reward model's score is the number each sample ends with.
SAMPLES = {"q1": ["a 1", "b 5", "c 3"], "q2": ["d 2", "e 2", "f 0"]}


class FakeContext:
    """Samples from SAMPLES (the first n), scores each output by its last word, records every call."""

    def __init__(self, n: int = 3):
        self.config = SimpleNamespace(options={"best_of_n": BestOfNConfig(n=n)},
                                      eval=SimpleNamespace(drift_instructions=2))
        self.splits = {"unlabeled": {"instruction": ["q1", "q2", "q3-not-used"]}}
        self.calls: list[tuple] = []

    def sft(self) -> Path:
        self.calls.append(("sft",))
        return Path("sft")

    def reward_model(self, extra_pairs=None, auxiliary=None) -> Path:
        self.calls.append(("reward_model",))
        return Path("rm")

    def sample(self, policy, instructions, n, temperature, name="samples"):
        self.calls.append(("sample", policy.name, n, temperature, name))
        return [SAMPLES[x][:n] for x in instructions]

    def score(self, reward_model, instructions, outputs):
        self.calls.append(("score", reward_model.name, len(outputs)))
        return [float(y.split()[-1]) for y in outputs]


def test_train_returns_the_sft_policy_reranked_by_the_shared_reward_model():
    ctx = FakeContext(n=16)
    trained = BestOfN().train(ctx)
    assert ("sft",) in ctx.calls and ("reward_model",) in ctx.calls
    assert not any(call[0] in ("sample", "score") for call in ctx.calls)  # it trains nothing and samples nothing
    assert (trained.method, trained.policy, trained.reward_model) == ("best_of_n", Path("sft"), Path("rm"))
    assert trained.rerank == Rerank(n=16, reward_model=Path("rm")) and trained.ppo is None
    # log 16 - 15/16 = 2.7726 - 0.9375 = 1.8351
    assert trained.diagnostics == {"n": 16, "analytic_kl": pytest.approx(1.8351, abs=1e-4)}


def test_the_analytic_kl_by_hand():
    assert best_of_n_kl(1) == 0.0  # one sample is the policy itself
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)  # 0.1931
    assert best_of_n_kl(64) == pytest.approx(4.1589 - 0.984375, abs=1e-4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n: must be a positive integer"):
            best_of_n_kl(bad)


def test_pick_best_takes_the_highest_score_and_the_first_of_equals():
    chosen, scores = pick_best([["x", "y", "z"], ["u", "v"]], [[0.1, 0.9, 0.5], [2.0, 2.0]])
    assert chosen == ["y", "u"] and scores == [0.9, 2.0]
    with pytest.raises(ValueError, match="instruction 0: 2 samples but 1 scores"):
        pick_best([["x", "y"]], [[1.0]])


def test_rerank_samples_n_once_and_keeps_the_reward_models_favourite():
    ctx = FakeContext()
    chosen, scores = rerank(ctx, Path("sft"), Rerank(3, Path("rm")), ["q1", "q2"], 0.7, name="eval_farm")
    assert chosen == ["b 5", "d 2"] and scores == [5.0, 2.0]
    assert ctx.calls == [("sample", "sft", 3, 0.7, "eval_farm"), ("score", "rm", 6)]  # one batch of 2 x 3 scores


def test_evaluation_answers_with_the_favourite_of_n_and_a_plain_policy_with_its_one_sample():
    ctx = FakeContext()
    reranked = TrainedPolicy("best_of_n", Path("sft"), Path("rm"), rerank=Rerank(2, Path("rm")))
    # n = 2 sees only "a 1", "b 5" and "d 2", "e 2": "b 5" and the first of the tie, "d 2".
    assert answers(ctx, reranked, ["q1", "q2"], 0.7, "eval_farm") == ["b 5", "d 2"]
    plain = TrainedPolicy("sft", Path("sft"), Path("rm"))
    assert answers(ctx, plain, ["q1", "q2"], 0.7, "eval_farm") == ["a 1", "d 2"]


def test_proxy_reward_is_the_mean_score_of_the_chosen_samples_at_the_analytic_kl():
    ctx = FakeContext()
    reranked = TrainedPolicy("best_of_n", Path("sft"), Path("rm"), rerank=Rerank(3, Path("rm")))
    proxy, kl = proxy_reward_and_kl(ctx, reranked)
    # drift_instructions = 2 prompts: q1 -> 5, q2 -> 2; mean 3.5. KL log 3 - 2/3 = 0.4319.
    assert proxy == pytest.approx(3.5) and kl == pytest.approx(math.log(3) - 2 / 3)
    assert ("sample", "sft", 3, 1.0, "proxy_samples") in ctx.calls  # PPO's rollout temperature


def test_config_rejects_a_bad_n_and_documents_its_field():
    for bad in (0, -3, True):
        with pytest.raises(ValueError, match=rf"^n: got {bad!r}; allowed: a number > 0$"):
            BestOfNConfig(n=bad)
    assert BestOfNConfig().n == 16
    assert all(f.metadata.get("help") for f in BestOfNConfig.__dataclass_fields__.values())
