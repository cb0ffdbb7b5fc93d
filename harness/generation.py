"""Generation backends: batched text generation from an HF checkpoint dir, and our decode loop.

``hf`` (our decode loop, :func:`sample_responses`, over the transformers model's forward with its KV cache; prompts
batched by length and left-padded) works everywhere; ``vllm`` is the GPU backend for large sampling jobs, available
when vLLM is installed (``pip install .[vllm]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from harness import jobs
from harness.core.chat import prompt_text
from harness.core.errors import ConfigError
from harness.core.generation_config import GenerationConfig
from harness.core.precision import mixed_precision


class Generator(Protocol):
    """Generates ``n`` responses per instruction from a chat model."""

    def generate(
        self, model_dir: Path, instructions: list[str], n: int, temperature: float, seed: int,
        desc: str = "generating",
    ) -> list[list[str]]:
        """Returns ``n`` responses for each instruction; temperature 0 decodes greedily."""
        ...


def chat_prompts(tokenizer, instructions: list[str]) -> list[str]:
    """Each instruction as a one-turn chat, rendered with the model's own template and a generation prompt."""
    return [prompt_text(tokenizer, x) for x in instructions]


# Dropping finished rows copies every layer's KV cache, so the batch is compacted only once this share of its rows
# has finished: a few copies per batch, while rows that finished wait at most this share of a step's arithmetic.
COMPACT_SHARE = 0.25


def next_token_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The sampling distribution softmax(logits / temperature), in float32: ``(b, V)`` -> ``(b, V)``."""
    return torch.softmax(logits.float() / temperature, dim=-1)


def next_tokens(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """One token per row of ``(b, V)`` logits, ``(b,)``: the argmax at temperature 0, else a draw from
    :func:`next_token_probs`.

    The draw inverts the cumulative distribution with one uniform number per row (``torch.multinomial`` draws one
    exponential number per vocabulary entry, which cost a fifth of a decoding step on the tiny model). Token i is
    drawn when ``cdf[i-1] <= u < cdf[i]``, with probability ``p[i]`` exactly; ``u`` is scaled by the row's total so
    float rounding of the sum leaves no gap at the top.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    cdf = next_token_probs(logits, temperature).cumsum(dim=-1)  # (b, V)
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]  # (b, 1)
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)


@torch.no_grad()
def sample_responses(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int, temperature: float,
    eos_token_id: int, pad_token_id: int, num_samples: int = 1,
) -> torch.Tensor:
    """``num_samples`` responses to each left-padded prompt: the decode loop of the ``hf`` backend.

    It draws from the distribution ``model.generate`` samples with ``do_sample=True, top_k=0, top_p=1`` (or decodes
    greedily at temperature 0), calling the model's own forward with transformers' ``DynamicCache``, in fewer ops a
    step: each prompt is run through the model once and its cache repeated for its samples (``generate`` runs it
    once per sample), only the last prompt position's logits are computed, rows that said eos leave the batch, and a
    step is one forward and one draw (no logits processors or stopping criteria).

    Args:
        model: a transformers causal LM, in eval mode.
        input_ids: ``(B, P)`` prompt ids, left-padded.
        attention_mask: ``(B, P)`` 1 on real prompt tokens, 0 on padding.
        max_new_tokens: the longest response, in tokens.
        temperature: softmax temperature; 0 decodes greedily.
        eos_token_id: the token that ends a response (kept in it).
        pad_token_id: what follows eos in a row, as ``generate`` pads.
        num_samples: responses per prompt.

    Returns:
        ``(B * num_samples, R)`` response ids, prompt i's samples in rows ``i * num_samples`` onwards; R is the
        longest response (at most ``max_new_tokens``), as ``generate`` returns them after the prompt.
    """
    prompt_len = input_ids.shape[1]  # P
    # 1. Prefill: each prompt once, positions counted over real tokens so left padding shifts none of them.
    cache = DynamicCache(config=model.config)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, cache=cache,
                   use_cache=True, logits_to_keep=1).logits[:, -1]  # (B, V)

    # 2. num_samples rows per prompt share its cache, last logits and position: N = B * num_samples rows.
    if num_samples > 1:
        cache.batch_repeat_interleave(num_samples)
    logits = logits.repeat_interleave(num_samples, dim=0)  # (N, V)
    position = positions[:, -1:].repeat_interleave(num_samples, dim=0)  # (N, 1)
    # the mask over every position the cache will hold: the prompt's, then 1 for each response token
    mask = torch.cat([attention_mask.repeat_interleave(num_samples, dim=0),
                      attention_mask.new_ones(len(logits), max_new_tokens)], dim=1)  # (N, P + max_new_tokens)
    responses = torch.full((len(logits), max_new_tokens), pad_token_id, device=input_ids.device)  # (N, T)
    rows = torch.arange(len(logits), device=input_ids.device)  # (b,) the response row of each running row
    done = torch.zeros(len(logits), dtype=torch.bool, device=input_ids.device)  # (b,) said eos already

    for step in range(max_new_tokens):
        # 3. Draw each running row's token; rows that finished earlier get padding.
        tokens = next_tokens(logits, temperature).masked_fill_(done, pad_token_id)  # (b,)
        responses[rows, step] = tokens
        done |= tokens == eos_token_id
        if done.all() or step == max_new_tokens - 1:
            return responses[:, : step + 1]
        # 4. Drop the finished rows from the batch (and their cache) once enough of them have piled up.
        if done.sum() >= COMPACT_SHARE * len(done):
            keep = (~done).nonzero().squeeze(1)  # (b',)
            cache.batch_select_indices(keep)
            rows, tokens, position, mask, done = rows[keep], tokens[keep], position[keep], mask[keep], done[keep]
        # 5. One step: the new tokens through the model, attending to the cache's P + step + 1 positions.
        position = position + 1
        logits = model(input_ids=tokens[:, None], attention_mask=mask[:, : prompt_len + step + 1],
                       position_ids=position, cache=cache, use_cache=True).logits[:, -1]  # (b, V)
    return responses  # max_new_tokens == 0: nothing was drawn


class HFGenerator:
    """:func:`sample_responses` over prompts batched by length; one model kept loaded at a time.

    Sampling is seeded once per call, so the same (model, instructions, n, temperature, seed) gives the same
    text on the same machine.
    """

    def __init__(self, cfg: GenerationConfig, trust_remote_code: bool = False):
        self.cfg = cfg
        self.trust_remote_code = trust_remote_code
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._loaded: tuple[Path, object, object] | None = None

    def _load(self, model_dir: Path):
        if self._loaded is None or self._loaded[0] != model_dir:
            tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=self.trust_remote_code)
            tokenizer.padding_side = "left"  # generation continues from the right end of every row
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=self.model_dtype(), trust_remote_code=self.trust_remote_code
            ).to(self.device).eval()
            self._loaded = (model_dir, tokenizer, model)
        return self._loaded[1], self._loaded[2]

    def model_dtype(self) -> torch.dtype:
        """Half precision when the run trains in it: on a GPU the weights and the KV cache take half the memory
        (sampling is bound by kernel launches, not maths); on an AVX512-BF16 CPU bf16 sampling is about twice as
        fast. Float32 otherwise."""
        if self.device == "cuda":
            return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision(), torch.float32)
        return torch.bfloat16 if mixed_precision() == "bf16" else torch.float32

    def generate(
        self, model_dir: Path, instructions: list[str], n: int, temperature: float, seed: int,
        desc: str = "generating",
    ) -> list[list[str]]:
        tokenizer, model = self._load(Path(model_dir))
        prompts = tokenizer(chat_prompts(tokenizer, instructions), add_special_tokens=False)["input_ids"]
        # Batching by length: prompts in order of token count, so the rows of a batch need little padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        # Greedy answers to one prompt are all the same: decode each prompt once and repeat its answer n times.
        rows = n if temperature > 0 else 1
        per_call = max(1, self.cfg.batch_size // rows)  # rows per call = prompts x rows, near batch_size
        torch.manual_seed(seed)
        results: list[list[str]] = [[] for _ in prompts]
        for start in tqdm(range(0, len(order), per_call), **jobs.bar(desc), unit="batch", leave=False):
            batch = order[start:start + per_call]
            encoded = tokenizer.pad({"input_ids": [prompts[i] for i in batch]}, return_tensors="pt").to(self.device)
            responses = sample_responses(
                model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=self.cfg.max_new_tokens,
                temperature=temperature, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                num_samples=rows,
            )  # (len(batch) * rows, R)
            texts = [t.strip() for t in tokenizer.batch_decode(responses, skip_special_tokens=True)]
            for j, i in enumerate(batch):
                results[i] = texts[j * rows:(j + 1) * rows] * (n // rows)
        return results


class VLLMGenerator:
    """vLLM's offline ``LLM.generate`` (GPU). Loaded lazily so the CPU install never imports vLLM.

    Prompts go to vLLM as token ids of the chat-rendered text encoded without special tokens, as the hf backend
    encodes them: given text, vLLM would add a BOS in front of a template that already writes one. Greedy decoding
    (temperature 0) generates once and repeats the answer ``n`` times, as the hf backend's greedy answers are
    identical too.
    """

    def __init__(self, cfg: GenerationConfig, trust_remote_code: bool = False):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise ConfigError(
                "generation.backend: 'vllm' needs vLLM, which is not installed here: pip install '.[vllm]' (GPU "
                "only), or set generation.backend=hf"
            ) from None
        self.cfg = cfg
        self.trust_remote_code = trust_remote_code
        self._loaded: tuple[Path, object] | None = None

    def generate(
        self, model_dir: Path, instructions: list[str], n: int, temperature: float, seed: int,
        desc: str = "generating",
    ) -> list[list[str]]:
        from vllm import LLM, SamplingParams

        if self._loaded is None or self._loaded[0] != Path(model_dir):
            self._loaded = (Path(model_dir), LLM(model=str(model_dir), trust_remote_code=self.trust_remote_code,
                                                  seed=seed))
        llm = self._loaded[1]
        tokenizer = llm.get_tokenizer()
        prompts = [{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]}
                   for p in chat_prompts(tokenizer, instructions)]
        greedy = temperature == 0
        params = SamplingParams(n=1 if greedy else n, temperature=temperature, max_tokens=self.cfg.max_new_tokens,
                                seed=seed)
        outputs = llm.generate(prompts, params)
        return [[c.text.strip() for c in o.outputs] * (n if greedy else 1) for o in outputs]


def make_generator(cfg: GenerationConfig, trust_remote_code: bool = False) -> Generator:
    """The backend named by ``cfg.backend``.

    Raises:
        ConfigError: ``vllm`` is asked for and is not installed (one line; the command line exits with status 2).
    """
    if cfg.backend == "vllm":
        return VLLMGenerator(cfg, trust_remote_code)
    return HFGenerator(cfg, trust_remote_code)
