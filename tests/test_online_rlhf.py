"""Online RLHF, the positive control (methods/online_rlhf.py): its pairs come from the first PPO policy's samples
and carry the training annotator's labels, measured against the tiny world's real annotators."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.core.errors import ConfigError
from harness.core.schema import build
from harness.core.types import PPORun, Preference
from harness.suites.tiny import TinySuite, TinyWorldConfig
from harness.suites.tiny.world import build_splits, parse_instruction, respond
from methods.online_rlhf import OnlineRLHF, OnlineRLHFConfig, OnlineRLHFGold, online_pairs


def world_samples(n_instructions: int, n: int) -> tuple[list[str], list[list[str]]]:
    """Tiny-world instructions with n responses each, right half the time, some evasive, some padded: a policy's
    samples whose pairs gold often ranks."""
    config = TinyWorldConfig(unlabeled_size=n_instructions, sft_size=6, preference_size=6, val_size=6)
    instructions = [r["instruction"] for r in build_splits(config)["unlabeled"]]
    rng = random.Random(0)
    samples = [[respond(parse_instruction(x), rng, correct_prob=0.5, pad_prob=0.3, evasive_prob=0.2)
                for _ in range(n)] for x in instructions]
    return instructions, samples


class FakeContext:
    """The tiny suite's real annotators; every stage recorded; the first PPO policy's samples fixed."""

    def __init__(self, config: OnlineRLHFConfig, instructions: list[str], samples: list[list[str]]):
        self.config = SimpleNamespace(options={"online_rlhf": config})
        self.suite = TinySuite(TinyWorldConfig())
        self.seed = 0
        self.instructions, self.samples = instructions, samples
        self.calls: list[tuple] = []
        self.extra_pairs = None
        self.logs: list[str] = []

    def sft(self) -> Path:
        return Path("sft")

    def reward_model(self, extra_pairs=None, auxiliary=None) -> Path:
        self.calls.append(("reward_model", extra_pairs is not None))
        if extra_pairs is None:
            return Path("rm")
        self.extra_pairs = extra_pairs
        return Path("rm-online")

    def ppo(self, init: Path, reward_model: Path) -> PPORun:
        self.calls.append(("ppo", init.name, reward_model.name))
        return PPORun(policy=Path(f"ppo-{reward_model.name}"), reward_model=reward_model, checkpoints=())

    def policy_samples(self, policy: Path):
        self.calls.append(("policy_samples", policy.name))
        return self.instructions, self.samples

    def labelled_pairs(self, split: str) -> list:
        assert split == "preference"
        return [{}] * 1000  # D

    def log(self, message: str) -> None:
        self.logs.append(message)


def test_pairs_are_disjoint_different_samples_in_order():
    instructions = ["a", "b", "c"]
    samples = [["x", "x ", "y", "z", "x", "w"], ["same", "same", "same"], ["p", "q", "r"]]
    # a: "x" pairs with "y" (the first that differs once stripped), then "x " with "z", then "x" with "w"
    assert online_pairs(instructions, samples, 3) == [("a", "x", "y"), ("a", "x ", "z"), ("a", "x", "w"),
                                                      ("c", "p", "q")]
    assert online_pairs(instructions, samples, 1) == [("a", "x", "y"), ("c", "p", "q")]  # b: only one text
    with pytest.raises(ValueError, match="same length"):
        online_pairs(instructions, samples[:2], 1)


def test_pairs_come_from_the_first_ppo_policy_and_carry_the_training_annotators_labels():
    instructions, samples = world_samples(600, 4)
    ctx = FakeContext(OnlineRLHFConfig(pairs_per_instruction=2), instructions, samples)
    trained = OnlineRLHF().train(ctx)
    assert ctx.calls == [
        ("reward_model", False),
        ("ppo", "sft", "rm"),
        ("policy_samples", "ppo-rm"),  # the first PPO policy's sample set, the one RLP reads
        ("reward_model", True),  # D plus the new pairs, as RLP-SPG retrains it
        ("ppo", "sft", "rm-online"),  # the second PPO starts again from SFT
    ]
    assert (trained.method, trained.policy, trained.reward_model) == ("online_rlhf", Path("ppo-rm-online"),
                                                                      Path("rm-online"))
    assert trained.refinement.policy == Path("ppo-rm") and trained.refinement.instructions == set(instructions)

    pairs = ctx.extra_pairs.to_dict()
    by_instruction = dict(zip(instructions, samples))
    for x, a, b in zip(pairs["instruction"], pairs["output_1"], pairs["output_2"]):
        assert a in by_instruction[x] and b in by_instruction[x] and a != b
    labels = ctx.suite.training_annotator().annotate(pairs["instruction"], pairs["output_1"], pairs["output_2"])
    assert pairs["preference"] == labels

    # The training annotator flips 25% of gold's decisive labels: measured on the pairs, not taken on trust.
    gold = ctx.suite.gold_annotator().annotate(pairs["instruction"], pairs["output_1"], pairs["output_2"])
    decisive = [(label, g) for label, g in zip(pairs["preference"], gold) if g != Preference.TIE]
    flip_rate = sum(label != g for label, g in decisive) / len(decisive)
    print(f"\n{len(pairs['preference'])} pairs, {len(decisive)} gold-decisive, flip rate {flip_rate:.3f}")
    assert len(decisive) >= 300 and 0.19 <= flip_rate <= 0.31  # 0.25 within about 2.5 standard errors

    d = trained.diagnostics
    json.dumps(d)  # the pipeline stores it as JSON
    assert d["n_instructions"] == 600 and d["n_pairs"] == len(pairs["preference"])
    assert d["share_of_reward_data"] == pytest.approx(d["n_pairs"] / (1000 + d["n_pairs"]))
    assert d["gold_agreement"]["accuracy"] == pytest.approx(1 - flip_rate)
    assert d["gold_tie_share"] == pytest.approx(1 - len(decisive) / d["n_pairs"])
    assert 0 <= d["chosen_longer_share"] + d["chosen_shorter_share"] <= 1


def test_without_a_pair_the_refined_reward_model_is_the_original():
    ctx = FakeContext(OnlineRLHFConfig(), ["q"], [["same", "same"]])
    trained = OnlineRLHF().train(ctx)
    assert ctx.calls[-2:] == [("reward_model", False), ("ppo", "sft", "rm")]
    assert trained.diagnostics["n_pairs"] == 0 and trained.diagnostics["gold_tie_share"] is None


@pytest.mark.parametrize("value", [0, -1])
def test_config_rejects_bad_values_naming_the_field(value):
    with pytest.raises(ConfigError, match="online_rlhf.pairs_per_instruction"):
        build(OnlineRLHFConfig, {"pairs_per_instruction": value}, "online_rlhf")


def test_gold_labels_keep_only_the_pairs_gold_decides_with_golds_label():
    instructions, samples = world_samples(300, 4)
    ctx = FakeContext(OnlineRLHFConfig(pairs_per_instruction=2), instructions, samples)
    ctx.config.options["online_rlhf_gold"] = ctx.config.options.pop("online_rlhf")
    trained = OnlineRLHFGold().train(ctx)
    pairs = ctx.extra_pairs.to_dict()
    triples = online_pairs(instructions, samples, 2)
    gold = ctx.suite.gold_annotator().annotate(*map(list, zip(*triples)))
    decisive = [(t, g) for t, g in zip(triples, gold) if g != Preference.TIE]
    assert 100 <= len(decisive) < len(triples)  # some ties dropped, many pairs kept
    assert list(zip(pairs["instruction"], pairs["output_1"], pairs["output_2"])) == [t for t, _ in decisive]
    assert pairs["preference"] == [g for _, g in decisive]
    d = trained.diagnostics
    assert d["n_pairs"] == len(decisive) and d["gold_agreement"]["accuracy"] == 1.0 and d["gold_tie_share"] == 0
    assert trained.method == "online_rlhf_gold" and "labelled by gold (ties dropped)" in ctx.logs[-1]
