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
- **One cache per user.** By default every run shares :func:`default_stage_cache`, beside the base models, as the
  Hugging Face caches are shared: a second experiment into another run dir rebuilds only the stages its change
  touches. ``--cache DIR`` gives a run another one.
- **Last use recorded.** Reuse touches the stage's hidden :data:`LAST_USED` file (hidden names are outside the
  manifest), under the stage's lock, so ``prune`` deletes only stages no run used for a while, never one a run is
  building or reusing at that moment.

The commands users expect of a cache, as ``huggingface-cli scan-cache`` and ``delete-cache`` offer for the hub's::

    python -m harness.cache ls [--sort used|built|size|name] [--cache DIR]    every stage: size, built, last used
    python -m harness.cache du [--cache DIR]                                  the total, and per kind of stage
    python -m harness.cache prune --older-than DAYS [--dry-run] [--cache DIR] delete stages unused for DAYS days
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock, Timeout

from harness.core.cli import OneLineParser, fail
from harness.core.publish import publish_dir, write_atomic

MANIFEST = "stage.json"
OWNED_MARKER = ".harness-owned"  # in every temporary dir the cache makes: what it may delete
LAST_USED = ".last-used"  # in a published stage once a run reused it: its modification time is that last use
LOCKS = ".locks"
HASH_MEMO = ".content-hashes.json"
_CHUNK = 1 << 20
_DAY_S = 86400
_REUSE_WAIT_S = 0.25  # a run reusing a stage holds its lock for milliseconds; longer, and another run is building it


def user_cache_dir() -> Path:
    """The user's harness cache, which holds base models (``models/``) and stages (``stages/``).

    ``$RLP_HARNESS_CACHE``, else ``$XDG_CACHE_HOME/rlp-harness``, else ``~/.cache/rlp-harness``: the rule the
    Hugging Face caches follow, so one variable moves the whole cache to a bigger disk.
    """
    root = os.environ.get("RLP_HARNESS_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "rlp-harness"


def default_stage_cache() -> Path:
    """Where runs keep their stages unless ``--cache`` says otherwise: ``stages/`` of :func:`user_cache_dir`,
    shared by every run of the user, so a second experiment reuses what the first one built."""
    return user_cache_dir() / "stages"


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
class CachedStage:
    """A published stage, as the cache commands show it."""

    path: Path
    kind: str  # the stage's name: sft, reward, ppo, winrate_farm, ...
    size: int  # bytes, every file of the dir
    built: float  # when it was published (seconds since the epoch)
    last_used: float  # when a run last reused it, or ``built`` if none has


@dataclass(frozen=True)
class Pruned:
    """What :meth:`StageCache.prune` deleted (or, with ``dry_run``, would delete) and what it kept."""

    deleted: list[CachedStage]
    locked: list[CachedStage]  # old enough, but their lock was held: a run was building or reusing them
    temporaries: list[Path]  # stale half-built stages


def last_use(stage_dir: Path) -> float:
    """When a run last reused a published stage (its :data:`LAST_USED` mark), or when it was published."""
    built = (stage_dir / MANIFEST).stat().st_mtime
    try:
        return max(built, (stage_dir / LAST_USED).stat().st_mtime)
    except FileNotFoundError:  # never reused since it was built
        return built


def tree_size(path: Path) -> int:
    """Bytes of every file under ``path`` (symlinks counted as links, not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # deleted while we walked (a temporary being cleaned up)
                pass
    return total


@dataclass(frozen=True)
class StageResult:
    """A published stage: its directory, whether this call reused it, and its build time."""

    path: Path
    reused: bool
    wall_s: float


class StageCache:
    """Builds each stage once under ``root`` and reuses it afterwards, also across runs sharing ``root``.

    Args:
        root: where stage dirs live (:func:`default_stage_cache` for a run, unless ``--cache`` names another).
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

    def _lock(self, stage: str) -> FileLock:
        """The lock of the stage ``<name>-<key>``: held while it is built, reused or deleted."""
        return FileLock(self.root / LOCKS / f"{stage}.lock")

    @contextmanager
    def _holding_if_free(self, stage: str) -> Iterator[bool]:
        """Holds the stage's lock for the block if no one else holds it; yields whether it does."""
        lock = self._lock(stage)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

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
        # Reuse takes the lock too, for the check and the recorded use: prune never deletes a stage in between.
        lock = self._lock(final.name)
        try:
            lock.acquire(timeout=_REUSE_WAIT_S)
        except Timeout:
            self.log(f"stage {name:<16} waiting  {final.name}: another run is building it")
            lock.acquire()
        try:
            if final.exists():
                problem = damage(final)
                if problem is None:  # published earlier, or by the run we waited for
                    return self._reused(name, final)
                self.log(f"stage {name:<16} damaged  {final.name}: {problem}; rebuilding it")
                self._discard(final)
            self._remove_temporaries_of(f"{name}-{key}")  # we hold the lock: their builders are gone
            return self._build(name, key, content, final, build)
        finally:
            lock.release()

    def _reused(self, name: str, final: Path) -> StageResult:
        meta = json.loads((final / MANIFEST).read_text())
        (final / LAST_USED).touch()
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

    def _discard(self, stage_dir: Path) -> None:
        """Moves a damaged stage out of the way and deletes it."""
        shutil.rmtree(self._retire(stage_dir, "damaged"), ignore_errors=True)

    def _retire(self, stage_dir: Path, why: str) -> Path:
        """Renames a published stage (its lock held) to a marked temporary, which any later cleanup may delete if
        we die before we do; returns the temporary. Runs see the stage or nothing, never part of it."""
        (stage_dir / OWNED_MARKER).write_text(json.dumps({"stage": stage_dir.name}))
        doomed = self.root / f".tmp-{stage_dir.name}-{why}-{uuid.uuid4().hex[:8]}"
        os.rename(stage_dir, doomed)
        return doomed

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

    def remove_stale_temporaries(self, dry_run: bool = False) -> list[Path]:
        """Deletes the half-built stages of builders that are gone: marked temporaries whose stage lock is free
        (a live builder, another run sharing this cache, holds it). Returns them; ``dry_run`` deletes nothing."""
        stale = []
        for tmp, stage in self._owned_temporaries():
            with self._holding_if_free(stage) as free:
                if free:
                    stale.append(tmp)
                    if not dry_run:
                        shutil.rmtree(tmp, ignore_errors=True)
        return stale

    # -- what the cache holds, and pruning it ----------------------------------------------------------------------

    def stages(self) -> list[CachedStage]:
        """Every published stage in ``root``, with its size, build time and last use (unsorted)."""
        found = []
        for entry in self.root.iterdir():
            meta = None if entry.name.startswith(".") else read_manifest(entry)
            if meta is None:
                continue  # a temporary, the cache's own files, or not a stage
            found.append(CachedStage(entry, str(meta["name"]), tree_size(entry), (entry / MANIFEST).stat().st_mtime,
                                     last_use(entry)))
        return found

    def temporaries(self) -> list[tuple[Path, bool]]:
        """``(dir, being built)`` for every marked temporary: a stage being built (its lock held), or a stale one."""
        found = []
        for tmp, stage in self._owned_temporaries():
            with self._holding_if_free(stage) as free:
                found.append((tmp, not free))
        return found

    def prune(self, older_than_days: float, dry_run: bool = False, now: float | None = None) -> Pruned:
        """Deletes every stage no run used for ``older_than_days`` days, and the stale temporaries.

        A stage whose lock is held (a run is building, reusing or deleting it at this moment) is kept. A stage is
        renamed away under its lock, after its last use is read again under that lock, so a run that reuses it
        meanwhile either keeps it or finds it gone and rebuilds it, and never loads part of one.

        Args:
            older_than_days: the age of the last use beyond which a stage is deleted (0: every stage).
            dry_run: report what would be deleted, deleting nothing.
            now: the current time (seconds since the epoch); the clock by default.
        """
        cutoff = (time.time() if now is None else now) - older_than_days * _DAY_S
        temporaries = self.remove_stale_temporaries(dry_run)
        deleted, locked, doomed = [], [], []
        for stage in sorted(self.stages(), key=lambda s: s.last_used):
            if stage.last_used > cutoff:
                continue
            with self._holding_if_free(stage.path.name) as free:
                if not free:
                    locked.append(stage)
                    continue
                if dry_run:
                    deleted.append(stage)
                    continue
                try:
                    if last_use(stage.path) > cutoff:
                        continue  # a run used it since we listed it
                except FileNotFoundError:
                    continue  # another prune deleted it
                doomed.append(self._retire(stage.path, "pruned"))
                deleted.append(stage)
        for path in doomed:  # outside the locks: a large stage takes a while to delete
            shutil.rmtree(path, ignore_errors=True)
        return Pruned(deleted, locked, temporaries)


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


# -- python -m harness.cache ----------------------------------------------------------------------------------------

TOOL = "harness.cache"
SORTS = {  # --sort: the key, and whether the largest comes first
    "used": (lambda s: s.last_used, True),
    "built": (lambda s: s.built, True),
    "size": (lambda s: s.size, True),
    "name": (lambda s: s.path.name, False),
}


def human_size(size: float) -> str:
    """Bytes in SI units, as ``du -h --si`` and ``huggingface-cli scan-cache`` show them: ``12.3 MB``."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def ago(seconds: float) -> str:
    """An age in its largest whole unit: ``3 days ago``; under a minute, ``just now``."""
    for unit, length in (("week", 7 * _DAY_S), ("day", _DAY_S), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            return f"{_count(int(seconds // length), unit)} ago"
    return "just now"


def format_ls(cache: StageCache, sort: str, now: float) -> str:
    """Every stage of ``cache``, one line each, sorted by ``sort`` (:data:`SORTS`), then the totals."""
    key, largest_first = SORTS[sort]
    stages = sorted(cache.stages(), key=key, reverse=largest_first)
    lines = [f"stage cache {cache.root}"]
    if stages:
        width = max(len("STAGE"), *(len(s.path.name) for s in stages))
        lines.append(f"{'STAGE':<{width}}  {'SIZE':>9}  {'BUILT':<16}  LAST USED")
        lines += [f"{s.path.name:<{width}}  {human_size(s.size):>9}  {ago(now - s.built):<16}  {ago(now - s.last_used)}"
                  for s in stages]
    lines.append(f"{_count(len(stages), 'stage')}, {human_size(sum(s.size for s in stages))}")
    temporaries = cache.temporaries()
    if temporaries:
        building = sum(being_built for _, being_built in temporaries)
        size = human_size(sum(tree_size(path) for path, _ in temporaries))
        lines.append(f"{len(temporaries)} half-built ({size}): {building} being built, "
                     f"{len(temporaries) - building} stale, which prune deletes")
    return "\n".join(lines)


def format_du(cache: StageCache) -> str:
    """The cache's total size, and per kind of stage, largest first; half-built stages and the cache's own files
    (locks, content hashes) on their own rows, so the rows add up to the total."""
    kinds: dict[str, list[int]] = {}
    for stage in cache.stages():
        count, size = kinds.setdefault(stage.kind, [0, 0])
        kinds[stage.kind] = [count + 1, size + stage.size]
    total = tree_size(cache.root)
    half_built = sum(tree_size(path) for path, _ in cache.temporaries())
    rows = sorted(((kind, str(count), size) for kind, (count, size) in kinds.items()), key=lambda row: -row[2])
    rows += [("(half-built)", "", half_built),
             ("(cache files)", "", total - half_built - sum(size for _, size in kinds.values()))]
    width = max(len("KIND"), len("(cache files)"), *(len(kind) for kind in kinds))
    lines = [f"stage cache {cache.root}", f"{'KIND':<{width}}  {'STAGES':>6}  {'SIZE':>9}"]
    lines += [f"{kind:<{width}}  {count:>6}  {human_size(size):>9}" for kind, count, size in rows]
    stages = sum(count for count, _ in kinds.values())
    lines.append(f"{'total':<{width}}  {stages:>6}  {human_size(total):>9}")
    return "\n".join(lines)


def format_pruned(pruned: Pruned, dry_run: bool, days: float) -> str:
    """What prune deleted (or would delete), one line per stage, then the totals."""
    verb = "would delete" if dry_run else "deleted"
    lines = [f"{verb} {s.path.name} ({human_size(s.size)})" for s in pruned.deleted]
    lines += [f"kept {s.path.name}: a run holds its lock" for s in pruned.locked]
    lines += [f"{verb} half-built {path.name}" for path in pruned.temporaries]
    freed = human_size(sum(s.size for s in pruned.deleted))
    lines.append(f"{verb} {_count(len(pruned.deleted), 'stage')} unused for {days:g} days ({freed}) and "
                 f"{len(pruned.temporaries)} half-built")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(tool=TOOL, prog="python -m harness.cache",
                           description="List, measure and prune the stage cache that runs share.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--cache", type=Path, default=None, metavar="DIR",
                       help=f"the stage cache (default: {default_stage_cache()}, from $RLP_HARNESS_CACHE, else "
                       "$XDG_CACHE_HOME/rlp-harness, else ~/.cache/rlp-harness); a run's --cache")
    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[where], help=summary, description=summary[0].upper() + summary[1:])

    ls = command("ls", "every stage: its size, when built and last used")
    ls.add_argument("--sort", choices=list(SORTS), default="used",
                    help="most recently used, most recently built or largest first, or by name (default: used)")
    command("du", "the cache's total size, and per kind of stage")
    prune = command("prune", "delete the stages no run used for DAYS days, and stale half-built ones")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                       help="delete stages last used more than DAYS days ago (a number >= 0; 0 deletes every stage "
                       "no run holds at that moment, including ones a run in progress may ask for again)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, and delete nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    days = getattr(args, "older_than", 0.0)
    if not (math.isfinite(days) and days >= 0):
        return fail(TOOL, f"--older-than: got {days:g}; allowed: a number of days >= 0")
    root = args.cache or default_stage_cache()
    if not (root / LOCKS).is_dir():
        if args.cache is not None:
            return fail(TOOL, f"--cache: {root} is not a stage cache (it has no {LOCKS}/); allowed: a dir a run "
                        "used as its --cache")
        print(f"stage cache {root}: empty, no run has used it yet")
        return 0
    cache = StageCache(root, log=lambda _: None)
    if args.command == "ls":
        print(format_ls(cache, args.sort, time.time()))
    elif args.command == "du":
        print(format_du(cache))
    else:
        print(format_pruned(cache.prune(days, args.dry_run), args.dry_run, days))
    return 0


if __name__ == "__main__":
    sys.exit(main())
