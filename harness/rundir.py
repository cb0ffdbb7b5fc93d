"""The run dir's lifecycle: which dirs a run may write into, and how its results replace the previous ones.

The convention is the one of ``transformers.Trainer``'s ``output_dir`` (and TRL's, which inherits it): a run writes
into a new or empty dir, or into a run dir of its own; a dir that holds anything else is refused with one line
unless ``--overwrite`` is given. Here "a run dir of its own" means:

- it carries :data:`RUN_MARKER`, written when the harness first claims the dir (so user files, and a dir the
  harness never made, are never written into or deleted by accident);
- if it holds a finished run (``results.json``), that run had the same methods, seeds and resolved config. Rerunning
  the same command is how a killed run resumes, and it reproduces the same results; a different command (another
  method set, ``--set ppo.kl_coef=0.05``) would silently replace them, so it is refused: pass another ``--out``
  (which reuses every stage of the first: stages live in the user's stage cache, not in the run dir), or
  ``--overwrite``.

A run's outputs (config, results, the alpaca_eval ``outputs/`` and the reports, written by the pipeline) change
together, at the very end: they are written into a staging dir ``<out>/.publish-<random>`` and moved into place
only once all of them are complete. A run that fails or is interrupted before that leaves the previous results,
config and reports exactly as they were. The moves themselves are journalled: the staging dir gets a ``COMMIT``
file before the first move, and a run killed between two moves is completed by the next run in that dir
(:func:`recover`), so a run dir never holds the config of one run and the results of another.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from harness.core.publish import move_into_place, write_atomic

RUN_MARKER = ".harness-run"
COMMIT = "COMMIT"
_STAGING_PREFIX = ".publish-"


class RunDirError(RuntimeError):
    """The run may not write into the dir it was given; the message is one line saying why and what to do."""


def identity(methods: list[str], seeds: int, config: dict) -> dict:
    """What a run is, as ``config.yaml`` stores it: the same identity means the same results.

    How many worker processes ran it (``runtime.jobs``) is left out: it changes when a run finishes, not what it
    computes, so a run may be resumed with another ``--jobs``.
    """
    run = {"methods": list(methods), "seeds": seeds, **config}
    if "runtime" in run:
        run["runtime"] = {key: value for key, value in run["runtime"].items() if key != "jobs"}
    return run


def check_out(out: Path, run: dict, overwrite: bool = False) -> None:
    """Refuses an ``--out`` this run must not write into, writing nothing.

    Args:
        out: the run dir.
        run: the run's :func:`identity`.
        overwrite: the user asked to write into ``out`` whatever it holds (``--overwrite``).

    Raises:
        RunDirError: ``out`` is a dangling or looping symlink, not a dir, holds files the harness did not write, or
            holds a finished run of another command.
    """
    out = Path(out)
    problem = _path_problem(out)
    if problem:
        raise RunDirError(f"--out: {problem}")
    if overwrite or not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not (out / RUN_MARKER).is_file():
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise RunDirError(f"--out: {out} holds files this harness did not write ({shown}); choose a new or "
                              "empty dir, or pass --overwrite to write into it anyway")
        return
    if (out / "results.json").exists():
        difference = _difference(_stored_identity(out), _normalised(run))
        if difference:
            raise RunDirError(f"--out: {out} holds a finished run of another command ({difference}); choose "
                              "another --out, or pass --overwrite to replace that run's results")


def _path_problem(path: Path) -> str | None:
    """Why ``path`` (or a parent of it) can never be a run dir: a broken or looping symlink, or a file."""
    probe = path
    while True:
        try:
            os.stat(probe)
        except FileNotFoundError:
            if os.path.islink(probe):
                return f"{probe} is a symlink to {os.readlink(probe)}, which does not exist"
        except OSError as err:  # ELOOP, EACCES, ...
            return f"{probe}: {err.strerror}"
        else:
            if probe == path and not probe.is_dir():
                return f"{path} is not a writable directory"
            return None
        if probe.parent == probe:
            return None
        probe = probe.parent


def _stored_identity(out: Path) -> Any:
    try:
        return yaml.safe_load((out / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None


def _normalised(run: dict) -> Any:
    """``run`` as it reads back from YAML (tuples as lists, ...), to compare with a stored ``config.yaml``."""
    return yaml.safe_load(yaml.safe_dump(run, sort_keys=False))


def _difference(stored: Any, new: Any, where: str = "") -> str | None:
    """The first field where two identities differ, as ``field: stored vs this run's``; None if they are equal."""
    if isinstance(stored, dict) and isinstance(new, dict):
        for key in [*stored, *(k for k in new if k not in stored)]:
            found = _difference(stored.get(key), new.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    if stored == new:
        return None
    if stored is None and not where:
        return "its config.yaml is missing or unreadable"
    return f"{where}: {_short(stored)} there, {_short(new)} here"


def _short(value: Any) -> str:
    text = " ".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def create(out: Path) -> None:
    """Creates ``out`` if needed and marks it as a run dir of the harness if it is empty (before its lock file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not any(out.iterdir()):
        _mark(out)


def _mark(out: Path) -> None:
    (out / RUN_MARKER).write_text(json.dumps({"written_by": "rlp-harness"}) + "\n")


def claim(out: Path, run: dict, overwrite: bool = False) -> None:
    """Checks ``out`` again (the caller holds the run lock, so no other run changes it meanwhile) and marks it ours.

    Also completes a publication a killed run left half done (:func:`recover`). Raises RunDirError as
    :func:`check_out` does.
    """
    out = Path(out)
    recover(out)  # first, so the check sees one run's config and results, not a mix
    check_out(out, run, overwrite)
    if not (out / RUN_MARKER).is_file():
        _mark(out)  # --overwrite on a dir of other files: from now on it is a run dir


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A staging dir in ``out`` to write a run's outputs into; they are published when the block ends normally.

    On any error (a full disk, an interrupt) the staging dir is deleted and ``out`` keeps its previous outputs.
    """
    tmp = Path(out) / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    (tmp / RUN_MARKER).write_text("")  # marks it as ours for recover()
    try:
        yield tmp
        entries = sorted(p.name for p in tmp.iterdir() if p.name != RUN_MARKER)
        write_atomic(tmp / COMMIT, json.dumps(entries))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _move_into_place(tmp, Path(out))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Moves every entry the ``COMMIT`` file lists from ``tmp`` into ``out``, replacing what is there; idempotent."""
    for name in json.loads((tmp / COMMIT).read_text()):
        source, target = tmp / name, out / name
        if not source.exists() and not source.is_symlink():
            continue  # moved before an interruption
        move_into_place(source, target, trash=tmp)
    shutil.rmtree(tmp)


def recover(out: Path) -> None:
    """Finishes a publication that was committed but interrupted; deletes one that never got to its commit."""
    for tmp in Path(out).glob(f"{_STAGING_PREFIX}*"):
        if not (tmp / RUN_MARKER).is_file():
            continue  # not ours
        if (tmp / COMMIT).is_file():
            _move_into_place(tmp, Path(out))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
