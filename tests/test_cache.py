"""The stage cache publishes atomically, reuses finished stages, and discards half-built ones."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from harness.cache import RunLock, RunLockedError, StageCache, write_atomic


def test_second_call_reuses_the_stage_without_building(tmp_path):
    cache = StageCache(tmp_path, log=lambda _: None)
    builds = []

    def build(out):
        builds.append(out)
        (out / "model.txt").write_text("weights")

    first = cache.stage("sft", {"lr": 1e-3}, build)
    second = cache.stage("sft", {"lr": 1e-3}, build)
    assert len(builds) == 1
    assert not first.reused and second.reused
    assert first.path == second.path and (second.path / "model.txt").read_text() == "weights"


def test_a_changed_input_builds_a_new_stage(tmp_path):
    cache = StageCache(tmp_path, log=lambda _: None)
    a = cache.stage("sft", {"lr": 1e-3}, lambda out: None)
    b = cache.stage("sft", {"lr": 2e-3}, lambda out: None)
    assert a.path != b.path and not b.reused


def test_a_failed_build_leaves_nothing_that_looks_finished(tmp_path):
    cache = StageCache(tmp_path, log=lambda _: None)

    def crash(out):
        (out / "half.bin").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.stage("ppo", {"x": 1}, crash)
    assert list(tmp_path.iterdir()) == []
    rebuilt = cache.stage("ppo", {"x": 1}, lambda out: (out / "done").write_text("ok"))
    assert not rebuilt.reused and (rebuilt.path / "done").exists()


def _killed_mid_build(root):
    cache = StageCache(root, log=lambda _: None)

    def build(out):
        (out / "half.bin").write_text("partial")
        os._exit(9)  # a SIGKILL-like death: no cleanup handlers run

    cache.stage("ppo", {"x": 1}, build)


def test_a_killed_build_is_discarded_and_rebuilt(tmp_path):
    process = multiprocessing.get_context("fork").Process(target=_killed_mid_build, args=(tmp_path,))
    process.start()
    process.join()
    assert [p.name.startswith(".tmp-ppo") for p in tmp_path.iterdir()] == [True]
    cache = StageCache(tmp_path, log=lambda _: None)
    cache.remove_stale_temporaries()
    assert list(tmp_path.iterdir()) == []
    result = cache.stage("ppo", {"x": 1}, lambda out: (out / "done").write_text("ok"))
    assert not result.reused


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "results.json"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_second_lock_on_the_same_dir_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match="another run"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: can be taken again
        pass
