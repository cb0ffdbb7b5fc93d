"""RLP-UML: view pairs, pooling and the auxiliary loss on a tiny random reward model (methods/rlp_uml.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

from harness.core.chat import conversation_text
from harness.core.schema import build
from harness.core.types import PPORun, ScoreScale
from harness.trainers.multiview import (
    MultiViewAuxiliaryLoss,
    epoch_batches,
    pool_hidden_states,
    pooled_representation,
)
from methods.rlp_uml import RLPUML, UMLConfig, ViewPair, build_view_pairs

PAIRS = [
    ViewPair("add 2 and 2", "4", "the answer is 4"),
    ViewPair("add 1 and 2", "3", "it is 3, I think"),
    ViewPair("name a colour", "red", "blue is a colour"),
    ViewPair("say hello", "hello", "hello there, friend"),
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE of a few hundred tokens with a chat template, like the tiny preset's own."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([" ".join(p) for p in PAIRS], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    )
    return tok


def tiny_reward_model(tokenizer) -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, num_labels=1,
    )
    return LlamaForSequenceClassification(config)


def small_config(**overrides) -> UMLConfig:
    return UMLConfig(**{"latent_dim": 4, "hidden_dim": 16, "batch_size": 2, "max_length": 64, **overrides})


# --- view pairs -----------------------------------------------------------------------------------------------


def test_view_pairs_are_distinct_deterministic_and_skip_all_identical_instructions():
    instructions = ["a", "b", "c", "d"]
    samples = [["x", "x", "y"], ["z", " z", "z\n"], ["p", "q", "r"], ["only one"]]
    pairs = build_view_pairs(instructions, samples, seed=3)
    # "b" differs only by surrounding whitespace, so it has no distinct pair; "d" has a single sample.
    assert [p.instruction for p in pairs] == ["a", "c"]
    assert all(p.output_1.strip() != p.output_2.strip() for p in pairs)
    assert {pairs[0].output_1, pairs[0].output_2} == {"x", "y"}  # the only distinct texts of "a"
    assert pairs == build_view_pairs(instructions, samples, seed=3)


def test_identical_views_keep_uses_the_first_two_samples():
    pairs = build_view_pairs(["b", "d"], [["z", "z", "z"], ["only one"]], seed=0, identical_views="keep")
    assert pairs == [ViewPair("b", "z", "z")]


def test_view_pairs_follow_how_often_the_policy_produced_each_output():
    # Samples x, x, x, y, z: of the 7 index pairs with different texts, 3 are (x, y), 3 are (x, z), 1 is (y, z).
    # Over 700 seeds (y, z) is expected 100 times (binomial sd ~9); picking among distinct *texts* would give 233.
    counts = Counter()
    for seed in range(700):
        (pair,) = build_view_pairs(["i"], [["x", "x", "x", "y", "z"]], seed=seed)
        counts[frozenset((pair.output_1, pair.output_2))] += 1
    print(f"view-pair frequencies over 700 seeds: {dict((''.join(sorted(k)), v) for k, v in counts.items())}")
    assert 70 < counts[frozenset("yz")] < 130
    assert counts[frozenset("xy")] > 200 and counts[frozenset("xz")] > 200


def test_view_pairs_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="same length"):
        build_view_pairs(["a", "b"], [["x", "y"]], seed=0)
    with pytest.raises(ValueError, match="identical_views"):
        build_view_pairs(["a"], [["x", "y"]], seed=0, identical_views="drop")


def test_epoch_batches_never_repeat_an_item_within_a_batch_and_are_seeded():
    # 5 items in batches of 2: two batches per epoch, one item left out of each epoch.
    stream = epoch_batches(5, 2, seed=1)
    batches = [next(stream) for _ in range(10)]
    assert all(len(b) == 2 and b[0] != b[1] for b in batches)
    for epoch in range(5):
        assert len(set(batches[2 * epoch] + batches[2 * epoch + 1])) == 4
    again = epoch_batches(5, 2, seed=1)
    assert batches == [next(again) for _ in range(10)]


# --- config ---------------------------------------------------------------------------------------------------


def test_config_defaults_follow_the_paper():
    config = UMLConfig()
    assert (config.weight, config.latent_dim, config.estimator, config.skl_weight) == (0.5, 64, "jsd", 1.0)


@pytest.mark.parametrize(
    "field, value",
    [
        ("estimator", "mine"),
        ("skl_estimator", "exact"),
        ("pooling", "first"),
        ("identical_views", "drop"),
        ("weight", 0.0),
        ("skl_weight", -0.1),
        ("batch_size", 1),
        ("latent_dim", 0),
        ("max_length", 2.5),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"uml.{field}"):
        build(UMLConfig, {field: value}, "uml")


# --- pooling --------------------------------------------------------------------------------------------------


def test_pool_hidden_states_by_hand():
    hidden = torch.arange(12.0).reshape(2, 3, 2)  # (B=2, T=3, H=2): row b, position t holds [6b+2t, 6b+2t+1]
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])  # last non-pad positions 1 and 2
    left = torch.tensor([[0, 1, 1], [0, 0, 1]])  # last non-pad position 2 in both rows
    assert pool_hidden_states(hidden, right, "last").tolist() == [[2.0, 3.0], [10.0, 11.0]]
    assert pool_hidden_states(hidden, left, "last").tolist() == [[4.0, 5.0], [10.0, 11.0]]
    # mean, right padding: row 0 averages positions 0-1 ([0,1], [2,3]) -> [1, 2]; row 1 positions 0-2 -> [8, 9].
    assert pool_hidden_states(hidden, right, "mean").tolist() == [[1.0, 2.0], [8.0, 9.0]]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_last_token_pooling_reads_the_last_real_token_of_a_padded_batch(tokenizer, padding_side, monkeypatch):
    model = tiny_reward_model(tokenizer).eval()
    monkeypatch.setattr(tokenizer, "padding_side", padding_side)
    texts = [conversation_text(tokenizer, p.instruction, p.output_2) for p in PAIRS[:3]]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert len(set(lengths)) > 1  # the batch really is padded
    with torch.no_grad():
        pooled = pooled_representation(model, tokenizer, texts, "last", max_length=128)
        batch = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
        hidden = model.model(**batch).last_hidden_state
        for i, text in enumerate(texts):
            # Manual index: right padding puts the last real token at length - 1, left padding at the end.
            index = lengths[i] - 1 if padding_side == "right" else hidden.shape[1] - 1
            assert torch.allclose(pooled[i], hidden[i, index])
            # And it is the representation of the same text run alone (RoPE makes left padding shift-invariant).
            alone = model.model(**tokenizer(text, add_special_tokens=False, return_tensors="pt")).last_hidden_state
            assert torch.allclose(pooled[i], alone[0, -1], atol=1e-5)


# --- the auxiliary loss ---------------------------------------------------------------------------------------


def test_auxiliary_loss_is_finite_and_its_gradient_reaches_the_backbone(tokenizer):
    model = tiny_reward_model(tokenizer)
    auxiliary = MultiViewAuxiliaryLoss(PAIRS, small_config(), in_dim=16, seed=0)
    assert auxiliary.weight == 0.5
    loss, metrics = auxiliary(model, tokenizer)
    assert torch.isfinite(loss)
    assert set(metrics) == {"mib_loss", "mi", "skl"}
    assert metrics["mib_loss"] == pytest.approx(-metrics["mi"] + metrics["skl"], abs=1e-5)
    loss.backward()
    for name in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.score.weight.grad is None  # the MIB reads the backbone, not the reward head
    assert all(p.grad is not None for p in auxiliary.parameters())


def test_auxiliary_loss_steps_move_the_backbone(tokenizer):
    # What the reward trainer does with it: its parameters and the backbone's in one optimiser.
    model = tiny_reward_model(tokenizer)
    auxiliary = MultiViewAuxiliaryLoss(PAIRS, small_config(), in_dim=16, seed=0)
    optimiser = torch.optim.Adam([*model.parameters(), *auxiliary.parameters()], lr=1e-2)
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    for _ in range(3):
        loss, _ = auxiliary(model, tokenizer)
        optimiser.zero_grad()
        (auxiliary.weight * loss).backward()
        optimiser.step()
    assert not torch.equal(before, model.model.layers[0].mlp.up_proj.weight)


def test_auxiliary_loss_heads_are_seeded():
    first = MultiViewAuxiliaryLoss(PAIRS, small_config(), in_dim=16, seed=7)
    second = MultiViewAuxiliaryLoss(PAIRS, small_config(), in_dim=16, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


def test_auxiliary_loss_needs_two_pairs():
    with pytest.raises(ValueError, match="at least 2 view pairs"):
        MultiViewAuxiliaryLoss(PAIRS[:1], small_config(), in_dim=16)


def test_cache_key_follows_pairs_and_config():
    key = MultiViewAuxiliaryLoss(PAIRS, small_config(), in_dim=16).cache_key()
    json.dumps(key)  # the stage cache stores it as JSON
    assert key == MultiViewAuxiliaryLoss(list(PAIRS), small_config(), in_dim=16).cache_key()
    changed = [PAIRS[0]._replace(output_2="5"), *PAIRS[1:]]
    assert MultiViewAuxiliaryLoss(changed, small_config(), in_dim=16).cache_key() != key
    assert MultiViewAuxiliaryLoss(PAIRS, small_config(estimator="infonce"), in_dim=16).cache_key() != key


# --- the method's flow, against a recording fake context ------------------------------------------------------


CURVE = [{"step": 0, "bt_loss": 0.69, "mib_loss": 1.2, "mi": 0.1, "skl": 0.3},
         {"step": 1, "bt_loss": 0.65, "mib_loss": 0.9, "mi": 0.3, "skl": 0.2}]


class FakeContext:
    """Records the stages RLP-UML asks for; the SFT 'checkpoint' is only a model config."""

    def __init__(self, root: Path):
        self.config = SimpleNamespace(options={"uml": small_config()})
        self.seed = 0
        self.calls: list[tuple] = []
        self.root, self.sft_path = root, root / "sft"
        LlamaConfig(hidden_size=16, num_attention_heads=2).save_pretrained(self.sft_path)

    def sft(self) -> Path:
        return self.sft_path

    def reward_model(self, extra_pairs=None, auxiliary=None) -> Path:
        self.calls.append(("reward_model", auxiliary))
        if auxiliary is None:
            return Path("rm")
        stage = self.root / "rm_refined"  # the reward stage records the auxiliary loss's curve
        stage.mkdir(exist_ok=True)
        (stage / "auxiliary_curve.json").write_text(json.dumps(CURVE))
        return stage

    def ppo(self, init: Path, reward_model: Path) -> PPORun:
        self.calls.append(("ppo", init, reward_model))
        # the refined reward model spreads the SFT policy's samples 3x as wide as the original (mean, std)
        scale = ScoreScale(0.5, 0.9) if reward_model.name == "rm_refined" else ScoreScale(0.1, 0.3)
        return PPORun(policy=Path(f"policy_{reward_model}"), reward_model=reward_model, checkpoints=(),
                      score_scale=scale)

    def policy_samples(self, policy: Path):
        self.calls.append(("policy_samples", policy))
        return ["a", "b", "c"], [["x", "y"], ["z", "z"], ["p", "q"]]

    def log(self, message: str) -> None:
        self.calls.append(("log", message))


def test_rlp_uml_retrains_the_reward_model_and_restarts_ppo_from_sft(tmp_path):
    ctx = FakeContext(tmp_path)
    trained = RLPUML().train(ctx)
    stages = [c for c in ctx.calls if c[0] != "log"]
    assert stages[:3] == [
        ("reward_model", None),
        ("ppo", ctx.sft_path, Path("rm")),
        ("policy_samples", Path("policy_rm")),
    ]
    auxiliary = stages[3][1]
    assert isinstance(auxiliary, MultiViewAuxiliaryLoss) and auxiliary.in_dim == 16
    assert [p.instruction for p in auxiliary.pairs] == ["a", "c"]  # "b" has only identical samples
    refined = tmp_path / "rm_refined"
    assert stages[4] == ("ppo", ctx.sft_path, refined)  # the new PPO starts again from SFT
    assert trained.method == "rlp_uml"
    assert (trained.policy, trained.reward_model) == (Path(f"policy_{refined}"), refined)
    assert trained.refinement.policy == Path("policy_rm") and trained.refinement.instructions == {"a", "b", "c"}
    # the MIB loss curve the reward stage recorded is kept per seed, for the report's figure
    assert trained.diagnostics == {"view_pairs": 2, "instructions": 3, "instructions_without_pair": 1,
                                   "mib_curve": CURVE, "score_spread_vs_r": pytest.approx(3.0)}
