"""Judges behind one interface: alpaca_eval configs (keys checked before a run), the local judge, the factory."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from alpaca_eval import constants as alpaca_eval_constants
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.annotators import (
    AlpacaEvalAnnotator,
    JudgeNotReadyError,
    LocalLikelihoodJudge,
    local_judge,
    make_annotator,
    required_api_keys,
)
from harness.annotators.alpaca_eval_judge import from_alpaca_eval_preference
from harness.annotators.local_judge import LocalJudgeConfig, fill_template, read_template, verdict
from harness.core.types import Preference
from harness.evals.winrate import judge_against_reference, win_rate_metrics

FAKE_KEY = "sk-test-DO-NOT-LOG-4242"
VERDICTS = (Preference.FIRST, Preference.TIE, Preference.SECOND)


@pytest.fixture
def no_openai_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    assert not alpaca_eval_constants.OPENAI_CLIENT_CONFIG_PATH.is_file()  # a client config would hold keys too


@pytest.mark.parametrize(
    "config, keys",
    [
        ("alpaca_farm_greedy_gpt4", ("OPENAI_API_KEY",)),
        ("alpaca_farm", ("OPENAI_API_KEY",)),  # a pool of 13 members, all OpenAI
        ("weighted_alpaca_eval_gpt4_turbo", ("OPENAI_API_KEY",)),
        ("claude", ("ANTHROPIC_API_KEY",)),
        ("oasst_pythia_12b", ()),  # huggingface_local_completions: runs locally
    ],
)
def test_required_api_keys_are_read_from_the_config(config, keys):
    assert required_api_keys(config) == keys


def test_missing_api_key_fails_before_any_work_and_the_key_never_shows(no_openai_key, monkeypatch):
    judge = AlpacaEvalAnnotator("alpaca_farm_greedy_gpt4")
    with pytest.raises(JudgeNotReadyError, match="OPENAI_API_KEY") as error:
        judge.check_ready()
    message = str(error.value)
    assert "alpaca_farm_greedy_gpt4" in message and "\n" not in message
    assert isinstance(error.value, ValueError)  # the pipeline turns ValueErrors into one-line config errors

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    judge.check_ready()
    assert FAKE_KEY not in repr(judge) and FAKE_KEY not in str(vars(judge))


def test_the_plural_openai_variable_alpaca_eval_reads_counts_too(no_openai_key, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEYS", f"{FAKE_KEY},{FAKE_KEY}2")
    AlpacaEvalAnnotator("alpaca_farm").check_ready()


def test_missing_package_is_reported_by_name():
    # alpaca_eval's huggingface_local_completions imports peft, which this project does not install.
    with pytest.raises(JudgeNotReadyError, match="peft"):
        AlpacaEvalAnnotator("oasst_pythia_12b").check_ready()


def test_unknown_config_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="alpaca_farm_greedy_gpt4"):
        AlpacaEvalAnnotator("gpt5_judge")


def _fake_config(tmp_path, answer: str):
    """An alpaca_eval annotator config whose completion function always answers ``answer`` (no API)."""
    prompt = alpaca_eval_constants.EVALUATORS_CONFIG_DIR / "text_davinci_003" / "basic_prompt.txt"
    config = {
        "fixed_answer": {
            "prompt_template": str(prompt),
            "fn_completions": "test_completions",
            "completions_kwargs": {"value": answer},
            "completion_parser_kwargs": {"outputs_to_match": {1: r"Output \(a\)", 2: r"Output \(b\)"}},
            "is_randomize_output_order": False,
            "batch_size": 1,
        }
    }
    path = tmp_path / "fixed_answer" / "configs.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config))
    return path


def test_alpaca_eval_verdicts_come_back_in_order_as_ours(tmp_path):
    judge = AlpacaEvalAnnotator(_fake_config(tmp_path, "Output (b)"))
    judge.check_ready()  # test_completions needs nothing
    preferences = judge.annotate(["q1", "q2", "q3"], ["a", "same", "c"], ["b", "same", "d"])
    assert preferences == [Preference.SECOND, Preference.TIE, Preference.SECOND]  # identical outputs: a tie
    assert judge.name == "fixed_answer"


def test_unparseable_alpaca_eval_answers_become_nan(tmp_path):
    preferences = AlpacaEvalAnnotator(_fake_config(tmp_path, "I cannot decide")).annotate(["q"], ["a"], ["b"])
    assert len(preferences) == 1 and math.isnan(preferences[0])


def test_alpaca_eval_preference_mapping():
    assert from_alpaca_eval_preference(0) == Preference.TIE  # alpaca_eval's old encoding of a tie
    assert from_alpaca_eval_preference(1.73) == 1.73  # weighted judges keep their soft verdict
    assert math.isnan(from_alpaca_eval_preference(None))


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory):
    """A randomly initialised 2-layer LLaMA and a 300-token byte-level BPE tokenizer with a chat template."""
    path = tmp_path_factory.mktemp("tiny_judge")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(["Which is best, Output (a) or Output (b)? Instruction"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = "{% for m in messages %}<s>[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_local_judge_gives_one_verdict_per_item(tiny_judge_dir):
    judge = local_judge(tiny_judge_dir, batch_size=2)
    judge.check_ready()
    preferences = judge.annotate(
        ["Say hi.", "2+2?", "Name a colour.", "Same?", "Braces {output_2}"],
        ["hi", "4", "red", "yes", "{instruction}"],
        ["hello there", "5", "blue", "yes", "{}"],
    )
    assert len(preferences) == 5 and all(p in VERDICTS for p in preferences)
    assert preferences[3] == Preference.TIE  # identical outputs


def test_local_judge_scores_do_not_depend_on_batching(tiny_judge_dir):
    # Left padding and explicit position ids must leave each prompt's answer log-likelihoods unchanged.
    judge = local_judge(tiny_judge_dir, batch_size=3)
    prompts = ["short", "a much longer prompt, with many more words to pad the others", "mid length prompt"]
    batched = judge.answer_logprobs(prompts)
    alone = [judge.answer_logprobs([p])[0] for p in prompts]
    assert torch.allclose(torch.tensor(batched), torch.tensor(alone), atol=1e-5)
    assert all(a != b for a, b in batched)


def test_local_judge_uses_the_chat_template_when_asked(tiny_judge_dir):
    prompt = ["Which is best?"]
    with_template = local_judge(tiny_judge_dir).answer_logprobs(prompt)
    without = local_judge(tiny_judge_dir, use_chat_template=False).answer_logprobs(prompt)
    assert with_template != without


def test_local_judge_through_judge_against_reference(tiny_judge_dir):
    references = ["REF one", "REF two", "REF three", "REF four"]
    records = judge_against_reference(local_judge(tiny_judge_dir), ["a", "b", "c", "d"], ["x", "y", "z", "w"],
                                      references, seed=0)
    metrics = win_rate_metrics([r["preference_vs_reference"] for r in records], [1] * 4, [7] * 4)
    assert metrics["n_total"] == 4 and 0 <= metrics["win_rate"] <= 100


def test_verdict_is_the_likelier_answer():
    assert verdict(-1.0, -2.0) == Preference.FIRST
    assert verdict(-2.0, -1.0) == Preference.SECOND
    assert verdict(-1.5, -1.5) == Preference.TIE


def test_fill_template_leaves_braces_in_outputs_alone():
    filled = fill_template("I:{instruction} A:{output_1} B:{output_2}", "x", "{output_2}", "{}")
    assert filled == "I:x A:{output_2} B:{}"


def test_batched_alpaca_eval_templates_are_rejected():
    # alpaca_farm_greedy_gpt4's prompt holds 5 examples per call: the likelihood judge needs a 1-example template.
    with pytest.raises(ValueError, match="exactly once"):
        read_template("alpaca_farm_greedy_gpt4/chatml_b5_without_inputs.txt")


@pytest.mark.parametrize(
    "overrides, message",
    [({"batch_size": 0}, "batch_size: got 0; allowed: a number > 0"),
     ({"dtype": "int8"}, "dtype: got 'int8'; allowed: 'float32', 'bfloat16', 'float16'"),
     ({"verdicts": ("A", "A")}, "verdicts: got ('A', 'A'); allowed: two different non-empty strings"),
     ({"model": ""}, "model: got ''; allowed: a checkpoint dir or a cached hub model name"),
     ({"max_prompt_tokens": 0}, "max_prompt_tokens: got 0; allowed: a number > 0")],
)
def test_local_judge_config_validation(overrides, message):
    with pytest.raises(ValueError) as err:
        LocalJudgeConfig(**{"model": "some/dir", **overrides})
    assert str(err.value) == message


def test_local_judge_with_missing_model_is_not_ready(tmp_path):
    with pytest.raises(JudgeNotReadyError, match="cannot find the judge model"):
        local_judge(tmp_path / "nowhere").check_ready()


class FakeSuite:
    gold = object()

    def gold_annotator(self):
        return self.gold


def test_make_annotator_resolves_every_kind_of_name(tiny_judge_dir):
    suite = FakeSuite()
    assert make_annotator("gold", suite) is suite.gold
    assert make_annotator("alpaca_farm_greedy_gpt4", suite).name == "alpaca_farm_greedy_gpt4"
    local = make_annotator(f"local:{tiny_judge_dir}", suite)
    assert isinstance(local, LocalLikelihoodJudge) and local.config.model == str(tiny_judge_dir)
    for bad in ("gpt5", "local:"):
        with pytest.raises(ValueError, match=rf"^eval.judge: got '{bad}'; allowed: 'gold', 'local:<"):
            make_annotator(bad, suite)
