"""A randomly initialised policy and reward model with a real model's architecture and tokenizer.

    python -m benchmarks.random_models --like ~/.cache/rlp-harness/models/smollm2-135m-instruct-<key> --out runs/random-smollm2

Throughput depends on the architecture, not on the weights, so the PPO and sampling benchmarks can measure a
SmolLM2-135M-sized run from these two checkpoints where the real weights are not at hand. ``--like`` is any HF
checkpoint dir or a dir with only its ``config.json`` and tokenizer files (a few MB); the weights are drawn with
the architecture's own initialisation and a fixed seed. The reward model is the same network with a one-output
score head (``AutoModelForSequenceClassification``). Rewards from a random model are noise, so only the speed
figures of a benchmark on these checkpoints mean anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build_random_models(like: Path, out: Path, seed: int = 0) -> tuple[Path, Path]:
    """Writes ``out/policy`` and ``out/reward_model`` with ``like``'s architecture and tokenizer.

    Returns:
        The policy dir and the reward-model dir.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(like)
    tokenizer = AutoTokenizer.from_pretrained(like)
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    policy_dir, reward_dir = Path(out) / "policy", Path(out) / "reward_model"
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(policy_dir)
    torch.manual_seed(seed + 1)
    reward_config = AutoConfig.from_pretrained(like, num_labels=1, pad_token_id=config.pad_token_id)
    AutoModelForSequenceClassification.from_config(reward_config, dtype=torch.float32).save_pretrained(reward_dir)
    for directory in (policy_dir, reward_dir):
        tokenizer.save_pretrained(directory)
    return policy_dir, reward_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.random_models", description=__doc__.splitlines()[0])
    parser.add_argument("--like", type=Path, required=True,
                        help="checkpoint dir (or just its config.json and tokenizer files) to copy the architecture of")
    parser.add_argument("--out", type=Path, required=True, help="where policy/ and reward_model/ are written")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    args = parser.parse_args(argv)
    if not (args.like / "config.json").is_file():
        parser.error(f"--like: {args.like} has no config.json; give a HF checkpoint dir")
    for path in build_random_models(args.like, args.out, args.seed):
        print(path)


if __name__ == "__main__":
    main()
