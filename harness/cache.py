"""Content-addressed stage cache, safe to share between runs, with verified stages; and the run-dir lock.

Every expensive stage (SFT, reward model, PPO, sampling, evaluation) is a directory ``<root>/<name>-<key>``. The
key hashes the stage's inputs as *content*: configs, data fingerprints, and, for every input that is a path (a
checkpoint), what that path holds (:meth:`StageCache.identity`), never where it was reached. The same run reached
through a relative path, an absolute one, a symlink, or copied elsewhere therefore finds the same stages.

The protocol, the one ``huggingface_hub`` and ``datasets`` follow for their cache entries:

- **One builder per stage.** A stage is built while holding a lock of its own (``<root>/.locks/<name>-<key>.lock``,
  a ``filelock``; the OS drops it when its process dies). A second run that needs the same stage waits, then reuses
  what the first published. Runs that need different stages never wait for each other.
- **Published once, completely.** A stage is built in a temporary dir ``<root>/.tmp-<name>-<key>-<random>`` and
  published with one ``os.rename`` after its manifest (``stage.json``: size and sha256 of every file) is written.
- **Only our own temporaries are removed.** Every temporary dir holds :data:`OWNED_MARKER`, naming its stage; one is
  deleted only when it has that marker *and* its stage's lock is free (its builder is gone). A user's folder that
  merely looks like ours (``.tmp-projects``) is never touched.
- **Verified on reuse.** Before a stage is reused its manifest is checked: every file present with its recorded
  size, and its sha256 recomputed whenever the file's modification time differs from the one recorded at publish
  (an edit, a truncation, a copy). A damaged stage is reported in one line and rebuilt, never loaded. Checking the
  recorded modification time instead of rehashing every reuse is what git's index does; on the tiny preset a full
  rehash of a run's stages costs about as much as the check, but a 7B run's checkpoints would cost minutes per reuse.
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

from filelock import FileLock, Timeout

from harness.core.publish import publish_dir, write_atomic

MANIFEST = "stage.json"
OWNED_MARKER = ".harness-owned"  # in every temporary dir the cache makes: what it may delete
LOCKS = ".locks"
HASH_MEMO = ".content-hashes.json"
_CHUNK = 1 << 20


def fingerprint(obj: Any) -> str:
    """A stable hex digest of a JSON-serialisable object (dataclasses and paths via ``str``)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` (following symlinks), sorted, leaving out hidden names and the manifest."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f != MANIFEST]
    return sorted(found)


def file_manifest(root: Path) -> dict[str, dict]:
    """``relative path -> {size, sha256, mtime_ns}`` of every file of a stage dir."""
    manifest = {}
    for path in _files(root):
        stat = path.stat()
        manifest[path.relative_to(root).as_posix()] = {
            "size": stat.st_size, "sha256": sha256_file(path), "mtime_ns": stat.st_mtime_ns}
    return manifest


def read_manifest(stage_dir: Path) -> dict | None:
    """The manifest of a published stage dir, or None if ``stage_dir`` has none that names it."""
    try:
        meta = json.loads((Path(stage_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or f"{meta.get('name')}-{meta.get('key')}" != Path(stage_dir).name:
        return None
    return meta


def damage(stage_dir: Path) -> str | None:
    """What is wrong with a published stage dir, in a few words, or None if it matches its manifest."""
    try:
        meta = json.loads((stage_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return f"{MANIFEST} is missing"
    except (OSError, ValueError) as err:
        return f"{MANIFEST} is unreadable ({type(err).__name__})"
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or read_manifest(stage_dir) is None:
        return f"{MANIFEST} does not describe this stage"
    for name, expected in files.items():
        path = stage_dir / name
        try:
            stat = path.stat()
        except OSError:
            return f"{name} is missing"
        if stat.st_size != expected["size"]:
            return f"{name} has {stat.st_size} bytes, the manifest says {expected['size']}"
        if stat.st_mtime_ns != expected["mtime_ns"] and sha256_file(path) != expected["sha256"]:
            return f"{name} differs from the manifest (sha256)"
    return None


@dataclass(frozen=True)
class StageResult:
    """A published stage: its directory, whether this call reused it, and its build time."""

    path: Path
    reused: bool
    wall_s: float


class StageCache:
    """Builds each stage once under ``root`` and reuses it afterwards, also across runs sharing ``root``.

    Args:
        root: where stage dirs live (``<run dir>/stages`` by default; share one across runs with ``--cache``).
        log: called with one line per stage, saying whether it was trained or reused.
    """

    def __init__(self, root: Path, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.log = log
        (self.root / LOCKS).mkdir(parents=True, exist_ok=True)
        self._hashes: dict[str, list] | None = None

    # -- keys ------------------------------------------------------------------------------------------------------

    def content_inputs(self, value: Any) -> Any:
        """``value`` with every :class:`~pathlib.Path` in it (at any depth) replaced by :meth:`identity`."""
        if isinstance(value, Path):
            return self.identity(value)
        if isinstance(value, dict):
            return {k: self.content_inputs(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.content_inputs(v) for v in value]
        return value

    def identity(self, path: Path) -> str:
        """What a checkpoint path holds, independent of how it was reached.

        Inside a published stage (a stage dir or a file or dir within it, e.g. a PPO checkpoint) it is the stage's
        ``<name>-<key>`` plus the path within; anything else (a base model) is the sha256 of its files' contents,
        memoised in ``<root>/.content-hashes.json`` by (path, size, modification time) so a 7B model is hashed once.
        """
        resolved = Path(path).resolve()
        for parent in (resolved, *resolved.parents):
            meta = read_manifest(parent)
            if meta is not None:
                inner = resolved.relative_to(parent).as_posix()
                return f"stage:{parent.name}" + ("" if inner == "." else f"/{inner}")
        files = _files(resolved) if resolved.is_dir() else [resolved]
        contents = [(p.relative_to(resolved).as_posix() if resolved.is_dir() else p.name, self._file_hash(p))
                    for p in files]
        return "sha256:" + fingerprint(contents)

    def _file_hash(self, path: Path) -> str:
        if self._hashes is None:
            try:
                self._hashes = json.loads((self.root / HASH_MEMO).read_text())
            except (OSError, ValueError):
                self._hashes = {}
        real = os.path.realpath(path)
        stat = os.stat(real)
        known = self._hashes.get(real)
        if known and known[:2] == [stat.st_size, stat.st_mtime_ns]:
            return known[2]
        digest = sha256_file(Path(real))
        self._hashes[real] = [stat.st_size, stat.st_mtime_ns, digest]
        with FileLock(self.root / LOCKS / f"{HASH_MEMO}.lock"):  # other runs may add their own entries meanwhile
            try:
                on_disk = json.loads((self.root / HASH_MEMO).read_text())
            except (OSError, ValueError):
                on_disk = {}
            write_atomic(self.root / HASH_MEMO, json.dumps({**on_disk, real: self._hashes[real]}))
        return digest

    # -- building and reusing --------------------------------------------------------------------------------------

    def _lock(self, name: str, key: str) -> FileLock:
        return FileLock(self.root / LOCKS / f"{name}-{key}.lock")

    def stage(self, name: str, inputs: dict, build: Callable[[Path], None]) -> StageResult:
        """Returns the stage dir for ``(name, inputs)``, building it with ``build(tmp_dir)`` if missing or damaged.

        Args:
            name: the stage's kind, e.g. ``"sft"``; part of the directory name so the cache reads well.
            inputs: everything the stage's output depends on (configs, seeds, upstream checkpoints as
                :class:`~pathlib.Path`, data hashes).
            build: writes the stage's files into the directory it is given.
        """
        content = self.content_inputs(inputs)  # the key hashes what the inputs hold, not where they are
        key = fingerprint({"stage": name, **content})[:16]
        final = self.root / f"{name}-{key}"
        if final.is_dir() and damage(final) is None:  # published stages never change: no lock needed to reuse
            return self._reused(name, final)
        lock = self._lock(name, key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self.log(f"stage {name:<16} waiting  {final.name}: another run is building it")
            lock.acquire()
        try:
            if final.exists():
                problem = damage(final)
                if problem is None:  # the run we waited for published it
                    return self._reused(name, final)
                self.log(f"stage {name:<16} damaged  {final.name}: {problem}; rebuilding it")
                self._discard(final, name, key)
            self._remove_temporaries_of(f"{name}-{key}")  # we hold the lock: their builders are gone
            return self._build(name, key, content, final, build)
        finally:
            lock.release()

    def _reused(self, name: str, final: Path) -> StageResult:
        meta = json.loads((final / MANIFEST).read_text())
        self.log(f"stage {name:<16} reused   {final.name}")
        return StageResult(final, True, meta.get("wall_s", 0.0))

    def _new_temporary(self, name: str, key: str) -> Path:
        tmp = self.root / f".tmp-{name}-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        (tmp / OWNED_MARKER).write_text(json.dumps({"stage": f"{name}-{key}"}))
        return tmp

    def _build(self, name: str, key: str, content: dict, final: Path, build: Callable[[Path], None]) -> StageResult:
        tmp = self._new_temporary(name, key)
        self.log(f"stage {name:<16} training {final.name}")
        start = time.perf_counter()
        with publish_dir(final, staging=tmp):
            build(tmp)
            wall_s = time.perf_counter() - start
            meta = {"name": name, "key": key, "inputs": content, "wall_s": round(wall_s, 3),
                    "files": file_manifest(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(meta, indent=1, default=str))
        self.log(f"stage {name:<16} done     {final.name} in {wall_s:.1f}s")
        return StageResult(final, False, wall_s)

    def _discard(self, stage_dir: Path, name: str, key: str) -> None:
        """Moves a damaged stage out of the way (as a marked temporary, in case we die) and deletes it."""
        (stage_dir / OWNED_MARKER).write_text(json.dumps({"stage": f"{name}-{key}"}))
        doomed = self.root / f".tmp-{name}-{key}-damaged-{uuid.uuid4().hex[:8]}"
        os.rename(stage_dir, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    # -- cleaning up -----------------------------------------------------------------------------------------------

    def _owned_temporaries(self) -> list[tuple[Path, str]]:
        """``(dir, "<name>-<key>")`` of every temporary dir in ``root`` that carries the cache's marker."""
        owned = []
        for tmp in self.root.glob(".tmp-*"):
            try:
                stage = json.loads((tmp / OWNED_MARKER).read_text())["stage"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours
            owned.append((tmp, str(stage)))
        return owned

    def _remove_temporaries_of(self, stage: str) -> None:
        for tmp, owner in self._owned_temporaries():
            if owner == stage:
                shutil.rmtree(tmp, ignore_errors=True)

    def remove_stale_temporaries(self) -> None:
        """Deletes the half-built stages of builders that are gone: marked temporaries whose stage lock is free."""
        for tmp, stage in self._owned_temporaries():
            name, _, key = stage.rpartition("-")
            lock = self._lock(name, key)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # its builder is alive (another run sharing this cache)
            try:
                shutil.rmtree(tmp, ignore_errors=True)
            finally:
                lock.release()


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
