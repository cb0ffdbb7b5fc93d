"""The stage cache publishes atomically, reuses finished stages, and discards half-built ones; the run-dir lock
keeps a second run out of a dir in use."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cache import RunLock, RunLockedError, StageCache, write_atomic
from harness.run import main
from test_end_to_end import smoke_command, stable

REPO = Path(__file__).parent.parent


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


def _wait_for_lock_holder(lock: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (lock.exists() and lock.read_text() == str(process.pid)):
        assert process.poll() is None, "the first run ended before it took the lock"
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)


def test_a_second_run_in_the_same_dir_stops_and_the_first_is_unaffected(tmp_path):
    """Two real runs in one --out: the second stops at once with one line naming the holder and writes nothing; the
    first finishes with the results of the same run done alone (wall-clock fields aside)."""
    out = tmp_path / "shared" / "run"
    command = [sys.executable, "-m", "harness.run", *smoke_command(out, ["sft"])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with (tmp_path / "first.err").open("w") as first_err:  # a file, not a pipe nobody reads while it runs
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=first_err)
    try:
        _wait_for_lock_holder(out / ".lock", first)
        # Paused while it holds the lock, the first run cannot finish before the second (a few seconds of imports)
        # gets to the lock, however fast the first is; the pause changes nothing else about it.
        first.send_signal(signal.SIGSTOP)
        os.waitpid(first.pid, os.WUNTRACED)
        files_before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
        second = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        alone = tmp_path / "alone" / "run"  # the same run with nobody in its way, on the other core meanwhile
        assert main(smoke_command(alone, ["sft"])) == 0
        _, second_err = second.communicate(timeout=300)
        files_after = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
        first.send_signal(signal.SIGCONT)

        assert second.returncode == 2
        assert second_err.splitlines() == [
            f"harness.run: error: {out}: another run (pid {first.pid}) is using this output dir; wait for it or pass "
            "another --out"
        ]
        assert files_after == files_before, "the refused run wrote into the first run's dir"
        assert first.wait(timeout=300) == 0, (tmp_path / "first.err").read_text()[-2000:]
    finally:
        first.send_signal(signal.SIGCONT)
        if first.poll() is None:
            first.kill()
            first.wait()
    assert stable(json.loads((out / "results.json").read_text())) == stable(
        json.loads((alone / "results.json").read_text())
    )
