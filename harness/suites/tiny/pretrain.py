"""Builds the tiny world's base model: a ~1 M-parameter LLaMA pretrained from scratch on the world's raw text.

    python -m harness.suites.tiny.pretrain --out DIR

The result is a plain Hugging Face checkpoint dir (``save_pretrained`` of a ``LlamaForCausalLM`` and of the
tokenizer with its chat template), so ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained(dir)`` load it with
no custom code. The corpus never shows the chat markers: the base model knows the world's facts and answer
formats but not how to follow a chat turn, which is what SFT adds.

Cost: the defaults (1200 steps of 32 x 64 tokens, ~1 M parameters) are trained by two data-parallel processes of
one thread each (``BaseModelConfig.processes``), which split every batch and average their gradients: the same
optimisation as one process, on both cores of a 2-core machine (docs/performance.md has the measured times). Fewer
steps leave a model that cannot yet copy words from a question into its answer, which SFT then cannot teach.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.core.publish import publish_dir
from harness.jobs import end_with_parent
from harness.suites.tiny.config import BaseModelConfig
from harness.suites.tiny.tokenizer import train_tokenizer
from harness.suites.tiny.world import pretraining_documents

# Bump when the corpus, tokenizer or training code changes in a way the config fields do not show, so that cached
# base models built by older code are not reused.
BUILD_VERSION = 7


def base_model_dir_name(config: BaseModelConfig) -> str:
    """``tiny-base-<hash>``: the hash covers every field of the config and :data:`BUILD_VERSION`."""
    key = json.dumps({"build_version": BUILD_VERSION, **dataclasses.asdict(config)}, sort_keys=True)
    return f"tiny-base-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def ensure_base_model(config: BaseModelConfig, cache_dir: Path, num_threads: int | None = None) -> Path:
    """The base model for ``config`` under ``cache_dir``, built on first use and reused afterwards.

    Args:
        config: the base model's architecture and pretraining.
        cache_dir: where built models live (one sub-directory per config hash).
        num_threads: torch CPU threads of each build process (does not change what is built); None shares the
            caller's setting (a run's ``runtime.torch_threads``) among the ``config.processes`` processes, at least
            one each. Two threads on 2 cores that other processes also use ran 30 times slower than one (7 s a
            step instead of 0.2), so the build never asks for more threads than its caller chose.

    Returns:
        The checkpoint dir ``cache_dir/tiny-base-<hash>``.
    """
    target = Path(cache_dir) / base_model_dir_name(config)
    if not target.is_dir():
        build_base_model(config, target, num_threads)
    return target


def build_base_model(config: BaseModelConfig, out_dir: Path, num_threads: int | None = None) -> Path:
    """Pretrains the base model and publishes it atomically at ``out_dir``.

    Everything is written to a temporary dir beside ``out_dir`` and renamed into place at the end, so a killed
    build never leaves a half-written checkpoint that a later run would load. If another process publishes the
    same dir first, its copy is kept.

    Raises:
        OSError: if ``out_dir`` cannot be created (for example, a file is in the way).
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with publish_dir(out_dir, published_by_another=out_dir.is_dir) as staging:
        threads = max(1, torch.get_num_threads() // config.processes) if num_threads is None else num_threads
        _pretrain(config, staging, threads)
    return out_dir


@contextlib.contextmanager
def _torch_settings(num_threads: int) -> Iterator[None]:
    """Sets the thread count and deterministic kernels for the build, and restores the caller's settings."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _packed_rows(
    documents: Iterator[str], tokenizer: PreTrainedTokenizerFast, n_rows: int, seq_len: int
) -> torch.Tensor:
    """Tokenises documents, ends each with eos, and packs them back to back into ``(n_rows, seq_len)`` ids."""
    needed, ids = n_rows * seq_len, []
    while len(ids) < needed:
        chunk = list(itertools.islice(documents, 4096))
        for doc_ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            ids += doc_ids + [tokenizer.eos_token_id]
    return torch.tensor(ids[:needed]).view(n_rows, seq_len)


def _pretrain(config: BaseModelConfig, out_dir: Path, num_threads: int) -> None:
    """Trains on ``config.processes`` data-parallel processes (this one alone when it is 1) and writes the
    checkpoint and ``pretraining.json`` into ``out_dir``."""
    start = time.time()  # wall clock, not perf_counter: rank 0 may be another process
    if config.processes == 1:
        _train_rank(0, config, out_dir, num_threads, start)
    else:
        # A file store in the staging dir: no port to pick or collide with when two builds run at once.
        rendezvous = out_dir / "rendezvous"
        torch.multiprocessing.spawn(
            _train_rank, args=(config, out_dir, num_threads, start, rendezvous, os.getpid()), nprocs=config.processes
        )
        rendezvous.unlink(missing_ok=True)


def _train_rank(
    rank: int, config: BaseModelConfig, out_dir: Path, num_threads: int, start: float,
    rendezvous: Path | None = None, parent: int | None = None,
) -> None:
    """One data-parallel process: every rank builds the same corpus, tokenizer and initial weights, takes its
    equal share of each batch, and DDP averages the gradients, so the update is the whole batch's. Rank 0 saves
    the model and the summary (``start``: the build's start, ``time.time()``)."""
    if rendezvous is not None:
        threading.Thread(target=end_with_parent, args=(parent,), daemon=True).start()
        torch.distributed.init_process_group(
            "gloo", init_method=rendezvous.resolve().as_uri(), rank=rank, world_size=config.processes
        )
    try:
        with _torch_settings(num_threads):
            model, tokenizer, losses = _train(config, rank, distributed=rendezvous is not None)
    finally:
        if rendezvous is not None:
            torch.distributed.destroy_process_group()
    if rank != 0:
        return
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tail = losses[-max(1, len(losses) // 10):]
    summary = {
        "config": dataclasses.asdict(config),
        "build_version": BUILD_VERSION,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": sum(tail) / len(tail),
        "num_threads": num_threads,  # of each process
        "seconds": round(time.time() - start, 1),
    }
    (out_dir / "pretraining.json").write_text(json.dumps(summary, indent=2) + "\n")


def _train(
    config: BaseModelConfig, rank: int, distributed: bool
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, list[float]]:
    """The pretraining loop of one rank; returns the trained model, the tokenizer and the whole batch's losses."""
    torch.manual_seed(config.seed)
    documents = pretraining_documents(config)
    tokenizer = train_tokenizer(
        itertools.islice(documents, config.tokenizer_documents), config.vocab_size, config.max_position_embeddings
    )
    rows = _packed_rows(documents, tokenizer, config.steps * config.batch_size, config.seq_len)  # (S*B, T)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads,
            max_position_embeddings=config.max_position_embeddings,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    trained = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, config))
    model.train()
    losses = []
    progress = tqdm(rows.split(config.batch_size), desc="pretraining tiny base model", unit="step", disable=rank > 0)
    for batch in progress:  # (B, T)
        share = batch.chunk(config.processes)[rank]  # (B / processes, T): equal token counts, so mean of means
        loss = trained(input_ids=share, labels=share).loss
        loss.backward()  # DDP averages the ranks' gradients here: the gradient of the whole batch's mean loss
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        batch_loss = loss.detach()
        if distributed:
            torch.distributed.all_reduce(batch_loss, op=torch.distributed.ReduceOp.AVG)
        losses.append(batch_loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return model, tokenizer, losses


def _lr_factor(step: int, config: BaseModelConfig) -> float:
    """Linear warm-up to 1, then cosine decay to 0.1 at the last step."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint dir to create")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=BaseModelConfig.steps, help="pretraining steps")
    parser.add_argument("--seed", type=int, default=BaseModelConfig.seed, help="pretraining seed")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"--out {args.out} already exists; pick a new dir")
    out = build_base_model(BaseModelConfig(steps=args.steps, seed=args.seed), args.out, args.threads)
    print(json.loads((out / "pretraining.json").read_text()))


if __name__ == "__main__":
    main()
