"""The harness's sampler against the batched ``generate`` calls it replaced, its share of the machine's matmul
roofline, and the share of a run spent generating.

    python -m benchmarks.sampling                         # 500 instructions x 10 samples, 5 interleaved rounds
    python -m benchmarks.sampling --run runs/tiny         # also split that run's stage time
    python -m benchmarks.sampling --policy P --max-new-tokens 128 --mixed-precision bf16   # another model, on a GPU

Part 1 draws ``n`` samples for each instruction from the tiny preset's SFT policy (or ``--policy``) at the RLP
sample set's setting (10 samples x 500 instructions, temperature 1, the preset's generation config) two ways, in
alternating order: the harness's :class:`harness.generation.HFGenerator` (our decode loop,
:func:`harness.generation.sample_responses`), and :func:`batched_generate`, the ``hf`` backend as it was before it:
left-padded ``model.generate`` calls of up to ``--baseline-batch-size`` rows (prompts x n; 128, the tiny preset's
``generation.batch_size`` before our sampler). Both load the model before the clock starts; tokens are counted by
re-tokenising the returned text, the same way for both.

The roofline: one-thread-per-``torch_threads`` matmuls of the model's linear layers at the shapes of a decoding
step (``batch_size`` rows), timed alone; 2 x their weights is the arithmetic of a generated token (attention scores,
norms, the embedding lookup and the prompt's prefill are left out), so the rate over that is the most tokens a
second the machine's matmuls allow, and the sampler's tokens/s over it is its share of that roofline.

Part 2 reads a finished run's results.json and splits the time it spent building stages into the stages that only
generate text (policy_samples, eval_*, drift_samples, proxy_samples) and the rest. PPO's rollouts are generated
inside the ppo stage and count as the rest.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks.common import (
    DEFAULT_CACHE,
    MIXED_PRECISION_HELP,
    MixedPrecision,
    bench_models,
    describe_machine,
    interleaved,
    is_generation_stage,
    load_results,
    machine,
    paired_ratios,
    parse_config,
    require_finished_run,
    require_model_dir,
    set_offline,
    spread,
    stage_seconds,
    timed,
)
from harness.core.precision import set_mixed_precision
from harness.core.schema import require_choice, require_positive


@dataclass
class SamplingBenchConfig:
    """What the benchmark samples, and which run's stages it splits."""

    instructions: int = field(
        default=500, metadata={"help": "Unlabeled instructions sampled from (the default run's RLP sample set: 500)."}
    )
    n: int = field(default=10, metadata={"help": "Samples per instruction (the RLP sample set draws 10)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (the RLP sample set's: 1)."})
    repeats: int = field(default=5, metadata={"help": "Interleaved rounds; round r samples with seed r."})
    torch_threads: int = field(default=1, metadata={"help": "torch CPU threads (the tiny preset uses 1)."})
    cache_dir: Path = field(
        default=DEFAULT_CACHE, metadata={"help": "Where the base model and the SFT stage are kept."}
    )
    run: Path | None = field(
        default=None,
        metadata={"help": "A finished run dir (e.g. runs/tiny) whose stage time to split into generation and "
                          "the rest; without it only the samplers are compared."},
    )
    policy: Path | None = field(
        default=None, metadata={"help": "Policy checkpoint to sample from (None: the tiny preset's SFT stage)."}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Longest sample in tokens (None: the tiny preset's generation setting)."}
    )
    baseline_batch_size: int = field(
        default=128, metadata={"help": "Rows per generate call of the baseline (the tiny preset's before our sampler)."}
    )
    mixed_precision: MixedPrecision = field(default="no", metadata={"help": MIXED_PRECISION_HELP})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_positive(self, "instructions", "n", "temperature", "repeats", "torch_threads", "max_new_tokens",
                         "baseline_batch_size")
        require_model_dir(self, "policy")
        require_choice(self, "mixed_precision")
        set_mixed_precision(self.mixed_precision)
        require_finished_run(self)


def generation_share(stages: list[dict]) -> dict:
    """Seconds a run spent building generation stages and the rest, and the generation share of their sum.

    Raises:
        ValueError: the run built no stage (every stage was reused), so there is no time to split.
    """
    seconds = stage_seconds(stages)
    generating = sum(s for name, s in seconds.items() if is_generation_stage(name))
    total = sum(seconds.values())
    if total == 0:
        raise ValueError("run: every stage of this run was reused; split a run that built its stages")
    return {"generation_s": generating, "other_s": total - generating, "share": generating / total,
            "per_stage_s": seconds}


def batched_generate(model, tokenizer, instructions: list[str], n: int, temperature: float,
                     generation, seed: int) -> list[list[str]]:
    """The ``hf`` backend before :func:`harness.generation.sample_responses`: left-padded ``model.generate`` calls
    of about ``generation.batch_size`` rows (prompts x n), prompts in their given order, seeded once. Kept as the
    baseline the sampler is measured and tested against.

    Args:
        model: the causal LM, in eval mode.
        tokenizer: its tokenizer, padding on the left.
        instructions: user turns, rendered with the chat template here.
        n: samples per instruction (greedy answers are decoded once and repeated).
        temperature: softmax temperature; 0 decodes greedily.
        generation: a :class:`harness.config.GenerationConfig` (``batch_size``, ``max_new_tokens``).
        seed: seeds the sampling.
    """
    import torch

    from harness.generation import chat_prompts

    prompts = chat_prompts(tokenizer, instructions)
    sampling = temperature > 0
    rows = n if sampling else 1
    per_call = max(1, generation.batch_size // rows)
    torch.manual_seed(seed)
    results: list[list[str]] = []
    with torch.no_grad():
        for start in range(0, len(prompts), per_call):
            batch = tokenizer(prompts[start:start + per_call], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            out = model.generate(
                **batch, max_new_tokens=generation.max_new_tokens, do_sample=sampling,
                temperature=temperature if sampling else None, top_k=0 if sampling else None,
                top_p=1.0 if sampling else None, num_return_sequences=rows, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            results.extend([t.strip() for t in texts[i:i + rows]] * (n // rows) for i in range(0, len(texts), rows))
    return results


def linear_shapes(model) -> list[tuple[int, int]]:
    """(in, out) of every linear layer a generated token passes through, the output head included."""
    import torch

    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def flops_per_token(shapes: list[tuple[int, int]]) -> int:
    """2 x the weights of the linear layers: a multiply and an add per weight for each generated token."""
    return 2 * sum(i * o for i, o in shapes)


def matmul_rate(shapes: list[tuple[int, int]], rows: int, dtype, device: str = "cpu", seconds: float = 1.0) -> float:
    """FLOP/s of ``rows x in @ in x out`` matmuls over ``shapes`` in turn, repeated for about ``seconds``: the
    arithmetic of one decoding step of ``rows`` rows, with nothing else around it."""
    import time

    import torch

    weights = [torch.randn(i, o, dtype=dtype, device=device) for i, o in shapes]
    inputs = [torch.randn(rows, i, dtype=dtype, device=device) for i, _ in shapes]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for x, w in zip(inputs, weights):  # warm-up
        x @ w
    sync()
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        for x, w in zip(inputs, weights):
            x @ w
        sync()
        steps += 1
    return steps * rows * flops_per_token(shapes) / (time.perf_counter() - start)


def count_tokens(tokenizer, samples: list[list[str]]) -> int:
    """Tokens in the returned text, re-tokenised without special tokens (the same count for both samplers)."""
    flat = [s for group in samples for s in group]
    return sum(len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"])


def compare_samplers(bench: SamplingBenchConfig, log: Callable[[str], None] = print) -> dict:
    """Tokens and samples per second of both samplers and the matmul roofline over ``repeats`` interleaved rounds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import make_generator

    models = bench_models(bench.cache_dir, bench.policy, need_reward_model=False)
    policy = models.policy
    instructions = list(models.splits["unlabeled"]["instruction"][: bench.instructions])
    generation = dataclasses.replace(models.config.generation,
                                     max_new_tokens=bench.max_new_tokens or models.config.generation.max_new_tokens)
    baseline = dataclasses.replace(generation, batch_size=bench.baseline_batch_size)
    generator = make_generator(generation)
    generator.generate(policy, instructions[:1], 1, bench.temperature, 0)  # loads its model before timing
    tokenizer = AutoTokenizer.from_pretrained(policy, padding_side="left")
    # the same device and precision as the harness's sampler
    dtype = generator.model_dtype()
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=dtype).to(generator.device).eval()
    shapes = linear_shapes(model)

    samplers = {
        "harness": lambda seed: generator.generate(policy, instructions, bench.n, bench.temperature, seed,
                                                   desc="harness sampler"),
        "generate": lambda seed: batched_generate(model, tokenizer, instructions, bench.n, bench.temperature,
                                                  baseline, seed),
    }

    def measure(name: str) -> Callable[[int], dict]:
        def run(seed: int) -> dict:
            samples, wall_s = timed(lambda: samplers[name](seed))
            tokens = count_tokens(tokenizer, samples)
            record = {"seed": seed, "wall_s": wall_s, "tokens": tokens, "tokens_per_s": tokens / wall_s,
                      "samples_per_s": sum(map(len, samples)) / wall_s}
            log(f"round {seed} {name:<8}: {record['tokens_per_s']:.0f} tokens/s, "
                f"{record['samples_per_s']:.1f} samples/s ({wall_s:.1f}s)")
            return record
        return run

    def roofline(seed: int) -> dict:
        rate = matmul_rate(shapes, generation.batch_size, dtype, generator.device)
        log(f"round {seed} matmul  : {rate / 1e9:.1f} GFLOP/s")
        return {"seed": seed, "flop_per_s": rate, "tokens_per_s": rate / flops_per_token(shapes)}

    rounds = interleaved({**{name: measure(name) for name in samplers}, "roofline": roofline}, bench.repeats)
    harness = [r["tokens_per_s"] for r in rounds["harness"]]
    return {
        "policy": policy.name, "generation": asdict(generation), "baseline_generation": asdict(baseline),
        "flops_per_token": flops_per_token(shapes),
        "rounds": rounds,
        "speedup_tokens_per_s": paired_ratios(harness, [r["tokens_per_s"] for r in rounds["generate"]]),
        "roofline_share": paired_ratios(harness, [r["tokens_per_s"] for r in rounds["roofline"]]),
    }


def summary(figures: dict) -> str:
    """The figures as the lines the benchmark prints."""
    samplers = figures["samplers"]
    rounds = samplers["rounds"]
    lines = [f"{name:<8}  tokens/s {spread([r['tokens_per_s'] for r in rounds[name]])}   "
             f"samples/s {spread([r['samples_per_s'] for r in rounds[name]])}" for name in ("harness", "generate")]
    lines.append(f"speed-up harness / generate (tokens/s, per round): {spread(samplers['speedup_tokens_per_s'])}")
    lines.append(f"matmul rate at the decoding step's shapes ({samplers['generation']['batch_size']} rows): "
                 f"{spread([r['flop_per_s'] / 1e9 for r in rounds['roofline']])} GFLOP/s; "
                 f"{samplers['flops_per_token'] / 1e6:.2f} MFLOP a token: roofline "
                 f"{spread([r['tokens_per_s'] for r in rounds['roofline']])} tokens/s")
    lines.append(f"harness share of the roofline (per round): {spread(samplers['roofline_share'])}")
    if "run" in figures:
        run = figures["run"]
        lines.append(f"run {run['dir']}: {run['generation_s']:.1f}s of {run['generation_s'] + run['other_s']:.1f}s "
                     f"of stage building generated text ({run['share']:.0%}); the run took {run['wall_s']:.0f}s")
        for name, seconds in sorted(run["per_stage_s"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<16} {seconds:8.1f}s  {'generation' if is_generation_stage(name) else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    set_offline()
    bench = parse_config(SamplingBenchConfig, argv, "python -m benchmarks.sampling",
                         "The harness's sampler against batched generate calls, its roofline share, and a run's "
                         "generation share.")
    import torch

    torch.set_num_threads(bench.torch_threads)
    figures = {"benchmark": "sampling", "machine": machine(), "config": asdict(bench)}
    if bench.run is not None:  # read first: a run that built nothing fails before minutes of sampling
        results = load_results(bench.run)
        try:
            share = generation_share(results["stages"])
        except ValueError as err:
            print(f"sampling: error: {err}", file=sys.stderr)
            return 2
        figures["run"] = {"dir": str(bench.run), "wall_s": results["wall_s"], **share}
    print(f"machine: {describe_machine(figures['machine'])}; torch threads {bench.torch_threads}")
    figures["samplers"] = compare_samplers(bench)
    print(summary(figures))
    if bench.out is not None:
        bench.out.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
