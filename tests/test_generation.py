"""Generation backends: the hf backend and its decode loop on tiny random models (against transformers' forward pass
and ``generate``), vLLM where it is installed, and the clear error where it is not."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import harness.generation
from benchmarks.sampling import batched_generate
from harness.config import GenerationConfig
from harness.core.errors import ConfigError
from harness.generation import HFGenerator, chat_prompts, make_generator, sample_responses

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
    model = LlamaForCausalLM(config)
    _sharpen_attention(model)
    model.save_pretrained(path)
    return path


def _sharpen_attention(model: LlamaForCausalLM) -> None:
    """Scales up the query and key weights: at the default initialisation attention is nearly uniform, and a token
    seen at the wrong position or a padding token let in would hardly change a prediction."""
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(10)
            layer.self_attn.k_proj.weight.mul_(10)


def _generator(batch_size: int = 8, max_new_tokens: int = 6) -> HFGenerator:
    return HFGenerator(GenerationConfig(backend="hf", batch_size=batch_size, max_new_tokens=max_new_tokens))


def _record_sampler_inputs(monkeypatch) -> list[dict]:
    """Wraps the decode loop so the test sees every batch it is given."""
    calls: list[dict] = []

    def recording(model, input_ids, attention_mask, **kwargs):
        calls.append({"input_ids": input_ids.clone(), "attention_mask": attention_mask.clone()})
        return sample_responses(model, input_ids, attention_mask, **kwargs)

    monkeypatch.setattr(harness.generation, "sample_responses", recording)
    return calls


def test_chat_prompts_use_the_models_template(model_dir):
    tokenizer, _ = _generator()._load(model_dir)
    assert chat_prompts(tokenizer, ["Why"]) == ["[user] Why\n[assistant] "]


def test_batches_are_left_padded_sorted_by_length_and_carry_the_chat_template(model_dir, monkeypatch):
    generator = _generator(batch_size=2)
    calls = _record_sampler_inputs(monkeypatch)
    generator.generate(model_dir, INSTRUCTIONS, n=1, temperature=0.0, seed=0)
    tokenizer, _ = generator._load(model_dir)
    assert len(calls) == 2  # 4 prompts x 1 sample, 2 rows a call
    for batch in calls:
        mask = batch["attention_mask"]
        assert mask[:, -1].all(), "every row ends with a real token: generation continues from the right end"
        texts = tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
        assert all(t.startswith("[user] ") and t.endswith("\n[assistant] ") for t in texts)
    # batching by length: the two shortest prompts ("Hi", "Why") share the first call, the two longest the second
    first, second = (tokenizer.batch_decode(b["input_ids"], skip_special_tokens=True) for b in calls)
    assert sorted(t[len("[user] "):-len("\n[assistant] ")] for t in first) == ["Hi", "Why"]
    assert calls[0]["input_ids"].shape[1] < calls[1]["input_ids"].shape[1]
    assert not calls[1]["attention_mask"][:, 0].all(), "the shorter prompt of a batch is padded, on the left"


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


def test_greedy_text_is_that_of_batched_generate(model_dir):
    # Today's greedy text (the hf backend before our decode loop: left-padded generate calls) on the same model.
    generator = _generator(batch_size=3)
    tokenizer, model = generator._load(model_dir)
    expected = batched_generate(model, tokenizer, INSTRUCTIONS, 2, 0.0, generator.cfg, seed=0)
    assert generator.generate(model_dir, INSTRUCTIONS, n=2, temperature=0.0, seed=0) == expected


def test_each_steps_distribution_is_the_full_forward_pass_softmax(model_dir, monkeypatch):
    """With the KV cache, left padding and samples sharing a prompt's cache, the distribution each token is drawn
    from must be softmax(logits / T) of a plain forward pass over that row's unpadded prompt and response so far."""
    tokenizer, model = _generator()._load(model_dir)
    prompts = tokenizer(chat_prompts(tokenizer, INSTRUCTIONS[:3]), add_special_tokens=False)["input_ids"]
    encoded = tokenizer.pad({"input_ids": prompts}, return_tensors="pt")
    assert not encoded["attention_mask"].all()  # rows of different lengths: left padding
    recorded: list[torch.Tensor] = []  # (N, V) per step
    original = harness.generation.next_token_probs

    def recording(logits, temperature):
        recorded.append(original(logits, temperature))
        return recorded[-1]

    monkeypatch.setattr(harness.generation, "next_token_probs", recording)
    temperature, n = 0.7, 2
    torch.manual_seed(0)
    # an eos id no token has: no row finishes, so every step's recorded rows are all N rows in order
    responses = sample_responses(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=5,
                                 temperature=temperature, eos_token_id=-1, pad_token_id=0, num_samples=n)
    assert responses.shape == (len(prompts) * n, 5) and len(recorded) == 5
    for row, response in enumerate(responses):
        prompt = prompts[row // n]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + response.tolist()])).logits[0]  # (P + R, V)
        expected = torch.softmax(logits[len(prompt) - 1:-1] / temperature, dim=-1)  # (R, V): before each token
        torch.testing.assert_close(torch.stack([probs[row] for probs in recorded]), expected, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def peaked_model():
    """A random 2-layer LLaMA over 16 tokens with a scaled-up output head, so that its next-token distributions are
    far from uniform (a wrong temperature shows), sharp attention, and 4 left-padded prompts of 3 to 8 tokens."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    _sharpen_attention(model)
    input_ids = torch.zeros(4, 8, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    tokens = torch.Generator().manual_seed(1)
    for row, length in enumerate([3, 5, 6, 8]):
        input_ids[row, 8 - length:] = torch.randint(3, 16, (length,), generator=tokens)
        attention_mask[row, 8 - length:] = 1
    return model, input_ids, attention_mask


# Token 5 as eos: the peaked model draws it about one time in six, so responses end at every length up to the cap.
EOS, PAD, MAX_NEW = 5, 0, 10


def test_greedy_tokens_are_generates_when_rows_end_at_different_steps(peaked_model):
    # Rows that end early leave the batch; the rest go on: ids, padding after eos and the width as generate's.
    model, input_ids, attention_mask = peaked_model
    ours = sample_responses(model, input_ids, attention_mask, max_new_tokens=MAX_NEW, temperature=0.0,
                            eos_token_id=EOS, pad_token_id=PAD)
    expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                              max_new_tokens=MAX_NEW, eos_token_id=EOS, pad_token_id=PAD)[:, input_ids.shape[1]:]
    assert torch.equal(ours, expected)
    ends = [(row == EOS).nonzero()[0].item() if (row == EOS).any() else None for row in ours]
    assert len(set(ends)) >= 3, f"rows should end at different steps (or run to the cap): {ends}"


def _response_lengths(responses: torch.Tensor) -> torch.Tensor:
    """Tokens up to and including the first eos; the cap + 1 for a row that never ends."""
    is_eos = responses == EOS
    return torch.where(is_eos.any(1), is_eos.long().argmax(1) + 1, MAX_NEW + 1)


def _same_distribution_p(a: torch.Tensor, b: torch.Tensor) -> float:
    """p-value of a chi-square test that two samples of small integers come from one distribution."""
    counts = np.stack([np.bincount(a.numpy(), minlength=MAX_NEW + 2), np.bincount(b.numpy(), minlength=MAX_NEW + 2)])
    return chi2_contingency(counts[:, counts.sum(0) > 0])[1]


def test_samples_follow_generates_distribution(peaked_model):
    """4,000 samples (4 prompts x 1,000) from our sampler and from ``generate`` as the hf backend called it: the first
    token, the second token (after a first that was not eos) and the response length must pass a chi-square test
    at p > 0.001, and the same test must reject samples drawn at temperature 0.7 instead of 1 (p < 0.001). Seeded:
    the p-values are the same on every run."""
    model, input_ids, attention_mask = peaked_model
    n = 1000

    def ours(temperature: float) -> torch.Tensor:
        torch.manual_seed(0)
        return sample_responses(model, input_ids, attention_mask, max_new_tokens=MAX_NEW, temperature=temperature,
                                eos_token_id=EOS, pad_token_id=PAD, num_samples=n)

    torch.manual_seed(1)
    with torch.no_grad():
        reference = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
            max_new_tokens=MAX_NEW, num_return_sequences=n, eos_token_id=EOS, pad_token_id=PAD,
        )[:, input_ids.shape[1]:]

    def p_values(samples: torch.Tensor) -> list[float]:
        def second(r: torch.Tensor) -> torch.Tensor:
            return r[r[:, 0] != EOS, 1]
        return [_same_distribution_p(samples[:, 0], reference[:, 0]),
                _same_distribution_p(second(samples), second(reference)),
                _same_distribution_p(_response_lengths(samples), _response_lengths(reference))]

    samples = ours(1.0)
    after_eos = (samples == EOS).long().cumsum(1) - (samples == EOS).long() > 0  # (N, R) past the first eos
    assert (samples[after_eos] == PAD).all() and samples.shape[1] == _response_lengths(samples).clamp(max=MAX_NEW).max()
    assert min(p_values(samples)) > 1e-3
    assert max(p_values(ours(0.7))) < 1e-3


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
