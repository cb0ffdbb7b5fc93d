"""Content-addressed, atomically published stage cache, and the run-dir lock.

Every expensive stage (SFT, reward model, PPO, sampling, evaluation) is a directory
``<root>/<name>-<key>`` where ``key`` hashes the stage's config and the keys of its inputs. A stage is built in a
temporary directory beside it and published with one ``os.rename``, so a run killed mid-stage leaves only a
``.tmp-*`` directory that the next run deletes: a published stage dir is always complete, and a rerun reuses it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

STAGE_META = "stage.json"


def fingerprint(obj: Any) -> str:
    """A stable hex digest of a JSON-serialisable object (dataclasses and paths via ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StageResult:
    """A published stage: its directory, whether this call reused it, and its build time."""

    path: Path
    reused: bool
    wall_s: float


class StageCache:
    """Builds each stage once under ``root`` and reuses it afterwards.

    Args:
        root: where stage dirs live (``<run dir>/stages`` by default; share one across runs with ``--cache``).
        log: called with one line per stage, saying whether it was trained or reused.
    """

    def __init__(self, root: Path, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.log = log
        self.root.mkdir(parents=True, exist_ok=True)

    def remove_stale_temporaries(self) -> None:
        """Deletes half-built stages left by a killed run. Call only while holding the run lock."""
        for tmp in self.root.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def stage(self, name: str, inputs: dict, build: Callable[[Path], None]) -> StageResult:
        """Returns the stage dir for ``(name, inputs)``, building it with ``build(tmp_dir)`` if missing.

        Args:
            name: the stage's kind, e.g. ``"sft"``; part of the directory name so the cache reads well.
            inputs: everything the stage's output depends on (configs, seeds, upstream stage paths, data hashes).
            build: writes the stage's files into the directory it is given.
        """
        key = fingerprint({"stage": name, **inputs})[:16]
        final = self.root / f"{name}-{key}"
        if (final / STAGE_META).exists():
            meta = json.loads((final / STAGE_META).read_text())
            self.log(f"stage {name:<16} reused   {final.name}")
            return StageResult(final, True, meta.get("wall_s", 0.0))

        tmp = self.root / f".tmp-{name}-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        self.log(f"stage {name:<16} training {final.name}")
        start = time.perf_counter()
        try:
            build(tmp)
            wall_s = time.perf_counter() - start
            meta = {"name": name, "key": key, "inputs": inputs, "wall_s": round(wall_s, 3)}
            (tmp / STAGE_META).write_text(json.dumps(meta, indent=2, default=str))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.log(f"stage {name:<16} done     {final.name} in {wall_s:.1f}s")
        return StageResult(final, False, wall_s)


def write_atomic(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunLockedError(RuntimeError):
    """Another live process holds the run dir's lock."""


class RunLock:
    """An exclusive lock on a run dir, so two runs never write the same stages and results at once.

    The lock is an ``flock`` on ``<dir>/.lock``: the OS releases it when the process dies, so a killed run never
    leaves a stale lock behind.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock or raises RunLockedError naming the dir and the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode().strip() or "unknown"
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent}: another run (pid {holder}) is using this output dir; "
                "wait for it or pass another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
