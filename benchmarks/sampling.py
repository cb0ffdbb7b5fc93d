"""The harness's sampler against per-prompt ``generate`` calls, and the share of a run spent generating.

    python -m benchmarks.sampling                         # 100 instructions x 10 samples, 5 interleaved rounds
    python -m benchmarks.sampling --run runs/tiny         # also split that run's stage time
    python -m benchmarks.sampling --policy P --max-new-tokens 128 --mixed-precision bf16   # another model, on a GPU

Part 1 draws ``n`` samples for each instruction from the tiny preset's SFT policy (or ``--policy``) (temperature 1, the RLP sample
set's setting) two ways, in alternating order: the harness's :class:`harness.generation.HFGenerator` (several
prompts x n rows per left-padded ``generate`` call), and one ``generate`` call per prompt with
``num_return_sequences=n`` (the plain loop a user writes first). Both load the model before the clock starts and
sample with the same settings; tokens are counted by re-tokenising the returned text, the same way for both.

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
        default=100, metadata={"help": "Unlabeled instructions sampled from (100 x 10 samples: seconds a round)."}
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
    mixed_precision: MixedPrecision = field(default="no", metadata={"help": MIXED_PRECISION_HELP})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_positive(self, "instructions", "n", "temperature", "repeats", "torch_threads", "max_new_tokens")
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


def per_prompt_generate(model, tokenizer, instructions: list[str], n: int, temperature: float,
                        max_new_tokens: int, seed: int) -> list[list[str]]:
    """``n`` samples per instruction with one ``generate`` call per prompt (no padding, n rows a call)."""
    import torch

    from harness.generation import chat_prompts

    torch.manual_seed(seed)
    results = []
    with torch.no_grad():
        for prompt in chat_prompts(tokenizer, instructions):
            encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
            out = model.generate(**encoded, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new_tokens, num_return_sequences=n,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
            results.append([t.strip() for t in texts])
    return results


def count_tokens(tokenizer, samples: list[list[str]]) -> int:
    """Tokens in the returned text, re-tokenised without special tokens (the same count for both samplers)."""
    flat = [s for group in samples for s in group]
    return sum(len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"])


def compare_samplers(bench: SamplingBenchConfig, log: Callable[[str], None] = print) -> dict:
    """Tokens and samples per second of both samplers over ``repeats`` interleaved rounds."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import make_generator

    models = bench_models(bench.cache_dir, bench.policy, need_reward_model=False)
    policy = models.policy
    instructions = list(models.splits["unlabeled"]["instruction"][: bench.instructions])
    generation = dataclasses.replace(models.config.generation,
                                     max_new_tokens=bench.max_new_tokens or models.config.generation.max_new_tokens)
    max_new_tokens = generation.max_new_tokens
    generator = make_generator(generation)
    generator.generate(policy, instructions[:1], 1, bench.temperature, 0)  # loads its model before timing
    tokenizer = AutoTokenizer.from_pretrained(policy)
    # the same device and precision as the harness's sampler
    model = AutoModelForCausalLM.from_pretrained(policy, dtype=generator.model_dtype()).to(generator.device).eval()

    samplers = {
        "harness": lambda seed: generator.generate(policy, instructions, bench.n, bench.temperature, seed,
                                                   desc="harness sampler"),
        "per_prompt": lambda seed: per_prompt_generate(model, tokenizer, instructions, bench.n, bench.temperature,
                                                       max_new_tokens, seed),
    }

    def measure(name: str) -> Callable[[int], dict]:
        def run(seed: int) -> dict:
            samples, wall_s = timed(lambda: samplers[name](seed))
            tokens = count_tokens(tokenizer, samples)
            record = {"seed": seed, "wall_s": wall_s, "tokens": tokens, "tokens_per_s": tokens / wall_s,
                      "samples_per_s": sum(map(len, samples)) / wall_s}
            log(f"round {seed} {name:<10}: {record['tokens_per_s']:.0f} tokens/s, "
                f"{record['samples_per_s']:.1f} samples/s ({wall_s:.1f}s)")
            return record
        return run

    rounds = interleaved({name: measure(name) for name in samplers}, bench.repeats)
    return {
        "policy": policy.name, "generation": asdict(generation),
        "rounds": rounds,
        "speedup_tokens_per_s": paired_ratios([r["tokens_per_s"] for r in rounds["harness"]],
                                              [r["tokens_per_s"] for r in rounds["per_prompt"]]),
    }


def summary(figures: dict) -> str:
    """The figures as the lines the benchmark prints."""
    lines = []
    for name, records in figures["samplers"]["rounds"].items():
        lines.append(f"{name:<10}  tokens/s {spread([r['tokens_per_s'] for r in records])}   "
                     f"samples/s {spread([r['samples_per_s'] for r in records])}")
    lines.append(f"speed-up harness / per-prompt (tokens/s, per round): "
                 f"{spread(figures['samplers']['speedup_tokens_per_s'])}")
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
                         "The harness's sampler against per-prompt generate calls, and a run's generation share.")
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
