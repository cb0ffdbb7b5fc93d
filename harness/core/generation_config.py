"""The options of text generation, in the lowest layer so that the generators below the config loader can own them
without importing it, and the config loader can read them without importing torch (harness/generation.py does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.core.schema import require_positive


@dataclass
class GenerationConfig:
    """How text is generated for evaluation, policy samples and drift (PPO rollouts generate on their own)."""

    backend: Literal["hf", "vllm"] = field(
        default="hf", metadata={"help": "'hf' (our batched decode loop over the transformers model, CPU or GPU) "
                                "or 'vllm' (GPU, pip install .[vllm])."},
    )
    batch_size: int = field(default=64, metadata={"help": "Sequences per generate call (prompts x samples each)."})
    max_new_tokens: int = field(default=32, metadata={"help": "Longest response, in tokens."})

    def __post_init__(self) -> None:
        require_positive(self, "batch_size", "max_new_tokens")
