"""The atomic-publish helper: a target is the old version or the whole new one, and no temporary is left behind."""

from __future__ import annotations

import contextlib

import pytest

from harness.core.publish import publish_dir, write_all_atomic


def _entries(root):
    return sorted(p.name for p in root.iterdir())


def test_a_dir_is_published_whole_and_readable(tmp_path):
    target = tmp_path / "model"
    with publish_dir(target) as staging:
        assert staging.parent == tmp_path and not target.exists()
        (staging / "weights").write_text("new")
    assert (target / "weights").read_text() == "new" and _entries(tmp_path) == ["model"]
    assert target.stat().st_mode & 0o755 == 0o755


def test_a_failed_build_leaves_the_old_dir_and_no_staging(tmp_path):
    target = tmp_path / "task"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), publish_dir(target, replace=True) as staging:
        (staging / "half").write_text("half")
        raise RuntimeError("disk full")
    assert _entries(tmp_path) == ["task"] and _entries(target) == ["old"]


def test_replace_swaps_an_existing_dir(tmp_path):
    target = tmp_path / "task"
    target.mkdir()
    (target / "old").write_text("old")
    with publish_dir(target, replace=True) as staging:
        (staging / "new").write_text("new")
    assert _entries(tmp_path) == ["task"] and _entries(target) == ["new"]


@pytest.mark.parametrize("theirs_is_fine", [True, False])
def test_a_dir_another_process_published_first_is_kept_or_an_error(tmp_path, theirs_is_fine):
    """With ``published_by_another`` their copy is kept and ours deleted; without it, the rename's error is raised
    (and ours deleted all the same)."""
    target = tmp_path / "model"
    check = target.is_dir if theirs_is_fine else None
    with contextlib.ExitStack() as stack:
        if not theirs_is_fine:
            stack.enter_context(pytest.raises(OSError))
        with publish_dir(target, published_by_another=check) as staging:
            (staging / "ours").write_text("ours")
            target.mkdir()
            (target / "theirs").write_text("theirs")
    assert _entries(tmp_path) == ["model"] and _entries(target) == ["theirs"]


def test_files_are_replaced_together_or_not_at_all(tmp_path):
    first = tmp_path / "a.csv"
    write_all_atomic({first: "1"})
    with pytest.raises(OSError):  # the second file's temporary cannot be written: its dir is missing
        write_all_atomic({first: "2", tmp_path / "missing" / "b.json": "2"})
    assert first.read_text() == "1" and _entries(tmp_path) == ["a.csv"]
