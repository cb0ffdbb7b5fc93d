"""RLP-SPG's train() against a fake run context that records every call (methods/rlp_spg.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.core.schema import build
from harness.core.types import PPORun, Preference
from methods.rlp_spg import RLPSPG, SPGConfig

# Four instructions, five samples each; the canonical answer is the last word.
INSTRUCTIONS = ["q1", "q2", "q3", "q4"]
SAMPLES = [
    ["so 4", "answer 4", "it is 5", "then 4", "maybe 6"],  # clusters 4:{0,1,3} 5:{2} 6:{4} -> c = 0.6, kept
    ["a 1", "b 2", "c 3", "d 4", "e 5"],  # all different -> c = 0.2, dropped
    ["x 9", "y 9", "z 9", "w 9", "v 9"],  # one cluster -> c = 1.0, kept but no pair
    ["x 7", "y 7", "z 8", "w 8", "v 7"],  # clusters 7:{0,1,4} 8:{2,3} -> c = 0.6, kept
]
# Reward-model scores; "it is 5" has q1's best score, but chosen must come from the largest cluster: "answer 4".
SCORES = {
    "so 4": 0.1, "answer 4": 0.9, "it is 5": 2.0, "then 4": 0.5, "maybe 6": -1.0,
    "x 7": 0.0, "y 7": 3.0, "z 8": 0.0, "w 8": 0.0, "v 7": 1.0,
}


class FakeAnnotator:
    """Prefers the output `better(output_1, output_2)` names; None is a tie."""

    def __init__(self, better):
        self.better = better

    def annotate(self, instructions, outputs_1, outputs_2):
        prefs = {True: Preference.FIRST, False: Preference.SECOND, None: Preference.TIE}
        return [prefs[self.better(a, b)] for a, b in zip(outputs_1, outputs_2)]


def gold_better(a: str, b: str) -> bool | None:
    # Right answers are 4 (q1) and 7 (q4); on q4 the gold judge calls it a tie, to exercise tie counting.
    if a.endswith("7") or b.endswith("7"):
        return None
    return a.endswith("4")


def shorter_better(a: str, b: str) -> bool | None:
    # The "training" annotator: prefers the shorter output. q1: "answer 4" (8 chars) loses to "it is 5"/"maybe 6"
    # (7 chars) -> disagrees with the synthetic label; q4: all outputs have 3 chars -> tie.
    return None if len(a) == len(b) else len(a) < len(b)


class FakeContext:
    """Returns fixed paths, samples and scores, and records the order of the stage calls."""

    def __init__(self, spg: SPGConfig, seed: int = 0):
        self.config = SimpleNamespace(options={"spg": spg})
        self.seed = seed
        self.suite = SimpleNamespace(
            canonical_answer=lambda instruction, output: output.split()[-1],
            gold_annotator=lambda: FakeAnnotator(gold_better),
            training_annotator=lambda: FakeAnnotator(shorter_better),
        )
        self.calls: list[tuple] = []
        self.extra_pairs = []
        self.logs: list[str] = []

    def sft(self) -> Path:
        self.calls.append(("sft",))
        return Path("sft")

    def reward_model(self, extra_pairs=None, auxiliary=None) -> Path:
        self.calls.append(("reward_model", extra_pairs is not None))
        self.extra_pairs.append(extra_pairs)
        return Path("rm-refined" if extra_pairs is not None else "rm")

    def ppo(self, init: Path, reward_model: Path) -> PPORun:
        self.calls.append(("ppo", init.name, reward_model.name))
        return PPORun(policy=Path(f"ppo-{reward_model.name}"), reward_model=reward_model, checkpoints=())

    def policy_samples(self, policy: Path):
        self.calls.append(("policy_samples", policy.name))
        return INSTRUCTIONS, SAMPLES

    def labelled_pairs(self, split: str) -> list:
        assert split == "preference"
        return [{}] * 6  # D: six pairs

    def score(self, reward_model: Path, instructions, outputs):
        self.calls.append(("score", reward_model.name, len(outputs)))
        return [SCORES.get(y, 0.0) for y in outputs]

    def log(self, message: str) -> None:
        self.logs.append(message)


def chosen_and_rejected(row: dict) -> tuple[str, str]:
    if row["preference"] == Preference.FIRST:
        return row["output_1"], row["output_2"]
    return row["output_2"], row["output_1"]


def test_train_runs_the_stages_in_order_and_refines_the_reward_model_with_the_synthetic_pairs():
    ctx = FakeContext(SPGConfig())
    result = RLPSPG().train(ctx)
    assert ctx.calls == [
        ("sft",),
        ("reward_model", False),
        ("ppo", "sft", "rm"),
        ("policy_samples", "ppo-rm"),
        # scored by the reward model the first PPO optimised against: only the samples that can be chosen, the
        # largest clusters of the kept instructions (q1: 3, q3: 5, q4: 3), each distinct text once
        ("score", "rm", 11),
        ("reward_model", True),
        ("ppo", "sft", "rm-refined"),  # the second PPO starts again from SFT
    ]
    pairs = ctx.extra_pairs[1]
    assert pairs["instruction"] == ["q1", "q4"]
    (chosen_1, rejected_1), (chosen_4, rejected_4) = (chosen_and_rejected(row) for row in pairs)
    assert chosen_1 == "answer 4" and rejected_1 in {"it is 5", "maybe 6"}
    assert chosen_4 == "y 7" and rejected_4 in {"z 8", "w 8"}
    assert result.method == "rlp_spg"
    assert (result.policy, result.reward_model) == (Path("ppo-rm-refined"), Path("rm-refined"))

    d = result.diagnostics
    json.dumps(d)  # the pipeline stores it as JSON
    assert d["equivalence"] == "exact" and d["confidence_threshold"] == 0.5 and d["n_scored"] == 11
    assert (d["n_instructions"], d["n_accepted"], d["n_pairs"], d["pairs_without_other_cluster"]) == (4, 3, 2, 1)
    assert d["acceptance_rate"] == 0.75
    assert d["share_of_reward_data"] == 2 / (6 + 2)  # two synthetic pairs beside D's six
    # q1: "answer 4" (2 words) against "it is 5" (3) or "maybe 6" (2); q4: "y 7" against "z 8"/"w 8" (2 each)
    assert d["chosen_longer_share"] == 0 and d["chosen_shorter_share"] == (0.5 if rejected_1 == "it is 5" else 0)
    assert result.refinement.policy == Path("ppo-rm") and result.refinement.instructions == set(INSTRUCTIONS)
    assert d["confidence_histogram"] == {"0.2": 1, "0.6": 2, "1.0": 1}
    # Gold: q1 agrees, q4 tie -> 1 of 1 decisive. Training annotator: q1 disagrees, q4 tie -> 0 of 1.
    gold, training = d["pair_accuracy"]["gold"], d["pair_accuracy"]["training"]
    assert (gold["n"], gold["n_ties"], gold["n_agree"], gold["accuracy"]) == (2, 1, 1, 1.0)
    assert (training["n"], training["n_ties"], training["n_agree"], training["accuracy"]) == (2, 1, 0, 0.0)


def test_train_is_deterministic_for_a_seed():
    first, again = FakeContext(SPGConfig(), seed=7), FakeContext(SPGConfig(), seed=7)
    RLPSPG().train(first)
    RLPSPG().train(again)
    assert first.extra_pairs[1].to_dict() == again.extra_pairs[1].to_dict()


def test_reward_ranked_ablation_pairs_highest_with_lowest_score_without_clustering():
    ctx = FakeContext(SPGConfig(pair_rule="reward_ranked"))
    result = RLPSPG().train(ctx)
    pairs = ctx.extra_pairs[1]
    # q1: "it is 5" (2.0) vs "maybe 6" (-1.0); q2, q3: every score 0.0 -> no pair; q4: "y 7" (3.0) vs "x 7" (0.0).
    assert [chosen_and_rejected(row) for row in pairs] == [("it is 5", "maybe 6"), ("y 7", "x 7")]
    assert result.diagnostics["equivalence"] is None and "confidence_histogram" not in result.diagnostics
    assert result.diagnostics["pairs_without_score_gap"] == 2
    assert ("score", "rm", 20) in ctx.calls and result.diagnostics["n_scored"] == 20  # the rule ranks every sample
    # r's favourite "it is 5" has more words than "maybe 6"; "y 7" and "x 7" as many
    assert (result.diagnostics["chosen_longer_share"], result.diagnostics["chosen_shorter_share"]) == (0.5, 0)


def test_a_sample_said_again_is_scored_once():
    ctx = FakeContext(SPGConfig(pair_rule="reward_ranked"))
    ctx.policy_samples = lambda policy: (["q1", "q1"], [["so 4", "so 4", "it is 5"], ["so 4", "maybe 6", "maybe 6"]])
    result = RLPSPG().train(ctx)
    assert ("score", "rm", 3) in ctx.calls and result.diagnostics["n_scored"] == 3  # so 4, it is 5, maybe 6


def test_no_confident_instruction_falls_back_to_the_original_reward_model():
    ctx = FakeContext(SPGConfig(confidence_threshold=1.0))  # only q3 passes, and it has a single cluster: no pair
    result = RLPSPG().train(ctx)
    assert ctx.calls[-2:] == [("reward_model", False), ("ppo", "sft", "rm")]
    assert result.diagnostics["n_pairs"] == 0 and result.diagnostics["pair_accuracy"]["gold"]["accuracy"] is None
    assert any("no synthetic pairs" in line for line in ctx.logs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"confidence_threshold": 1.2}, "spg.confidence_threshold"),
        ({"confidence_threshold": -0.1}, "spg.confidence_threshold"),
        ({"equivalence": "cosine"}, "spg.equivalence"),
        ({"pair_rule": "best_of_n"}, "spg.pair_rule"),
        ({"equivalence": "nli"}, "spg.nli_model_dir"),
        ({"embedding_threshold": 2.0}, "spg.embedding_threshold"),
        ({"batch_size": 0}, "spg.batch_size"),
        ({"cluster_chunk_size": 0}, "spg.cluster_chunk_size"),
        ({"accuracy_annotators": ["gold", "human"]}, "spg.accuracy_annotators"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        build(SPGConfig, overrides, "spg")


def test_config_accepts_yaml_lists_and_documents_every_field():
    assert SPGConfig(accuracy_annotators=["gold"]).accuracy_annotators == ("gold",)
    assert all(f.metadata.get("help") for f in SPGConfig.__dataclass_fields__.values())
