"""The paper-scale ``alpacafarm`` suite on small fixture files in the exact hub schema, its offline failures, its
model preparation and its preset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from alpaca_eval import constants as alpaca_eval_constants
from lm_eval.tasks import TaskManager
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.annotators import AlpacaEvalAnnotator, JudgeNotReadyError, make_annotator
from harness.config import load_preset
from harness.core.errors import ConfigError
from harness.core.types import Preference
from harness.registry import PRESET_DIR
from harness.suites.alpacafarm import AlpacaFarmConfig, AlpacaFarmSuite
from harness.suites.alpacafarm.suite import SOURCES, merge_input
from harness.suites.hub import mirror_path, resolve_file, resolve_model

PRESET = PRESET_DIR / "alpacafarm.yaml"
ACCELERATE_CONFIGS = Path(__file__).parent.parent / "configs" / "accelerate"
PAIR_COLUMNS = ["instruction", "output_1", "output_2", "preference"]
EVAL_COLUMNS = ["instruction", "output", "generator"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, write_hub_mirror) -> Path:
    return write_hub_mirror(tmp_path_factory.mktemp("hub_mirror"))


@pytest.fixture(scope="module")
def suite(mirror) -> AlpacaFarmSuite:
    return AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=4))


@pytest.fixture
def offline_with_empty_caches(tmp_path, monkeypatch):
    """Offline mode (as HF_HUB_OFFLINE=1 sets it) and caches that hold nothing, whatever this machine has cached."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "downloads")


def _one_fast_line(call, seconds: float = 5.0) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        call()
    elapsed = time.perf_counter() - start
    message = str(err.value)
    assert "\n" not in message
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    return message


# ---------------------------------------------------------------------------------------------------------------
# Splits


def test_splits_have_the_schemas_of_the_suite_protocol(suite, write_hub_mirror):
    splits = suite.splits()
    assert set(splits) == {"sft", "preference", "unlabeled", "val", *suite.eval_sets}
    assert splits["sft"].column_names == ["instruction", "output"]
    assert splits["unlabeled"].column_names == ["instruction"]
    assert splits["preference"].column_names == PAIR_COLUMNS and splits["val"].column_names == PAIR_COLUMNS
    for name in suite.eval_sets:
        assert splits[name].column_names == EVAL_COLUMNS, name
    # 12 simulated pairs = 8 to train on + 4 held out; every other split keeps all its records.
    assert {name: len(data) for name, data in splits.items()} == {
        "sft": 6, "unlabeled": 8, "preference": 8, "val": 4,
        **{name: write_hub_mirror.sizes[name] for name in ("farm", "bar", "vicuna")},
    }
    assert set(splits["preference"]["preference"]) | set(splits["val"]["preference"]) == {
        Preference.FIRST, Preference.SECOND
    }


def test_an_input_is_appended_to_its_instruction_as_alpaca_eval_did(suite):
    sft = suite.splits()["sft"]
    assert sft[0] == {"instruction": "Write sentence 0.\n\nabout cats", "output": "Sentence 0."}
    assert sft[1]["instruction"] == "Write sentence 1."  # no input: the instruction alone
    assert suite.splits()["unlabeled"][3]["instruction"] == "Explain topic 3.\n\nin one line"
    assert merge_input("Do it.", None) == "Do it."


def test_val_is_a_seeded_hold_out_disjoint_from_the_training_pairs(mirror, suite, write_hub_mirror):
    splits = suite.splits()
    train, val = set(splits["preference"]["instruction"]), set(splits["val"]["instruction"])
    assert not train & val and len(train | val) == write_hub_mirror.sizes["simulated"]
    again = AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=4)).splits()["val"]
    assert again["instruction"] == splits["val"]["instruction"]
    other = AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=4, split_seed=1)).splits()["val"]
    assert set(other["instruction"]) != val


def test_preferences_switch_to_the_human_labels(mirror, write_hub_mirror):
    splits = AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), preferences="human", val_size=2)).splits()
    assert len(splits["preference"]) + len(splits["val"]) == write_hub_mirror.sizes["human"]
    assert all(x.startswith("human question") for x in splits["preference"]["instruction"])


def test_max_train_items_cuts_the_training_splits_only(mirror, write_hub_mirror):
    splits = AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=4, max_train_items=3)).splits()
    assert [len(splits[n]) for n in ("sft", "preference", "unlabeled", "val", "farm")] == [
        3, 3, 3, 4, write_hub_mirror.sizes["farm"]]


def test_vicuna_is_the_vicuna_subset_of_the_farm_set(suite, write_hub_mirror):
    splits = suite.splits()
    farm = {row["instruction"]: row for row in splits["farm"]}
    vicuna = list(splits["vicuna"])
    n_vicuna = write_hub_mirror.sizes["vicuna"]
    assert [row["instruction"] for row in vicuna] == [f"Eval question {i}?" for i in range(n_vicuna)]
    assert all(farm[row["instruction"]] == row for row in vicuna)  # same references as in farm
    assert set(splits["farm"]["generator"]) == {"text_davinci_003"}


def test_bar_references_default_to_the_output_llmbar_prefers(suite):
    bar = suite.splits()["bar"]
    # Labels alternate 1, 2, 1, ...: item 0 keeps its first output, item 1 its second.
    assert bar[0] == {"instruction": "Bar instruction 0", "output": "bar first 0", "generator": "llmbar_preferred"}
    assert bar[1]["output"] == "bar second 1"


def test_bar_references_can_come_from_an_outputs_file(mirror, tmp_path, write_hub_mirror):
    references = tmp_path / "references.json"
    records = [{"instruction": f"Bar instruction {i}", "output": f"ref {i}", "generator": "gpt35_turbo_instruct"}
               for i in reversed(range(write_hub_mirror.sizes["bar"]))]  # any order: matched by instruction
    references.write_text(json.dumps(records))
    bar = AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=4, bar_references=str(references)))
    assert bar.splits()["bar"][2] == {"instruction": "Bar instruction 2", "output": "ref 2",
                                      "generator": "gpt35_turbo_instruct"}

    references.write_text(json.dumps(records[1:]))  # drops "Bar instruction 4"
    incomplete = AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=4, bar_references=str(references)))
    message = _one_fast_line(incomplete.splits, seconds=30)
    assert "suite.bar_references" in message and "1 of the 5" in message and "Bar instruction 4" in message


def test_a_file_missing_from_the_mirror_names_where_it_belongs(tmp_path):
    message = _one_fast_line(AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(tmp_path))).splits)
    expected = tmp_path / "tatsu-lab" / "alpaca_farm" / "alpaca_instructions" / "sft.json"
    assert message.startswith(f"suite.data_dir: {expected} is missing")


def test_a_file_with_other_columns_is_named_with_what_it_lacks(tmp_path, write_hub_mirror):
    root = write_hub_mirror(tmp_path)
    sft = mirror_path(SOURCES["sft"].file, root)
    sft.write_text(json.dumps([{"instruction": "x", "response": "y"}]))
    message = _one_fast_line(AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(root))).splits, seconds=30)
    assert "alpaca_instructions/sft.json" in message and "missing column(s) input, output" in message


def test_val_size_must_leave_pairs_to_train_on(mirror, write_hub_mirror):
    all_pairs = write_hub_mirror.sizes["simulated"]
    message = _one_fast_line(AlpacaFarmSuite(AlpacaFarmConfig(data_dir=str(mirror), val_size=all_pairs)).splits,
                             seconds=30)
    assert message.startswith("suite.val_size: 12 leaves none of the 12")


# ---------------------------------------------------------------------------------------------------------------
# Offline: one line, at once


def test_offline_a_hub_dataset_fails_in_one_fast_line(offline_with_empty_caches):
    message = _one_fast_line(AlpacaFarmSuite().splits)
    assert "tatsu-lab/alpaca_farm (alpaca_instructions/sft.json)" in message
    assert "HF_HUB_OFFLINE is set" in message and "suite.data_dir" in message


def test_offline_the_github_hosted_llmbar_file_fails_in_one_fast_line(offline_with_empty_caches):
    message = _one_fast_line(lambda: resolve_file(SOURCES["bar"].file, None, "suite alpacafarm"))
    assert message.startswith("suite alpacafarm needs GitHub for dataset princeton-nlp/LLMBar "
                              "(Dataset/LLMBar/Natural/dataset.json)")
    assert "HF_DATASETS_OFFLINE (or HF_HUB_OFFLINE) is set" in message


def test_offline_a_hub_model_id_fails_in_one_fast_line(offline_with_empty_caches, tmp_path):
    message = _one_fast_line(lambda: resolve_model("huggyllama/llama-7b", tmp_path))
    assert message.startswith("model.base needs the Hugging Face hub for model huggyllama/llama-7b")
    assert "HF_HUB_OFFLINE is set" in message
    assert "huggyllama/llama-7b" in _one_fast_line(lambda: AlpacaFarmSuite().base_model(tmp_path))


def test_a_model_name_that_is_neither_a_dir_nor_a_repo_id_is_named(tmp_path):
    message = _one_fast_line(lambda: resolve_model("no/such/dir", tmp_path))
    assert message.startswith("model.base: 'no/such/dir' is neither a directory nor a hub model id")


# ---------------------------------------------------------------------------------------------------------------
# Models: a base LM gets AlpacaFarm's prompt format


def _save_tiny_model(path: Path, chat_template: str | None) -> Path:
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["### Instruction: ### Response: Name a colour. Blue."], trainer=trainer)
    # Like LLaMA-7B's: bos, eos and unk but no pad token, and (unless given) no chat template.
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if chat_template:
        tokenizer.chat_template = chat_template
        tokenizer.pad_token = "<unk>"
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def test_a_base_model_gets_alpacafarms_prompt_format_and_a_pad_token(tmp_path):
    base = _save_tiny_model(tmp_path / "base", chat_template=None)
    prepared = resolve_model(str(base), tmp_path / "models")
    assert prepared != base and resolve_model(str(base), tmp_path / "models") == prepared  # built once, then reused

    tokenizer = AutoTokenizer.from_pretrained(prepared)
    user = [{"role": "user", "content": "Name a colour."}]
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    # AlpacaFarm's prompt_noinputs (examples/prompts/v0_inputs_noinputs.json), the instruction filled in:
    assert prompt == ("Below is an instruction that describes a task. Write a response that appropriately completes "
                      "the request.\n\n### Instruction:\nName a colour.\n\n### Response:")
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": "Blue."}], tokenize=False)
    assert full == prompt + "Blue.</s>"  # the response follows the prompt directly and ends with eos
    assert tokenizer.pad_token == "<unk>"  # LLaMA has no pad token: its unk token pads, nothing is resized

    # The weights are links to the original files, and the derived dir loads as a model.
    assert (prepared / "model.safetensors").is_symlink()
    assert LlamaForCausalLM.from_pretrained(prepared).config.num_hidden_layers == 1


def test_a_model_with_a_chat_template_and_a_pad_token_is_used_as_it_is(tmp_path):
    chat = _save_tiny_model(tmp_path / "chat", chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert resolve_model(str(chat), tmp_path / "models") == chat
    assert not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------------------------------------------
# Annotators


def test_training_annotator_answers_with_the_files_own_labels(suite):
    annotator = suite.training_annotator()
    pairs = suite.splits()["val"]
    x, a, b, label = (pairs[0][c] for c in PAIR_COLUMNS)
    assert annotator.annotate([x, x], [a, b], [b, a]) == [label, 3 - label]  # swapping the outputs mirrors it
    with pytest.raises(ValueError, match="only knows the pairs of its preference file"):
        annotator.annotate([x], [a], ["a new policy sample"])


@pytest.fixture
def no_openai_key(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    assert not alpaca_eval_constants.OPENAI_CLIENT_CONFIG_PATH.is_file()  # a client config would hold keys too


def test_gold_judge_is_the_configured_alpaca_eval_judge_and_fails_fast_without_its_key(no_openai_key):
    suite = AlpacaFarmSuite()  # builds no data: the judge is checked before the hub is touched
    judge = make_annotator("gold", suite)
    assert isinstance(judge, AlpacaEvalAnnotator) and judge.name == "alpaca_farm_greedy_gpt4"
    start = time.perf_counter()
    with pytest.raises(JudgeNotReadyError) as err:
        judge.check_ready()
    assert time.perf_counter() - start < 5
    assert str(err.value) == ("judge 'alpaca_farm_greedy_gpt4' needs the environment variable(s) OPENAI_API_KEY: "
                              "set them before the run or pick another judge")


# ---------------------------------------------------------------------------------------------------------------
# Config, preset, knowledge task


def test_the_preset_loads_with_alpacafarms_hyper_parameters():
    assert PRESET.read_text().startswith("# python -m harness.run --preset alpacafarm")
    config = load_preset(PRESET)
    assert config.preset == "alpacafarm" and config.model.base == "huggyllama/llama-7b"
    assert config.suite.name == "alpacafarm" and isinstance(config.suite.options, AlpacaFarmConfig)
    assert config.suite.options.preferences == "simulated"
    # paper.md's AlpacaFarm values
    assert (config.sft.learning_rate, config.sft.epochs, config.sft.batch_size) == (2e-5, 3, 128)
    assert (config.reward.learning_rate, config.reward.epochs, config.reward.batch_size) == (3e-6, 1, 16)
    ppo = config.ppo
    assert (ppo.learning_rate, ppo.kl_coef, ppo.ppo_epochs, ppo.vf_coef, ppo.clip_range) == (1e-5, 0.0067, 2, 0.1, 0.2)
    assert (ppo.max_new_tokens, ppo.truncation_penalty, ppo.gamma, ppo.lam, ppo.whiten_rewards) == (300, -1, 1, 1, True)
    assert 8 * ppo.rollout_batch_size == 512 and 8 * ppo.minibatch_size == 256  # per process, on 8 GPUs
    assert (config.policy_samples.n, config.options["uml"].weight, config.options["spg"].confidence_threshold) == (10, 0.5, 0.5)
    assert (config.eval.judge, config.eval.temperature, config.eval.knowledge_fewshot) == (
        "alpaca_farm_greedy_gpt4", 0.7, 5
    )


def test_knowledge_task_is_lm_evals_own_mmlu(suite):
    include_path, task = suite.knowledge_task()
    assert task == "mmlu" and task in TaskManager(include_path=str(include_path), include_defaults=False).all_tasks


@pytest.mark.parametrize(
    "name, distributed_type, zero_stage",
    [("ddp", DistributedType.MULTI_GPU, None), ("zero2", DistributedType.DEEPSPEED, 2),
     ("zero3", DistributedType.DEEPSPEED, 3)],
)
def test_accelerate_configs_load_as_accelerate_reads_them(name, distributed_type, zero_stage):
    path = ACCELERATE_CONFIGS / f"{name}.yaml"
    assert path.read_text().startswith(f"# accelerate launch --config_file configs/accelerate/{name}.yaml")
    config = load_config_from_file(str(path))  # what `accelerate launch --config_file` does first
    assert (config.distributed_type, config.num_processes, config.mixed_precision) == (distributed_type, 8, "bf16")
    assert config.deepspeed_config.get("zero_stage") == zero_stage
