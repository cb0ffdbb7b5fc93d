"""Atomic publish: write beside the target, then rename into place, so readers see the old version or the new one.

Every file or directory the harness publishes (stages, base models, tasks, reports, leaderboards) goes through
here. A rename within one directory is atomic on POSIX, so a killed or failed write never leaves a half-written
target that a later run would trust; the temporary is removed on failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` so that readers see the old file or the new one, never half of one.

    A failed write (disk full, interrupt) leaves the old file and no temporary behind.
    """
    write_all_atomic({Path(path): text})


def write_all_atomic(contents: dict[Path, str]) -> None:
    """Writes every file to a temporary beside it, then moves them all into place.

    Nothing is replaced until every temporary is complete, so a failure while writing (disk full, interrupt)
    leaves all the old files as they were.
    """
    temporaries: dict[Path, Path] = {}
    try:
        for path, text in contents.items():
            temporaries[path] = _temporary_beside(Path(path))
            temporaries[path].write_text(text)
        for path, tmp in temporaries.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporaries.values():
            tmp.unlink(missing_ok=True)


def move_into_place(source: Path, target: Path, trash: Path) -> None:
    """Moves ``source`` to ``target``, replacing what is there.

    A file is replaced in one ``os.replace``; a directory cannot be, so it is first moved into ``trash`` (a dir on
    the same file system that the caller deletes), and readers see the old dir or the new one.
    """
    if target.is_dir() and not target.is_symlink():
        os.rename(target, trash / f".replaced-{target.name}")
    os.replace(source, target)


@contextmanager
def publish_dir(
    target: Path,
    staging: Path | None = None,
    replace: bool = False,
    published_by_another: Callable[[], bool] | None = None,
) -> Iterator[Path]:
    """Yields a staging dir to build ``target`` in; when the block ends normally, renames it to ``target``.

    On any error, in the block or in the rename, the staging dir is deleted and ``target`` is left as it was.

    Args:
        target: the dir to publish.
        staging: the dir to build in, made by the caller (the stage cache marks its own); by default a new
            ``.<target name>.partial-*`` beside ``target``, readable like any other dir.
        replace: replace an existing ``target`` (else the rename fails if it exists).
        published_by_another: asked when the rename fails; True means another process published ``target``
            first, and its copy is kept (ours is deleted) instead of raising.
    """
    target = Path(target)
    if staging is None:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; a published dir should be readable like any other
    try:
        yield staging
        if replace and target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            move_into_place(staging, target, trash)
            shutil.rmtree(trash)
        else:
            try:
                os.rename(staging, target)
            except OSError:
                if published_by_another is None or not published_by_another():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; ours to delete otherwise
