"""float32 against bf16 on the CPU: a training step and sampling, measured side by side, as ratios.

    python -m benchmarks.cpu_precision --model ~/.cache/rlp-harness/models/smollm2-135m-instruct-<key>

What ``runtime.mixed_precision: bf16`` buys on this CPU (the smollm2 preset sets it). The training step is a
forward and backward pass of a sequence-classification head on ``--batch`` rows of ``--tokens`` tokens, in float32
and under bf16 autocast (float32 weights, as the trainers keep them); sampling is ``generate`` of ``--new-tokens``
tokens for ``--batch`` prompts with float32 and with bf16 weights (as the sampler loads them). The precisions are
interleaved round by round, so a noisy machine slows both alike, and the ratio is taken per round. Where the CPU
lacks AVX512-BF16 or AMX, bf16 can be slower than float32: measure before setting it.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.common import interleaved, machine, paired_ratios, run_and_report, spread, timed
from harness.core.schema import require_positive, require_that


@dataclass
class PrecisionBenchConfig:
    """The model and the shapes measured."""

    model: Path | None = field(default=None, metadata={"help": "An HF checkpoint dir (the converted SmolLM2)."})
    batch: int = field(default=8, metadata={"help": "Rows per training step and prompts per sampling call."})
    tokens: int = field(default=128, metadata={"help": "Tokens per row of the training step."})
    new_tokens: int = field(default=48, metadata={"help": "Tokens sampled per prompt."})
    repeats: int = field(default=3, metadata={"help": "Interleaved rounds."})
    torch_threads: int = field(default=2, metadata={"help": "torch CPU threads (the smollm2 preset: torch's "
                                                    "default, the 2 cores here)."})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_positive(self, "batch", "tokens", "new_tokens", "repeats", "torch_threads")
        require_that(self.model is not None and (Path(self.model) / "config.json").is_file(), self, "model",
                     "a model dir (one with a config.json)")


def measure(bench: PrecisionBenchConfig) -> dict:
    """Seconds per round of a training step and of sampling in each precision, and their per-round ratios."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(bench.torch_threads)
    tokenizer = AutoTokenizer.from_pretrained(bench.model)
    scorer = AutoModelForSequenceClassification.from_pretrained(bench.model, num_labels=1, dtype=torch.float32)
    scorer.config.pad_token_id = tokenizer.pad_token_id
    samplers = {bf16: AutoModelForCausalLM.from_pretrained(bench.model, dtype=dtype).eval()
                for bf16, dtype in ((False, torch.float32), (True, torch.bfloat16))}
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(100, tokenizer.vocab_size, (bench.batch, bench.tokens), generator=generator)
    prompts = torch.randint(100, tokenizer.vocab_size, (bench.batch, 16), generator=generator)

    def train_step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = scorer(input_ids=rows).logits.float().sum()
        loss.backward()
        scorer.zero_grad()

    def sample(bf16: bool) -> None:
        with torch.no_grad():
            samplers[bf16].generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                                    max_new_tokens=bench.new_tokens, min_new_tokens=bench.new_tokens,
                                    pad_token_id=tokenizer.pad_token_id)

    train_step(False), sample(False)  # warm-up: the first calls pay for allocations and kernel selection
    figures = {"benchmark": "cpu_precision", "machine": machine(), "config": asdict(bench)}
    for name, work in (("train_step", train_step), ("sampling", sample)):
        seconds = interleaved({"float32": lambda _: timed(lambda: work(False))[1],
                               "bf16": lambda _: timed(lambda: work(True))[1]}, bench.repeats)
        figures[name] = {**seconds, "float32_over_bf16": paired_ratios(seconds["float32"], seconds["bf16"])}
    return figures


def summary(figures: dict) -> str:
    config = figures["config"]
    lines = [f"{config['torch_threads']} thread(s), batch {config['batch']}, {config['tokens']}-token training rows, "
             f"{config['new_tokens']} sampled tokens; seconds and float32/bf16 per round, as median (min, max)"]
    for name in ("train_step", "sampling"):
        f = figures[name]
        lines.append(f"{name:10}  float32 {spread(f['float32'])}  bf16 {spread(f['bf16'])}  "
                     f"float32/bf16 {spread(f['float32_over_bf16'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_and_report(PrecisionBenchConfig, argv, "python -m benchmarks.cpu_precision", __doc__.splitlines()[0],
                          measure, summary)


if __name__ == "__main__":
    sys.exit(main())
