"""The process's mixed precision, in one place, so our PPO, the TRL trainers and the generator agree on it."""

from __future__ import annotations

import os


def mixed_precision() -> str:
    """The process's mixed precision, "no", "bf16" or "fp16", as accelerate reads it.

    ``accelerate launch`` sets ``ACCELERATE_MIXED_PRECISION`` from its config, and ``harness.run`` sets it from
    ``runtime.mixed_precision`` otherwise, so our PPO (an ``Accelerator``), the TRL trainers and the generator
    all train and sample at one precision.
    """
    return os.environ.get("ACCELERATE_MIXED_PRECISION", "no")


def set_mixed_precision(choice: str) -> None:
    """Sets the process's mixed precision where accelerate (and :func:`mixed_precision`) reads it.

    On a GPU, ``auto`` keeps what ``accelerate launch`` set and otherwise picks bf16 where the GPU has it, and
    float32 matrix products may use TF32. On the CPU only an explicit ``bf16`` is taken (autocast: weights and
    optimiser stay float32, matrix products run in bf16, about twice as fast where the CPU has AVX512-BF16 or AMX);
    ``auto`` and ``fp16`` run float32 there, so a default run's numbers do not depend on the CPU.

    Raises:
        ValueError: ``choice`` is not "auto", "no", "bf16" or "fp16".
    """
    import torch

    if choice not in ("auto", "no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision: must be 'auto', 'no', 'bf16' or 'fp16', got {choice!r}")
    if not torch.cuda.is_available():
        os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16" if choice == "bf16" else "no"
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if choice == "auto":
        os.environ.setdefault("ACCELERATE_MIXED_PRECISION", "bf16" if torch.cuda.is_bf16_supported() else "no")
    else:
        os.environ["ACCELERATE_MIXED_PRECISION"] = choice


def trainer_precision() -> dict:
    """HF ``TrainingArguments`` fields for the process's mixed precision: bf16 on a GPU or the CPU, fp16 on a GPU
    only.

    Every TRL trainer here takes them (and the TRL 1.12 reference in ``benchmarks.ppo_vs_trl``), so they train at
    the precision our PPO and the sampler use; TRL's own default, bf16, would otherwise be taken on the CPU too.
    """
    import torch

    on_gpu = torch.cuda.is_available()
    return dict(bf16=mixed_precision() == "bf16", fp16=on_gpu and mixed_precision() == "fp16", use_cpu=not on_gpu)
