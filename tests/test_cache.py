"""The stage cache publishes atomically, reuses finished stages, discards half-built ones, is safe to share between
runs, verifies stages before reuse and keys them by content; the run-dir lock keeps a second run out of a dir in
use."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.cache import RunLock, RunLockedError, StageCache
from harness.core.publish import write_atomic
from harness.run import main

REPO = Path(__file__).parent.parent


def _entries(root: Path) -> list[str]:
    """What a cache dir holds besides its stage locks."""
    return sorted(p.name for p in root.iterdir() if p.name != ".locks")


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
    assert _entries(tmp_path) == []
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
    assert [p.startswith(".tmp-ppo") for p in _entries(tmp_path)] == [True]
    cache = StageCache(tmp_path, log=lambda _: None)
    cache.remove_stale_temporaries()
    assert _entries(tmp_path) == []
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


def test_a_second_run_in_the_same_dir_stops_and_the_first_is_unaffected(tmp_path, smoke_command, stable):
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


# -- a cache shared by several runs -----------------------------------------------------------------------------------

def test_folders_the_cache_did_not_make_are_never_deleted(tmp_path):
    """A user's folder whose name looks like a temporary of ours survives every cleanup: only the marker counts."""
    for name in (".tmp-projects", ".tmp-ppo-0123456789abcdef-deadbeef"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("mine")
    cache = StageCache(tmp_path, log=lambda _: None)
    cache.remove_stale_temporaries()
    cache.stage("ppo", {"x": 1}, lambda out: (out / "done").write_text("ok"))
    assert (tmp_path / ".tmp-projects" / "notes.txt").read_text() == "mine"
    assert (tmp_path / ".tmp-ppo-0123456789abcdef-deadbeef" / "notes.txt").read_text() == "mine"


def _build_slowly(root, started, release):
    """Another run sharing the cache: builds stage ("ppo", {"x": 1}) and holds it half-built until ``release``."""
    def build(out):
        (out / "half.bin").write_text("partial")
        started.set()
        release.wait(60)
        (out / "model.bin").write_text("weights of the first builder")

    StageCache(root, log=lambda _: None).stage("ppo", {"x": 1}, build)


def test_a_stage_another_run_is_building_is_kept_then_reused(tmp_path):
    """The cleanup of a second run leaves the first run's half-built stage alone; the second run waits for it
    and reuses it instead of building it again."""
    context = multiprocessing.get_context("fork")
    started, release = context.Event(), context.Event()
    first = context.Process(target=_build_slowly, args=(tmp_path, started, release))
    first.start()
    assert started.wait(60)
    lines = []
    second = StageCache(tmp_path, log=lines.append)
    second.remove_stale_temporaries()
    assert [p.startswith(".tmp-ppo-") for p in _entries(tmp_path)] == [True], "the live build was deleted"
    threading.Timer(1.0, release.set).start()
    result = second.stage("ppo", {"x": 1}, lambda out: pytest.fail("built a second time"))
    first.join(60)
    assert first.exitcode == 0 and result.reused
    assert (result.path / "model.bin").read_text() == "weights of the first builder"
    assert any("waiting" in line and "another run is building it" in line for line in lines), lines
    assert [p.startswith(".tmp-") for p in _entries(tmp_path)] == [False]


# -- verified on reuse ------------------------------------------------------------------------------------------------

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:5])


def _edit_same_size(path: Path) -> None:  # a hand edit that keeps the size: only the hash can tell
    path.write_text(path.read_text().replace("18.75", "99.90"))


@pytest.mark.parametrize("damage, problem", [
    (lambda stage: _truncate(stage / "model.safetensors"), "model.safetensors has 5 bytes, the manifest says"),
    (lambda stage: _edit_same_size(stage / "metrics.json"), "metrics.json differs from the manifest (sha256)"),
    (lambda stage: (stage / "metrics.json").unlink(), "metrics.json is missing"),
    (lambda stage: _truncate(stage / "stage.json"), "stage.json is unreadable"),
    (lambda stage: (stage / "stage.json").unlink(), "stage.json is missing"),
], ids=["truncated weights", "edited win rate", "deleted file", "truncated manifest", "deleted manifest"])
def test_a_damaged_stage_is_reported_in_one_line_and_rebuilt(tmp_path, damage, problem):
    lines = []
    cache = StageCache(tmp_path, log=lines.append)

    def build(out):
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 4)
        (out / "metrics.json").write_text('{"win_rate": 18.75}')

    first = cache.stage("winrate_farm", {"x": 1}, build)
    damage(first.path)
    again = cache.stage("winrate_farm", {"x": 1}, build)
    assert not again.reused and again.path == first.path
    assert json.loads((again.path / "metrics.json").read_text()) == {"win_rate": 18.75}
    damaged = [line for line in lines if " damaged " in line]
    assert len(damaged) == 1 and problem in damaged[0] and damaged[0].endswith("rebuilding it")
    assert _entries(tmp_path) == [first.path.name]  # the damaged copy is gone, no temporaries left
    assert cache.stage("winrate_farm", {"x": 1}, build).reused


def test_an_untouched_stage_is_reused_without_rehashing(tmp_path, monkeypatch):
    cache = StageCache(tmp_path, log=lambda _: None)
    cache.stage("sft", {"x": 1}, lambda out: (out / "model.safetensors").write_bytes(b"w" * 1000))
    monkeypatch.setattr("harness.cache.sha256_file", lambda path: pytest.fail(f"rehashed {path}"))
    assert cache.stage("sft", {"x": 1}, lambda out: None).reused


# -- keys from content, not paths -------------------------------------------------------------------------------------

def _pipeline(cache: StageCache, base: Path) -> tuple[Path, Path]:
    """Two chained stages: SFT from a base model dir, then PPO from one of SFT's files, keyed by paths."""
    sft = cache.stage("sft", {"base": base}, lambda out: (out / "ckpt").mkdir() or (out / "ckpt" / "w").write_text(
        (base / "weights").read_text() + "+sft")).path
    ppo = cache.stage("ppo", {"init": sft / "ckpt"}, lambda out: (out / "w").write_text("ppo")).path
    return sft, ppo


def test_the_same_content_through_other_paths_or_a_copy_reuses_every_stage(tmp_path, monkeypatch):
    base = tmp_path / "models" / "base"
    base.mkdir(parents=True)
    (base / "weights").write_text("base weights")
    built = []
    cache = StageCache(tmp_path / "run" / "stages", log=lambda line: built.append(line) if " training " in line else 0)
    first = _pipeline(cache, base)
    assert len(built) == 2

    (tmp_path / "link").symlink_to(tmp_path / "models", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    copy_of_base = tmp_path / "elsewhere" / "base"
    shutil.copytree(base, copy_of_base)
    for other_base in (Path("models/base"), tmp_path / "link" / "base", copy_of_base):
        assert _pipeline(cache, other_base) == first
    # The whole run dir copied elsewhere (cp -r: new modification times) reuses its stages too.
    shutil.copytree(tmp_path / "run", tmp_path / "copied-run")
    copied = StageCache(tmp_path / "copied-run" / "stages", log=lambda line: built.append(line) if " training " in line
                        else 0)
    assert [p.name for p in _pipeline(copied, base)] == [p.name for p in first]
    assert len(built) == 2, built

    (base / "weights").write_text("other weights")  # other content: other stages
    assert _pipeline(cache, base)[0] != first[0] and len(built) == 4


def test_a_bf16_run_keys_its_stages_apart_and_float32_keys_are_unchanged(tmp_path, monkeypatch):
    from harness.context import RunContext

    cache = StageCache(tmp_path)
    ctx = RunContext(config=None, suite=None, splits={}, seed=0, cache=cache, generator=None, base_model=tmp_path)
    built: list[str] = []

    def stage() -> Path:
        return ctx.stage("sft", {"data": "abc"}, lambda out: built.append(out.name) or (out / "w").write_text("1"))

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    float32 = stage()
    assert float32 == cache.stage("sft", {"data": "abc", "seed": 0}, lambda out: None).path  # the key it always had
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    bf16 = stage()
    assert bf16 != float32 and len(built) == 2  # not handed the float32 stage: built anew
    assert stage() == bf16 and len(built) == 2  # and reused as any stage is
