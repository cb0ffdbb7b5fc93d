"""Generation backends: the hf backend on a tiny random model, vLLM where it is installed, and the clear error where
it is not."""

from __future__ import annotations

import sys

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.config import GenerationConfig
from harness.core.errors import ConfigError
from harness.generation import HFGenerator, chat_prompts, make_generator

# Prompts of different lengths, so a batch needs padding.
INSTRUCTIONS = ["Hi", "Name three colours of the rainbow, please", "Add two and two", "Why"]
CHAT_TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A randomly initialised 2-layer LLaMA with a 300-token byte-level BPE tokenizer and a chat template."""
    path = tmp_path_factory.mktemp("tiny_generator")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(INSTRUCTIONS + ["[user] [assistant]"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def _generator(batch_size: int = 8, max_new_tokens: int = 6) -> HFGenerator:
    return HFGenerator(GenerationConfig(backend="hf", batch_size=batch_size, max_new_tokens=max_new_tokens))


def _record_generate_inputs(generator: HFGenerator, model_dir) -> list[dict]:
    """Wraps the loaded model's ``generate`` so the test sees every batch it is given."""
    _, model = generator._load(model_dir)
    calls: list[dict] = []
    original = model.generate

    def recording_generate(**kwargs):
        calls.append({k: kwargs[k].clone() for k in ("input_ids", "attention_mask")})
        return original(**kwargs)

    model.generate = recording_generate
    return calls


def test_chat_prompts_use_the_models_template(model_dir):
    tokenizer, _ = _generator()._load(model_dir)
    assert chat_prompts(tokenizer, ["Why"]) == ["[user] Why\n[assistant] "]


def test_batches_are_left_padded_and_carry_the_chat_template(model_dir):
    generator = _generator(batch_size=4)
    calls = _record_generate_inputs(generator, model_dir)
    generator.generate(model_dir, INSTRUCTIONS, n=1, temperature=0.0, seed=0)
    tokenizer, _ = generator._load(model_dir)
    (batch,) = calls  # 4 prompts x 1 sample fit one call of batch_size 4
    mask = batch["attention_mask"]
    assert mask[:, -1].all(), "every row ends with a real token: generation continues from the right end"
    assert not mask[:, 0].all(), "the shorter prompts are padded, on the left"
    texts = tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
    assert [t.startswith("[user] ") and t.endswith("\n[assistant] ") for t in texts] == [True] * 4


def test_greedy_answers_do_not_depend_on_batching(model_dir):
    # Left padding with its attention mask must leave each row's greedy continuation what it is alone.
    alone = _generator(batch_size=1).generate(model_dir, INSTRUCTIONS, n=1, temperature=0.0, seed=0)
    batched = _generator(batch_size=8).generate(model_dir, INSTRUCTIONS, n=1, temperature=0.0, seed=0)
    assert batched == alone
    assert len(alone) == len(INSTRUCTIONS) and all(len(s) == 1 for s in alone)


def test_greedy_is_deterministic_and_repeats_for_n_samples(model_dir):
    generator = _generator()
    first = generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=0.0, seed=0)
    again = generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=0.0, seed=7)
    assert first == again  # the seed plays no part in greedy decoding
    assert all(len(samples) == 3 and len(set(samples)) == 1 for samples in first)


def test_sampling_gives_n_samples_per_prompt_seeded(model_dir):
    # batch_size 4 with n=3 puts one prompt per generate call (4 // 3 = 1): rows stay grouped by prompt.
    generator = _generator(batch_size=4)
    samples = generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=1.0, seed=1)
    assert [len(s) for s in samples] == [3] * len(INSTRUCTIONS)
    # A random model over 300 tokens almost never samples the same 6 tokens twice.
    assert any(len(set(s)) > 1 for s in samples)
    assert generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=1.0, seed=1) == samples
    assert generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=1.0, seed=2) != samples


def test_asking_for_vllm_without_it_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail even where vLLM is installed
    with pytest.raises(ConfigError) as err:
        make_generator(GenerationConfig(backend="vllm"))
    message = str(err.value)
    assert "generation.backend" in message and "pip install '.[vllm]'" in message and "\n" not in message


@pytest.fixture
def vllm_generator():
    pytest.importorskip("vllm", reason="vLLM is an optional GPU extra")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU")
    return make_generator(GenerationConfig(backend="vllm", batch_size=8, max_new_tokens=6))


def test_vllm_gives_n_samples_per_prompt(vllm_generator, model_dir):
    samples = vllm_generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=1.0, seed=0)
    assert [len(s) for s in samples] == [3] * len(INSTRUCTIONS)
    assert vllm_generator.generate(model_dir, INSTRUCTIONS, n=3, temperature=1.0, seed=0) == samples


def test_vllm_greedy_matches_the_hf_backend(vllm_generator, model_dir):
    # Same prompt tokens (chat template, no extra BOS) and greedy decoding: the same text on both backends.
    hf = _generator().generate(model_dir, INSTRUCTIONS, n=2, temperature=0.0, seed=0)
    assert vllm_generator.generate(model_dir, INSTRUCTIONS, n=2, temperature=0.0, seed=0) == hf


def test_mixed_precision_on_the_cpu_is_float32_unless_bf16_is_asked_for_and_checked(monkeypatch):
    import torch

    from harness.config import GenerationConfig
    from harness.core.precision import mixed_precision, set_mixed_precision
    from harness.generation import HFGenerator

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # as a launcher on a GPU machine would set it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for choice in ("auto", "fp16", "no"):
        set_mixed_precision(choice)
        assert mixed_precision() == "no" and HFGenerator(GenerationConfig()).model_dtype() == torch.float32, choice
    set_mixed_precision("bf16")
    assert mixed_precision() == "bf16" and HFGenerator(GenerationConfig()).model_dtype() == torch.bfloat16
    with pytest.raises(ValueError, match="mixed_precision: must be 'auto', 'no', 'bf16' or 'fp16', got 'half'"):
        set_mixed_precision("half")


def test_the_trainers_follow_the_process_precision(monkeypatch):
    import torch

    from harness.core.precision import trainer_precision

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trainer_precision() == {"bf16": True, "fp16": False, "use_cpu": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert trainer_precision() == {"bf16": True, "fp16": False, "use_cpu": True}
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # fp16 needs a GPU
    assert trainer_precision() == {"bf16": False, "fp16": False, "use_cpu": True}
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # TRL's bf16 default must not be taken on the CPU
    assert trainer_precision() == {"bf16": False, "fp16": False, "use_cpu": True}
