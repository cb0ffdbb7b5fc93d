"""Several processes (``accelerate launch``): every process trains, the main process alone writes.

Under ``accelerate launch --multi_gpu --num_processes N -m harness.run ...`` each of the N processes runs the whole
pipeline, in step. The rule they follow:

- Training stages (SFT, reward model, PPO) are *collective*: every process runs the stage's build into the same
  directory, each on its share of every batch, and DDP (or DeepSpeed) averages the gradients. Inside a build only
  the main process writes files.
- Every other stage (samples, win rates, the knowledge task, drift) is built by the main process alone; the others
  wait and then read what it published. Generation and evaluation are a small share of a run at the budgets here,
  and doing them once keeps their outputs exactly those of a single-process run with the same policy.
- Only the main process takes the run lock (and the stage locks of the shared cache), publishes stage dirs, and
  writes results, reports and leaderboards.

With one process every helper here is a no-op, so a plain ``python -m harness.run`` behaves as if this module did
not exist.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, parse_flag_from_env

from harness import rundir
from harness.cache import RunLock, RunLockedError, StageCache, StageResult, fingerprint

# How long a process may wait for the others. Non-main processes wait while the main process alone generates and
# evaluates, which takes hours for a 7B model (policy samples, MMLU): torch's default (30 min for gloo, 10 for
# NCCL) would end such a run. A process that fails does not leave the others hanging: the launcher (torchrun)
# stops them all, so this bound only matters for a genuine hang.
WAIT_TIMEOUT = timedelta(hours=24)


def state() -> PartialState:
    """accelerate's process state, set up on first use with :data:`WAIT_TIMEOUT`.

    It runs on the CPU when accelerate was told so or there is no GPU: accelerate launches several CPU processes
    only through ``--multi_gpu`` (its ``--cpu`` flag starts one process), so without this a CPU-only launch would
    start N processes that each believe they are alone.
    """
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu, timeout=WAIT_TIMEOUT)  # once set up, the arguments are ignored


def is_main_process() -> bool:
    """True in the process that writes (process 0), and in a run without ``accelerate launch``."""
    return state().is_main_process


def num_processes() -> int:
    """How many processes run the pipeline together (1 without ``accelerate launch``)."""
    return state().num_processes


def device() -> str:
    """This process's device: ``cpu``, or ``cuda`` (one process) / ``cuda:<local rank>`` (several)."""
    if num_processes() == 1:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(state().device)


def barrier() -> None:
    """Waits until every process gets here."""
    state().wait_for_everyone()


def broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every process (any picklable object)."""
    if num_processes() == 1:
        return obj
    return broadcast_object_list([obj], from_process=0)[0]


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (building or downloading into a cache), then the others (reading it)."""
    with state().main_process_first():
        yield


def per_process_batch(batch_size: int, name: str) -> int:
    """The share of a global batch each process takes, so results do not depend on the number of processes.

    Raises:
        ValueError: ``batch_size`` does not split evenly over the processes; names the field ``name``.
    """
    processes = num_processes()
    if batch_size % processes:
        raise ValueError(f"{name}: the batch of {batch_size} must split evenly over the {processes} processes; "
                         f"choose a multiple of {processes}")
    return batch_size // processes


@contextmanager
def run_lock(run_dir: Path, run: dict, overwrite: bool = False) -> Iterator[None]:
    """The run dir's lock, held by the main process for the whole launch, and the dir claimed for this run.

    Under the lock the main process checks again that the run may write into ``run_dir`` and marks it as a run dir
    of the harness (:func:`harness.rundir.claim`).

    Raises:
        RunLockedError: on every process, when the main process cannot take the lock.
        RunDirError: on every process, when ``run_dir`` holds something this run must not replace.
    """
    lock = RunLock(run_dir)
    refusal = None
    if is_main_process():
        try:
            rundir.create(run_dir)
            lock.acquire()
            rundir.claim(run_dir, run, overwrite)
        except (RunLockedError, rundir.RunDirError) as err:
            lock.release()
            refusal = err
    refusal = broadcast(refusal)
    if refusal is not None:
        raise refusal
    try:
        yield
    finally:
        lock.release()  # a no-op on the processes that never took it


def build_stage(cache: StageCache, name: str, inputs: dict, build: Callable[[Path], None],
                collective: bool = False) -> StageResult:
    """``cache.stage(name, inputs, build)``, with the main process deciding and publishing for all processes.

    The main process looks the stage up and tells the others whether it builds it, and in which temporary dir. A
    collective stage is built by every process into that dir (a training stage: each process takes its share of
    the batches, the main process writes), and is published once all of them are done; any other stage is built by
    the main process alone. Every process gets the published stage's result. A build must not ask for another
    stage: the processes would no longer agree on which stage they are at.

    Raises:
        RuntimeError: the processes disagree on the stage's inputs (they computed different data, so they would
            train on different things).
    """
    if num_processes() == 1:
        return cache.stage(name, inputs, build)
    if collective:  # a trained model depends on how many processes shared its batches (PPO's are per process)
        inputs = {**inputs, "processes": num_processes()}
    expected = fingerprint({"stage": name, **inputs})
    if is_main_process():
        built = False

        def build_for_all(tmp: Path) -> None:
            nonlocal built
            built = True
            broadcast((expected, str(tmp)))
            build(tmp)
            if collective:
                barrier()  # the others are done with tmp before it is renamed

        result = cache.stage(name, inputs, build_for_all)
        if not built:
            broadcast((expected, None))
        return broadcast(result)

    announced, tmp = broadcast(None)
    if announced != expected:
        raise RuntimeError(f"stage {name}: this process computed other inputs than the main process; every "
                           "process must see the same data and configuration")
    if tmp is not None and collective:
        build(Path(tmp))
        barrier()
    return broadcast(None)
