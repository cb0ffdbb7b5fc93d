"""Parallel jobs: independent tasks of a run in worker processes, one torch thread each.

A run is a list of tasks (one method of one seed, one seed's over-optimisation curves, the base model's score) whose
shared stages the stage cache builds exactly once: a task that needs a stage another job is building waits on the
stage's lock, then reuses it (:mod:`harness.cache`). So tasks may run in any order and in any number of processes,
and give what one process gives; only the wall time changes.

Why processes and not threads: torch's CPU kernels on a model this small spend more time synchronising OpenMP
threads than computing, and two threads that lose a core to another program stall each other at every operation
(docs/performance.md). Two processes of one thread each keep both cores busy with no such coupling.

The rules a pool here follows:

- **Order.** Results come back in the order of the task list, whatever order the tasks finished in.
- **Spread.** A free job takes the first pending task whose group (a seed) no other job is working on, so jobs
  rarely wait on each other's stage locks; a task with group None goes anywhere.
- **Failure.** The first task that fails ends the run: the other jobs are terminated, their half-built stages
  stay in marked temporary dirs that the next run removes (:meth:`StageCache.remove_stale_temporaries`), and the
  error is raised in the parent with the worker's traceback as its cause.
- **Ctrl-C.** Workers ignore SIGINT; the parent receives it, terminates the workers and re-raises
  ``KeyboardInterrupt``, so the run ends as an interrupted one-process run does. A worker whose parent is killed
  outright ends itself within a fraction of a second.

This module imports nothing heavier than the standard library; the work itself is a module-level function the
caller names, imported in each worker.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

# The job this process is, in a pool (1, 2, ...); 0 in a process that is not a pool worker.
_JOB = 0


def job_number() -> int:
    """This process's job number in a pool (1-based), or 0 outside one."""
    return _JOB


def job_label() -> str:
    """``"[job k] "`` in the k-th worker of a pool, else empty: the prefix of its console lines and bars."""
    return f"[job {_JOB}] " if _JOB else ""


def bar(desc: str) -> dict:
    """tqdm's ``desc`` and ``position`` for a progress bar of this process: in the k-th job, labelled ``[job k]``
    and, on a terminal, drawn on line k-1, so the jobs' bars do not overwrite each other (into a file or a pipe
    tqdm's cursor moves would only leave escape codes, so there each bar keeps to its own line)."""
    if not _JOB:
        return {"desc": desc}
    return {"desc": f"{job_label()}{desc}", **({"position": _JOB - 1} if sys.stderr.isatty() else {})}


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as ``taskset`` or a container sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def idle_cores(interval: float = 0.2) -> float | None:
    """How many of the machine's cores sat idle over the next ``interval`` seconds: the growth of the kernel's
    cumulative idle and iowait time (``/proc/stat``) over that of all CPU time, times the cores; None where there
    is no ``/proc/stat`` (macOS, Windows). This process sleeps meanwhile, so it does not count itself as busy."""
    def counters() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        return ticks[3] + ticks[4], sum(ticks)

    try:
        idle_before, total_before = counters()
        time.sleep(interval)
        idle_after, total_after = counters()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total_before:
        return None
    return (os.cpu_count() or 1) * (idle_after - idle_before) / (total_after - total_before)


def default_jobs(cores: int, idle: float | None) -> int:
    """One job per core that other programs leave idle (``idle``, from :func:`idle_cores`), at least one and at most
    ``cores``; ``cores`` where idleness is unknown. A job beside another program's busy process gets a share of a
    core, and on 2 cores 2 jobs beside one busy process ran 0.86-1.04x as fast as 1 (docs/performance.md, section
    8): a core busy elsewhere buys nothing. A core half busy still counts (1.5 idle cores rounds up to 2)."""
    if idle is None:
        return cores
    return max(1, min(cores, int(idle + 0.5)))


@dataclass(frozen=True)
class Task:
    """One unit of work: ``payload`` is passed to the work function; ``group`` names what it shares (a seed)."""

    payload: Any
    group: Hashable | None = None


def run_tasks(tasks: Sequence[Task], work: Callable[[Any], Any], jobs: int,
              setup: Callable[[], None] | None = None) -> list[Any]:
    """``[work(t.payload) for t in tasks]``, in ``jobs`` worker processes when ``jobs > 1``.

    Args:
        tasks: what to do, in the order a single process would do it.
        work: a module-level function (workers import it by name), run once per task.
        jobs: worker processes; 1 runs every task here, in order, with no workers.
        setup: a picklable callable each worker runs once before its first task (building the run's suite, its
            logging, its torch settings); not run with ``jobs == 1``, where the caller has already set up.

    Returns:
        Each task's result, in task order.

    Raises:
        Exception: the first exception a task (or a worker's setup) raised, with the worker's traceback as a note.
        RuntimeError: a worker died without a word (killed, out of memory).
        KeyboardInterrupt: after terminating the workers.
    """
    jobs = min(jobs, len(tasks))
    if jobs <= 1:
        return [work(task.payload) for task in tasks]
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited OpenMP or lock state
    outbox = context.Queue()
    workers = {}
    for number in range(1, jobs + 1):
        inbox = context.Queue()
        process = context.Process(target=_worker, args=(number, inbox, outbox, setup), daemon=True,
                                  name=f"harness-job-{number}")
        process.start()
        workers[number] = (process, inbox)
    results: list[Any] = [None] * len(tasks)
    pending, running = list(range(len(tasks))), {}  # running: job number -> task index
    try:
        while pending or running:
            for number in [n for n in workers if n not in running]:
                if not pending:
                    break
                index = _next_task(tasks, pending, running.values())
                pending.remove(index)
                running[number] = index
                workers[number][1].put((index, work, tasks[index].payload))
            number, index, result, error = _next_message(outbox, workers, running)
            if error is not None:
                raise error
            del running[number]
            results[index] = result
    except BaseException:
        for process, _ in workers.values():
            process.terminate()  # the other jobs stop where they are; nothing they half built was published
        for process, _ in workers.values():
            process.join()
        raise
    for process, inbox in workers.values():
        inbox.put(None)
    for process, _ in workers.values():
        process.join()
    return results


def _next_task(tasks: Sequence[Task], pending: list[int], running) -> int:
    """The first pending task whose group no running task has (or the first pending task, if none is free)."""
    busy = {tasks[i].group for i in running} - {None}
    for index in pending:
        if tasks[index].group is None or tasks[index].group not in busy:
            return index
    return pending[0]


def _next_message(outbox, workers: dict, running: dict[int, int]) -> tuple:
    """The next ``(job, task index, result, error)`` from the workers. Polls, so that Ctrl-C reaches the parent at
    once and a worker that died silently is noticed.

    Raises:
        RuntimeError: a worker running a task is gone.
    """
    while True:
        try:
            return outbox.get(timeout=0.2)
        except queue.Empty:
            pass
        for number, index in running.items():
            process = workers[number][0]
            if not process.is_alive():
                raise RuntimeError(f"job {number} ended unexpectedly (exit code {process.exitcode}) while running "
                                   f"task {index}; finished stages are kept, rerun the same command to resume")


def _worker(number: int, inbox, outbox, setup: Callable[[], None] | None) -> None:
    """A worker: take its job number, leave Ctrl-C to the parent, set up once, then run tasks until told to stop."""
    global _JOB
    _JOB = number
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=end_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        if setup is not None:
            setup()
    except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
        outbox.put((number, None, None, _portable(err)))
        return
    while (item := inbox.get()) is not None:
        index, work, payload = item
        try:
            outbox.put((number, index, work(payload), None))
        except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
            outbox.put((number, index, None, _portable(err)))


def end_with_parent(parent: int) -> None:
    """Ends this process as soon as ``parent`` is gone (killed with SIGKILL, which it cannot pass on), so no
    orphaned worker goes on building what nobody will read; what it half built stays in a marked temporary dir.
    Run it in a daemon thread."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _portable(err: BaseException) -> BaseException:
    """``err`` with the worker's traceback as a note, made picklable if it is not (as its type name and text)."""
    trace = "".join(traceback.format_exception(err)).rstrip()
    try:
        pickle.dumps(err)
    except Exception:  # noqa: BLE001 - any exception that cannot cross a process boundary
        err = RuntimeError(f"{type(err).__name__}: {err}")
    err.add_note(f"in job {_JOB}:\n{trace}")
    return err
