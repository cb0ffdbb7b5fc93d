"""Generation backends: batched text generation from an HF checkpoint dir.

``hf`` (transformers ``generate`` with a KV cache, batched, left-padded) works everywhere; ``vllm`` is the GPU
backend for large sampling jobs, available when vLLM is installed (``pip install .[vllm]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness import jobs
from harness.core.chat import prompt_text
from harness.core.errors import ConfigError
from harness.core.precision import mixed_precision

if TYPE_CHECKING:
    from harness.config import GenerationConfig


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


class HFGenerator:
    """Batched ``generate`` with the KV cache; one model kept loaded at a time.

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

    @torch.no_grad()
    def generate(
        self, model_dir: Path, instructions: list[str], n: int, temperature: float, seed: int,
        desc: str = "generating",
    ) -> list[list[str]]:
        tokenizer, model = self._load(Path(model_dir))
        prompts = chat_prompts(tokenizer, instructions)
        sampling = temperature > 0
        torch.manual_seed(seed)
        results: list[list[str]] = []
        # Greedy answers to one prompt are all the same (and generate refuses n > 1 without sampling): decode each
        # prompt once and repeat its answer n times.
        rows = n if sampling else 1
        # Rows per call = prompts x rows; keep it near batch_size.
        per_call = max(1, self.cfg.batch_size // rows)
        for start in tqdm(range(0, len(prompts), per_call), **jobs.bar(desc), unit="batch", leave=False):
            batch = tokenizer(prompts[start:start + per_call], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(self.device)
            out = model.generate(
                **batch,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=sampling,
                temperature=temperature if sampling else None,
                top_k=0 if sampling else None,
                top_p=1.0 if sampling else None,
                num_return_sequences=rows,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            results.extend([t.strip() for t in texts[i:i + rows]] * (n // rows) for i in range(0, len(texts), rows))
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
