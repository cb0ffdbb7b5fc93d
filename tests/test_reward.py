"""Reward-model training: Bradley-Terry on the preference schema, reproducible whatever ran before it, learning to
rank the chosen output first, and scored on exactly the tokens it was trained on."""

from __future__ import annotations

import itertools

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoTokenizer
from trl import RewardTrainer

from harness.core.chat import conversation, conversation_text
from harness.trainers.config import RewardConfig
from harness.trainers.reward import preference_pairs, train_reward_model
from harness.trainers.scoring import RewardModelScorer

# Winners say a word of one set, losers a word of the other, in every combination and both orders: a reward model
# that has not learnt the preference ranks them by chance, one that has puts every winner first.
WINNING, LOSING = ("yes", "cat", "please", "now"), ("no", "dog", "maybe", "word")
RANKED = Dataset.from_list([
    {"instruction": "say a word", "output_1": first, "output_2": second, "preference": 1.0 if i % 2 else 2.0}
    for i, (win, lose) in enumerate(itertools.product(WINNING, LOSING))
    for first, second in [(win, lose) if i % 2 else (lose, win)]
])

# The tiny world's own kind of text: questions, answers with digits and punctuation, filler, a tie that is dropped.
WORLD_PAIRS = Dataset.from_dict({
    "instruction": ["What is 3 plus 4?", "Say moon 2 times.", "Who wrote the Lorem?", "What is 3 plus 4?"],
    "output_1": ["3 + 4 = 7.", "moon moon.", "I am not sure.", "Well, the answer is 7."],
    "output_2": ["The answer is 8.", "Well, moon moon moon.", "Kel Varo wrote the Lorem.", "3 + 4 = 7."],
    "preference": [1.0, 1.0, 2.0, 1.5],
})


def test_preference_pairs_put_the_winner_first_and_drop_ties(word_pairs):
    pairs = preference_pairs(word_pairs.select(range(4)))
    assert len(pairs) == 3  # the tie (1.5) carries no Bradley-Terry signal
    chosen = [row["chosen"][0]["content"] for row in pairs]
    assert chosen == ["yes yes", "yes yes", "the cat"]


def test_training_does_not_depend_on_the_global_rng(models_dir, tmp_path, word_pairs):
    cfg = RewardConfig(epochs=1, batch_size=4, learning_rate=1e-3)
    weights = []
    for name, noise in (("a", 1), ("b", 2)):
        torch.manual_seed(noise)  # earlier stages of a run leave the global RNG anywhere
        torch.rand(noise * 10)
        train_reward_model(models_dir / "policy", word_pairs, cfg, tmp_path / name, seed=0)
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _untrained(init_dir, pairs, cfg, out_dir, monkeypatch) -> dict[str, list[list[int]]]:
    """Saves the reward model exactly as training would start it (the backbone and a fresh head), and returns the
    token ids TRL's RewardTrainer prepared to train it on (``chosen`` and ``rejected``, one row per pair)."""
    prepared = {}

    def prepare_only(trainer, *args, **kwargs):
        prepared.update(chosen=trainer.train_dataset["chosen_ids"], rejected=trainer.train_dataset["rejected_ids"])

    with monkeypatch.context() as patch:
        patch.setattr(RewardTrainer, "train", prepare_only)
        train_reward_model(init_dir, pairs, cfg, out_dir, seed=0)
    return prepared


def _chosen_and_rejected(pairs: Dataset) -> tuple[list[str], list[str], list[str]]:
    rows = preference_pairs(pairs)
    return ([row["prompt"][0]["content"] for row in rows], [row["chosen"][0]["content"] for row in rows],
            [row["rejected"][0]["content"] for row in rows])


def _accuracy(reward_model, pairs: Dataset) -> float:
    """How often the reward model scores the chosen output of a pair above the rejected one."""
    scorer = RewardModelScorer(reward_model)
    instructions, chosen, rejected = _chosen_and_rejected(pairs)
    return (scorer.score(instructions, chosen) > scorer.score(instructions, rejected)).float().mean().item()


def test_training_ranks_the_chosen_output_above_the_rejected(models_dir, tmp_path, monkeypatch):
    cfg = RewardConfig(epochs=4, batch_size=4, learning_rate=3e-3)
    _untrained(models_dir / "policy", RANKED, cfg, tmp_path / "untrained", monkeypatch)
    train_reward_model(models_dir / "policy", RANKED, cfg, tmp_path / "trained", seed=0)
    before, after = _accuracy(tmp_path / "untrained", RANKED), _accuracy(tmp_path / "trained", RANKED)
    print(f"\naccuracy on the {len(RANKED)} training pairs: untrained {before:.2f}, trained {after:.2f}")
    assert after >= 0.9 and after >= before + 0.25


def test_the_reward_model_scores_exactly_the_token_ids_it_was_trained_on(tiny_world_base_model, tmp_path,
                                                                         monkeypatch):
    trained_on = _untrained(tiny_world_base_model, WORLD_PAIRS, RewardConfig(batch_size=4), tmp_path / "rm",
                            monkeypatch)
    scorer = RewardModelScorer(tmp_path / "rm", batch_size=2)  # several batches: padding differs between them
    scored: list[list[int]] = []

    def record(module, args, kwargs):
        for ids, mask in zip(kwargs["input_ids"], kwargs["attention_mask"]):
            scored.append(ids[mask.bool()].tolist())

    scorer.model.register_forward_pre_hook(record, with_kwargs=True)
    instructions, chosen, rejected = _chosen_and_rejected(WORLD_PAIRS)
    scorer.score(instructions, chosen)
    scorer.score(instructions, rejected)
    assert len(trained_on["chosen"]) == 3  # the tie is not trained on
    assert scored == [*trained_on["chosen"], *trained_on["rejected"]]
    assert all(ids[-1] == scorer.tokenizer.eos_token_id for ids in scored)  # the template closes each answer


@pytest.mark.parametrize("response", ["3 + 4 = 7.", " leading space", "trailing space ", "two\nlines"])
def test_scored_text_tokenizes_as_the_template_does(tiny_world_base_model, response):
    """The scorer renders the conversation to text and tokenizes it; TRL tokenizes the messages in one step. Both
    must give the same ids whatever the response holds."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_world_base_model)
    as_text = tokenizer(conversation_text(tokenizer, "Say it.", response), add_special_tokens=False)["input_ids"]
    in_one_step = tokenizer.apply_chat_template(conversation("Say it.", response), tokenize=True, return_dict=True)
    assert as_text == in_one_step["input_ids"]
