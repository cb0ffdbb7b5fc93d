"""Our PPO (:func:`harness.trainers.ppo.train_ppo`) against TRL 1.12's experimental PPOTrainer, side by side.

    python -m benchmarks.ppo_vs_trl                       # 20 steps x 32 episodes, 3 interleaved rounds
    python -m benchmarks.ppo_vs_trl --steps 40 --repeats 5 --out ppo_vs_trl.json
    python -m benchmarks.ppo_vs_trl --trl-without-gc      # adds TRL without its per-step gc.collect() calls
    python -m benchmarks.ppo_vs_trl --policy P --reward-model R --mixed-precision bf16   # other models, on a GPU

Both trainers start from the same SFT policy of the tiny preset (or ``--policy``, e.g. a SmolLM2-135M-sized
model from :mod:`benchmarks.random_models`), against the same reward model (which also
initialises both value models), on the same unlabeled prompts, with the same rollout batch, minibatch, PPO epochs,
response length, learning rate, KL coefficient, clip ranges, GAE and whitening settings. Each round runs both with
the round's seed, in alternating order. Printed per trainer:

- episodes per second: rollout responses trained on / wall time of the whole call (loading the models, training,
  saving the policy), as a user pays it;
- proxy-reward gain: the reward model's mean score of samples of the final policy minus that of the SFT policy, on
  held-out ``val`` instructions, both sampled by the harness's sampler with the same seed (temperature 1, as PPO
  samples), so the two trainers are judged by one yardstick rather than by what each logs.

What cannot be made equal, and why it matters little here: TRL's loop never clips gradients (ours clips at
``max_grad_norm``); TRL subtracts ``missing_eos_penalty`` from the score of a response without eos where ours
replaces the score by ``truncation_penalty`` (set here to the same magnitude); TRL takes the rollout log-probs from
``generate``'s scores where ours recomputes them with a forward pass; TRL steps one AdamW over policy and value
model together, ours one each (same learning rate, no weight decay in both); ours saves one checkpoint (the last
step) besides the final policy, TRL only the final policy. TRL never seeds numpy, which its minibatch shuffle draws
from, so :func:`train_trl` seeds it with the round's seed as accelerate's ``set_seed`` does for ours.

TRL 1.12 is the last release with PPOTrainer and the project depends on a later TRL, so it is never installed into
the environment: on first use this benchmark runs ``python -m pip install --no-deps --target
<cache>/trl112 trl==1.12.0`` and puts that folder first on ``sys.path`` of this process only. The SFT and reward
model stages are built (once, then cached) in a child process that imports the project's own TRL.
"""

from __future__ import annotations

import concurrent.futures
import gc
import importlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from benchmarks.common import (
    DEFAULT_CACHE,
    MIXED_PRECISION_HELP,
    MixedPrecision,
    bench_models,
    describe_machine,
    interleaved,
    machine,
    mean_and_standard_error,
    paired_ratios,
    require_models,
    run_and_report,
    spread,
    timed,
)
from harness.core.precision import set_mixed_precision
from harness.core.schema import require_choice, require_positive, require_that

TRL_VERSION = "1.12.0"


@dataclass
class PPOBenchConfig:
    """What the benchmark runs; every PPO hyper-parameter not listed is the tiny preset's default."""

    steps: int = field(
        default=20, metadata={"help": "PPO steps (rollout batches) each trainer runs per round (tiny preset: 20)."}
    )
    rollout_batch_size: int = field(default=32, metadata={"help": "Prompts sampled per PPO step (both trainers)."})
    minibatch_size: int = field(
        default=16, metadata={"help": "Responses per optimiser step; must divide rollout_batch_size."}
    )
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each rollout batch (both trainers)."})
    max_new_tokens: int = field(default=32, metadata={"help": "Longest response in tokens (both trainers)."})
    repeats: int = field(
        default=3, metadata={"help": "Interleaved rounds; round r trains both trainers with seed r."}
    )
    eval_prompts: int = field(
        default=64, metadata={"help": "Held-out val instructions the proxy-reward gain is measured on."}
    )
    eval_samples: int = field(default=4, metadata={"help": "Samples per held-out instruction (temperature 1)."})
    torch_threads: int = field(
        default=1, metadata={"help": "torch CPU threads for both trainers (the tiny preset uses 1)."}
    )
    cache_dir: Path = field(
        default=DEFAULT_CACHE,
        metadata={"help": "Where the base model, the SFT and reward-model stages and TRL 1.12 are kept."},
    )
    trl_without_gc: bool = field(
        default=False,
        metadata={"help": "Add a third candidate: TRL with the gc.collect() its loop calls twice a step made a "
                          "no-op, to show how much of the difference those collections make."},
    )
    policy: Path | None = field(
        default=None, metadata={"help": "Policy checkpoint both trainers start from (None: the tiny preset's SFT "
                                        "stage); needs --reward-model."},
    )
    reward_model: Path | None = field(
        default=None, metadata={"help": "Reward-model checkpoint (None: the tiny preset's); it also initialises "
                                        "both value models."},
    )
    mixed_precision: MixedPrecision = field(default="no", metadata={"help": MIXED_PRECISION_HELP})
    out: Path | None = field(default=None, metadata={"help": "Also write the figures as JSON to this file."})

    def __post_init__(self) -> None:
        require_models(self)
        require_choice(self, "mixed_precision")
        set_mixed_precision(self.mixed_precision)
        require_positive(self, "steps", "rollout_batch_size", "minibatch_size", "ppo_epochs", "max_new_tokens",
                         "repeats", "eval_prompts", "eval_samples", "torch_threads")
        require_that(self.rollout_batch_size % self.minibatch_size == 0, self, "minibatch_size",
                     f"a divisor of rollout_batch_size ({self.rollout_batch_size})")


class Inputs(NamedTuple):
    """What both trainers share, built by :func:`prepare_inputs` in a child process."""

    sft: Path
    reward_model: Path
    prompts: list[str]  # the unlabeled split: PPO's training prompts
    eval_prompts: list[str]  # distinct val instructions, held out from PPO


class Trained(NamedTuple):
    """One trainer's call: where its policy went, how long the call took, the proxy reward it logged per step."""

    policy: Path
    wall_s: float
    logged_rewards: list[float]


# -- TRL 1.12, beside the project's own TRL ------------------------------------------------------------------------

def ensure_trl112(cache_dir: Path) -> Path:
    """The folder holding TRL 1.12, installed there with pip on first use.

    Raises:
        SystemExit: pip could not install it (no registry access, for one), with pip's last lines.
    """
    target = Path(cache_dir) / "trl112"
    if (target / "trl" / "experimental" / "ppo").is_dir():
        return target
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), f"trl=={TRL_VERSION}"]
    print("installing TRL 1.12 beside the project (not into its environment):", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise SystemExit(f"ppo_vs_trl: could not install trl=={TRL_VERSION} into {target}; pip needs to reach the "
                         f"package registry (or copy an installed trl {TRL_VERSION} there). pip said:\n{tail}")
    return target


def import_trl112(path: Path):
    """``trl.experimental.ppo`` from ``path``, which goes first on ``sys.path`` (this process only).

    Raises:
        RuntimeError: another TRL was imported before, so this process cannot load 1.12 any more.
    """
    if "trl" in sys.modules and not str(getattr(sys.modules["trl"], "__file__", "")).startswith(str(path)):
        raise RuntimeError("ppo_vs_trl: the project's TRL is already imported in this process; TRL 1.12 must be "
                           "put on sys.path before anything imports trl")
    sys.path.insert(0, str(path))
    trl = importlib.import_module("trl")
    if trl.__version__ != TRL_VERSION:
        raise RuntimeError(f"ppo_vs_trl: expected trl {TRL_VERSION} from {path}, got {trl.__version__}")
    return importlib.import_module("trl.experimental.ppo")


# -- the two trainers -------------------------------------------------------------------------------------------------

def prepare_inputs(bench: PPOBenchConfig) -> Inputs:
    """The policy and reward model (the tiny preset's cached stages unless given) and the tiny world's prompts.
    Runs in a child process."""
    models = bench_models(bench.cache_dir, bench.policy, bench.reward_model)
    held_out = list(dict.fromkeys(models.splits["val"]["instruction"]))[:bench.eval_prompts]
    return Inputs(models.policy, models.reward_model, list(models.splits["unlabeled"]["instruction"]), held_out)


def ppo_config(bench: PPOBenchConfig):
    """Our PPOConfig for the benchmark: the tiny preset's defaults with the benchmark's sizes, one checkpoint."""
    from harness.trainers.config import PPOConfig

    return PPOConfig(num_steps=bench.steps, rollout_batch_size=bench.rollout_batch_size,
                     minibatch_size=bench.minibatch_size, ppo_epochs=bench.ppo_epochs,
                     max_new_tokens=bench.max_new_tokens, save_every=bench.steps)


def train_ours(inputs: Inputs, cfg, seed: int, out_dir: Path) -> Trained:
    from harness.trainers.ppo import train_ppo

    run, wall_s = timed(lambda: train_ppo(inputs.sft, inputs.reward_model, inputs.prompts, cfg, out_dir, seed,
                                          show_progress=False))
    return Trained(run.policy, wall_s, [h["proxy_reward"] for h in run.history])


def trl_arguments(trl_ppo, cfg, seed: int, out_dir: Path):
    """TRL's PPOConfig with every knob our PPOConfig has mapped onto it (see the module docstring for the rest)."""
    from harness.core.precision import trainer_precision

    return trl_ppo.PPOConfig(
        output_dir=str(out_dir / "trainer"),
        seed=seed,
        # batches: one rollout of rollout_batch_size prompts, generated in one call as ours does, then
        # rollout / minibatch optimiser steps per epoch
        per_device_train_batch_size=cfg.rollout_batch_size,
        gradient_accumulation_steps=1,
        num_mini_batches=cfg.rollout_batch_size // cfg.minibatch_size,
        local_rollout_forward_batch_size=cfg.rollout_batch_size,
        num_ppo_epochs=cfg.ppo_epochs,
        total_episodes=cfg.num_steps * cfg.rollout_batch_size,
        # rollout
        response_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        stop_token="eos",
        missing_eos_penalty=-cfg.truncation_penalty,
        # objective
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",  # ours keeps the learning rate constant
        weight_decay=0.0,
        kl_coef=cfg.kl_coef,
        kl_estimator="k1",  # log pi - log pi_ref per token, as ours
        cliprange=cfg.clip_range,
        cliprange_value=cfg.value_clip_range,
        vf_coef=cfg.vf_coef,
        gamma=cfg.gamma,
        lam=cfg.lam,
        whiten_rewards=cfg.whiten_rewards,
        # our precision, and quiet: TRL defaults bf16 and gradient checkpointing on (4x slower on CPU)
        **trainer_precision(),
        gradient_checkpointing=False,
        num_sample_generations=0,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


NO_COLLECTION = types.SimpleNamespace(collect=lambda *args: 0)  # stands in for the gc module in TRL's trainer


def train_trl(trl_ppo, inputs: Inputs, cfg, seed: int, out_dir: Path, collect_garbage: bool = True) -> Trained:
    """One TRL PPOTrainer call; with ``collect_garbage`` false its module sees a gc whose collect does nothing."""
    import numpy
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback

    from harness.generation import chat_prompts

    sys.modules[trl_ppo.PPOTrainer.__module__].gc = gc if collect_garbage else NO_COLLECTION
    # TRL shuffles minibatches with numpy's global generator and never seeds it; seed it as ours does (accelerate's
    # set_seed), so a round's result does not depend on what ran before it in this process.
    numpy.random.seed(seed)

    def call():
        tokenizer = AutoTokenizer.from_pretrained(inputs.sft, padding_side="left")  # TRL expects left-padded queries
        queries = Dataset.from_dict({"input_ids": tokenizer(chat_prompts(tokenizer, inputs.prompts),
                                                            add_special_tokens=False)["input_ids"]})
        models = dict(
            model=AutoModelForCausalLM.from_pretrained(inputs.sft),
            ref_model=AutoModelForCausalLM.from_pretrained(inputs.sft),
            reward_model=AutoModelForSequenceClassification.from_pretrained(inputs.reward_model),
            value_model=AutoModelForSequenceClassification.from_pretrained(inputs.reward_model),
        )
        trainer = trl_ppo.PPOTrainer(args=trl_arguments(trl_ppo, cfg, seed, out_dir), processing_class=tokenizer,
                                     train_dataset=queries, **models)
        trainer.remove_callback(PrinterCallback)  # it prints every step's metrics
        trainer.train()
        trainer.save_model(str(out_dir / "policy"))
        tokenizer.save_pretrained(out_dir / "policy")
        return [log["objective/scores"] for log in trainer.state.log_history if "objective/scores" in log]

    logged, wall_s = timed(call)
    return Trained(out_dir / "policy", wall_s, logged)


# -- the yardstick ----------------------------------------------------------------------------------------------------

EVAL_SEED = 1234  # one sampling seed for every policy evaluated, so the gains share their baseline's noise


def mean_proxy_reward(policy: Path, reward_model: Path, prompts: list[str], samples: int,
                      max_new_tokens: int) -> tuple[float, float]:
    """Mean reward-model score of ``samples`` temperature-1 samples per prompt, drawn by the harness's sampler,
    and its standard error (the samples' standard deviation over the square root of their number)."""
    from harness.config import GenerationConfig
    from harness.generation import HFGenerator
    from harness.trainers.scoring import RewardModelScorer

    generator = HFGenerator(GenerationConfig(batch_size=128, max_new_tokens=max_new_tokens))
    outputs = generator.generate(policy, prompts, samples, 1.0, EVAL_SEED, desc="evaluating")
    flat_prompts = [p for p, outs in zip(prompts, outputs) for _ in outs]
    scores = RewardModelScorer(reward_model).score(flat_prompts, [o for outs in outputs for o in outs])
    return scores.mean().item(), (scores.std() / len(scores) ** 0.5).item()


# -- the benchmark ----------------------------------------------------------------------------------------------------

def run_benchmark(bench: PPOBenchConfig, log: Callable[[str], None] = print) -> dict:
    """Prepares the models, trains both trainers ``repeats`` times interleaved, and returns the figures."""
    trl_dir = ensure_trl112(bench.cache_dir)
    # The stages train with the project's TRL (1.16), so they are built in a child process; this one then imports
    # TRL 1.12 before anything imports trl.
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        inputs = pool.submit(prepare_inputs, bench).result()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental warns on import
    trl_ppo = import_trl112(trl_dir)

    import torch

    torch.set_num_threads(bench.torch_threads)
    cfg = ppo_config(bench)
    episodes = bench.steps * bench.rollout_batch_size
    at_start = machine()
    log(f"machine: {describe_machine(at_start)}")

    def evaluate(policy: Path) -> tuple[float, float]:
        return mean_proxy_reward(policy, inputs.reward_model, inputs.eval_prompts, bench.eval_samples,
                                 bench.max_new_tokens)

    with tempfile.TemporaryDirectory(prefix="ppo_vs_trl-") as scratch:
        def candidate(name: str, train: Callable[[int, Path], Trained]) -> Callable[[int], dict]:
            def measure(seed: int) -> dict:
                trained = train(seed, Path(scratch) / f"{name}-{seed}")
                final, final_se = evaluate(trained.policy)
                record = {"seed": seed, "wall_s": trained.wall_s, "episodes_per_s": episodes / trained.wall_s,
                          "final_reward": final, "final_reward_se": final_se,
                          "logged_rewards": trained.logged_rewards}
                log(f"round {seed} {name:<14}: {record['episodes_per_s']:.2f} episodes/s "
                    f"({trained.wall_s:.1f}s), final proxy reward {record['final_reward']:.3f}")
                return record
            return measure

        initial, initial_se = evaluate(inputs.sft)
        candidates = {
            "ours": candidate("ours", lambda seed, out: train_ours(inputs, cfg, seed, out)),
            "trl": candidate("trl", lambda seed, out: train_trl(trl_ppo, inputs, cfg, seed, out)),
        }
        if bench.trl_without_gc:
            candidates["trl_without_gc"] = candidate(
                "trl_without_gc", lambda seed, out: train_trl(trl_ppo, inputs, cfg, seed, out, collect_garbage=False))
        log(f"{bench.repeats} rounds x {len(candidates)} trainers x {bench.steps} steps x {bench.rollout_batch_size} "
            f"episodes, torch threads {bench.torch_threads}")
        results = interleaved(candidates, bench.repeats)

    for records in results.values():
        for record in records:
            record["reward_gain"] = record["final_reward"] - initial
    speeds = {f"speed_ratio_ours_over_{name}": paired_ratios([r["episodes_per_s"] for r in results["ours"]],
                                                             [r["episodes_per_s"] for r in records])
              for name, records in results.items() if name != "ours"}
    return {
        "benchmark": "ppo_vs_trl",
        "machine": at_start,
        "config": {**asdict(bench), "ppo": asdict(cfg), "trl": TRL_VERSION},
        "episodes_per_round": episodes,
        "initial_reward": initial,
        "initial_reward_se": initial_se,
        "rounds": results,
        **speeds,
        "gain_difference_ours_minus_trl": [o["reward_gain"] - t["reward_gain"]
                                           for o, t in zip(results["ours"], results["trl"])],
    }


def summary(figures: dict) -> str:
    """The figures as the lines the benchmark prints."""
    errors = [r["final_reward_se"] for records in figures["rounds"].values() for r in records]
    lines = [f"initial proxy reward (SFT policy): {figures['initial_reward']:.3f}; standard error of each evaluation: "
             f"{figures['initial_reward_se']:.3f} (SFT), {min(errors):.3f}-{max(errors):.3f} (final policies)"]
    for name, records in figures["rounds"].items():
        lines.append(f"{name:<14}  episodes/s {spread([r['episodes_per_s'] for r in records])}   "
                     f"reward gain {spread([r['reward_gain'] for r in records])}")
    for name in figures["rounds"]:
        if name != "ours":
            lines.append(f"speed ratio ours/{name} (per round): {spread(figures[f'speed_ratio_ours_over_{name}'])}")
    difference = figures["gain_difference_ours_minus_trl"]
    lines.append(f"reward gain ours - trl (per round): {spread(difference)}")
    if len(difference) > 1:
        mean, error = mean_and_standard_error(difference)
        lines.append(f"reward gain ours - trl: mean {mean:+.3f}, standard error over rounds {error:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_and_report(PPOBenchConfig, argv, "python -m benchmarks.ppo_vs_trl", "Our PPO against TRL 1.12's PPOTrainer: episodes per second and proxy-reward gain.",
                          run_benchmark, summary)


if __name__ == "__main__":
    sys.exit(main())
