"""DPO (methods/dpo.py): the method asks the context for the right stage, and TRL's DPOTrainer, fed the preference
split's decided pairs with the winner as chosen, widens the policy's margin between chosen and rejected."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import re

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

import harness.trainers.dpo
from harness.cache import fingerprint
from harness.core.chat import conversation
from harness.core.schema import build
from harness.trainers.dpo import train_dpo
from methods.dpo import DPO, DPOConfig


class FakeContext:
    """Hands out fixed stage paths and the labelled pairs, and records every stage it is asked for."""

    def __init__(self, tmp_path: Path, pairs: Dataset):
        self.config = SimpleNamespace(options={"dpo": DPOConfig(beta=0.2)})
        self.pairs = pairs
        self.seed = 3
        self.tmp_path = tmp_path
        self.stages: list[tuple] = []

    def sft(self) -> Path:
        return Path("sft")

    def reward_model(self) -> Path:
        return Path("rm")

    def labelled_pairs(self, split: str) -> Dataset:
        assert split == "preference"
        return self.pairs

    def stage(self, name, inputs, build, collective=False) -> Path:
        self.stages.append((name, inputs, collective))
        build(self.tmp_path / name)
        return Path(f"{name}-key")


def test_dpo_is_a_cached_training_stage_from_sft_on_the_preference_labels(tmp_path, monkeypatch, word_pairs):
    calls = []
    monkeypatch.setattr(harness.trainers.dpo, "train_dpo", lambda *args: calls.append(args))
    ctx = FakeContext(tmp_path, word_pairs)
    trained = DPO().train(ctx)
    [(name, inputs, collective)] = ctx.stages
    assert (name, collective) == ("dpo", True)
    assert inputs == {"init": Path("sft"), "dpo": {"beta": 0.2, "learning_rate": 1e-4, "epochs": 1.0,
                                                    "batch_size": 32, "max_length": 128},
                      "data": fingerprint(word_pairs.to_list())}
    [(init, pairs, cfg, out, seed)] = calls
    assert (init, pairs, cfg, out, seed) == (Path("sft"), word_pairs, ctx.config.options["dpo"], tmp_path / "dpo",
                                             3)
    assert (trained.method, trained.policy, trained.reward_model, trained.ppo) == ("dpo", Path("dpo-key"),
                                                                                    Path("rm"), None)


def response_logprob(model, tokenizer, instruction: str, output: str) -> float:
    """log p(output | instruction) under ``model``, in the chat format the trainers use."""
    prompt = tokenizer.apply_chat_template(conversation(instruction), add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(conversation(instruction, output), tokenize=False)
    prompt_len = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    ids = torch.tensor([tokenizer(full, add_special_tokens=False).input_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
    targets = ids[0, 1:]
    return logprobs[prompt_len - 1:].gather(-1, targets[prompt_len - 1:, None]).sum().item()


def margins(model_dir: Path, pairs: list[dict]) -> list[float]:
    """log p(chosen) - log p(rejected) for each decided pair."""
    model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    result = []
    for row in pairs:
        first = response_logprob(model, tokenizer, row["instruction"], row["output_1"])
        second = response_logprob(model, tokenizer, row["instruction"], row["output_2"])
        result.append(first - second if row["preference"] == 1.0 else second - first)
    return result


def test_dpo_drops_ties_orders_chosen_by_the_label_and_widens_the_margin(models_dir, tmp_path,
                                                                         monkeypatch, word_pairs):
    seen = []

    class RecordingTrainer(harness.trainers.dpo.DPOTrainer):
        def __init__(self, *args, train_dataset, **kwargs):
            seen.append(train_dataset)
            super().__init__(*args, train_dataset=train_dataset, **kwargs)

    monkeypatch.setattr(harness.trainers.dpo, "DPOTrainer", RecordingTrainer)
    cfg = DPOConfig(beta=0.1, learning_rate=3e-3, epochs=4, batch_size=4, max_length=64)
    train_dpo(models_dir / "policy", word_pairs, cfg, tmp_path / "dpo", seed=0)

    [data] = seen
    assert len(data) == 12  # the 4 ties (1.5) carry no preference
    # row 2 of word_pairs prefers its second output: "yes yes" is chosen, "no" rejected
    assert data[1]["chosen"] == [{"role": "assistant", "content": "yes yes"}]
    assert data[1]["rejected"] == [{"role": "assistant", "content": "no"}]
    decided = [row for row in word_pairs.to_list() if row["preference"] != 1.5]
    before, after = margins(models_dir / "policy", decided), margins(tmp_path / "dpo", decided)
    print(f"\nmean log-prob margin chosen - rejected: {sum(before) / 12:.3f} before DPO, {sum(after) / 12:.3f} after")
    assert sum(after) / 12 > sum(before) / 12 + 1.0
    assert not (tmp_path / "dpo" / "trainer").exists()  # a plain HF dir, as every stage saves


@pytest.mark.parametrize("field", ["beta", "learning_rate", "epochs", "batch_size", "max_length"])
def test_config_rejects_a_non_positive_value_and_documents_every_field(field):
    with pytest.raises(ValueError, match=rf"^dpo\.{field}: got 0(\.0)?; allowed: a number > 0$"):
        build(DPOConfig, {field: 0}, "dpo")
    assert all(f.metadata.get("help") for f in DPOConfig.__dataclass_fields__.values())
