"""The stage cache publishes atomically, reuses finished stages, discards half-built ones, is safe to share between
runs, verifies stages before reuse and keys them by content; the run-dir lock keeps a second run out of a dir in
use."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
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
    # one process: the test pauses it (tests/test_jobs.py interrupts parallel jobs)
    command = [sys.executable, "-m", "harness.run", *smoke_command(out, ["sft"]), "--jobs", "1"]
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
        # (with stages of its own: the paused run may hold the lock of a stage it is building in the shared cache)
        assert main([*smoke_command(alone, ["sft"]), "--cache", str(tmp_path / "alone" / "stages")]) == 0
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


# -- python -m harness.cache: ls, du, prune ---------------------------------------------------------------------------

DAY = 86400


def _aged(stage: Path, built_days: float, used_days: float | None = None) -> Path:
    """Makes ``stage`` look built ``built_days`` ago and last reused ``used_days`` ago (never, if None)."""
    now = time.time()
    os.utime(stage / "stage.json", (now - built_days * DAY,) * 2)
    if used_days is not None:
        (stage / ".last-used").touch()
        os.utime(stage / ".last-used", (now - used_days * DAY,) * 2)
    return stage


def _filled_cache(root: Path) -> dict[str, Path]:
    """Three stages of known sizes and ages: sft (3000 bytes of weights, built 40 days ago, used 1 day ago), an
    old ppo (2000 bytes, built 30 days ago, never reused) and a new ppo (1000 bytes, built 2 days ago, used 12 hours
    ago)."""
    cache = StageCache(root, log=lambda _: None)

    def stage(name: str, size: int) -> Path:
        return cache.stage(name, {"size": size}, lambda out: (out / "w.bin").write_bytes(b"w" * size)).path

    return {"sft": _aged(stage("sft", 3000), 40, used_days=1), "old_ppo": _aged(stage("ppo", 2000), 30),
            "new_ppo": _aged(stage("ppo", 1000), 2, used_days=0.5)}


def _stale_temporary(root: Path) -> Path:
    """The half-built stage of a builder that was killed: marked as the cache's, its lock free."""
    stale = root / ".tmp-ppo-0123456789abcdef-deadbeef"
    stale.mkdir()
    (stale / ".harness-owned").write_text(json.dumps({"stage": "ppo-0123456789abcdef"}))
    (stale / "half.bin").write_bytes(b"h" * 500)
    return stale


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _kb(size: int) -> str:
    return f"{size / 1000:.1f} kB"


def _cache_command(capsys, *argv: str) -> list[str]:
    from harness.cache import main as cache_main

    assert cache_main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()


def test_ls_lists_every_stage_with_its_size_build_and_last_use_most_recent_first(tmp_path, capsys):
    stages = _filled_cache(tmp_path)
    lines = _cache_command(capsys, "ls", "--cache", str(tmp_path))
    assert lines[0] == f"stage cache {tmp_path}" and lines[1].split() == ["STAGE", "SIZE", "BUILT", "LAST", "USED"]
    assert [line.split() for line in lines[2:5]] == [  # name, size, built, last used (never reused: its build)
        [stages["new_ppo"].name, *_kb(_bytes(stages["new_ppo"])).split(), "2", "days", "ago", "12", "hours", "ago"],
        [stages["sft"].name, *_kb(_bytes(stages["sft"])).split(), "5", "weeks", "ago", "1", "day", "ago"],
        [stages["old_ppo"].name, *_kb(_bytes(stages["old_ppo"])).split(), "4", "weeks", "ago", "4", "weeks", "ago"]]
    assert lines[5:] == [f"3 stages, {_kb(sum(_bytes(s) for s in stages.values()))}"]

    def order(sort: str) -> list[str]:
        return [line.split()[0] for line in _cache_command(capsys, "ls", "--cache", str(tmp_path), "--sort", sort)[2:5]]

    assert order("size") == [stages[k].name for k in ("sft", "old_ppo", "new_ppo")]
    assert order("built") == [stages[k].name for k in ("new_ppo", "old_ppo", "sft")]
    assert order("name") == sorted(s.name for s in stages.values())


def test_ls_counts_half_built_stages_apart(tmp_path, capsys):
    _filled_cache(tmp_path)
    stale = _stale_temporary(tmp_path)
    lines = _cache_command(capsys, "ls", "--cache", str(tmp_path))
    assert lines[-2].startswith("3 stages, ")
    assert lines[-1] == f"1 half-built ({_bytes(stale)} B): 0 being built, 1 stale, which prune deletes"


def test_du_gives_the_total_and_each_kind_of_stage_largest_first(tmp_path, capsys):
    stages = _filled_cache(tmp_path)
    stale = _stale_temporary(tmp_path)
    lines = _cache_command(capsys, "du", "--cache", str(tmp_path))
    assert lines[0] == f"stage cache {tmp_path}" and lines[1].split() == ["KIND", "STAGES", "SIZE"]
    rows = [re.split(r" {2,}", line.strip()) for line in lines[2:]]  # columns are 2 or more spaces apart
    assert rows == [["ppo", "2", _kb(_bytes(stages["old_ppo"]) + _bytes(stages["new_ppo"]))],
                    ["sft", "1", _kb(_bytes(stages["sft"]))],
                    ["(half-built)", f"{_bytes(stale)} B"],
                    ["(cache files)", "0 B"],  # the stage locks: empty files
                    ["total", "3", _kb(_bytes(tmp_path))]]


def test_prune_deletes_what_no_run_used_for_days_and_keeps_the_recent_and_the_locked(tmp_path, capsys):
    from filelock import FileLock

    stages = _filled_cache(tmp_path)
    locked = _aged(StageCache(tmp_path, log=lambda _: None).stage(
        "reward", {"x": 1}, lambda out: (out / "w.bin").write_bytes(b"r")).path, 60)
    stale = _stale_temporary(tmp_path)
    old = stages["old_ppo"]

    dry = _cache_command(capsys, "prune", "--older-than", "7", "--dry-run", "--cache", str(tmp_path))
    assert dry == [f"would delete {locked.name} ({_bytes(locked)} B)", f"would delete {old.name} ({_kb(_bytes(old))})",
                   f"would delete half-built {stale.name}",
                   f"would delete 2 stages unused for 7 days ({_kb(_bytes(locked) + _bytes(old))}) and 1 half-built"]
    assert all(p.is_dir() for p in [*stages.values(), locked, stale]), "a dry run deletes nothing"

    old_size = _kb(_bytes(old))
    with FileLock(tmp_path / ".locks" / f"{locked.name}.lock"):  # a run is building or reusing it right now
        lines = _cache_command(capsys, "prune", "--older-than", "7", "--cache", str(tmp_path))
    assert lines == [f"deleted {old.name} ({old_size})", f"kept {locked.name}: a run holds its lock",
                     f"deleted half-built {stale.name}",
                     f"deleted 1 stage unused for 7 days ({old_size}) and 1 half-built"]
    assert not old.exists() and not stale.exists()
    assert stages["sft"].is_dir() and stages["new_ppo"].is_dir() and locked.is_dir()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []

    # its lock free again and still unused, the locked stage goes next time; 0 days deletes every stage
    _cache_command(capsys, "prune", "--older-than", "0", "--cache", str(tmp_path))
    assert _entries(tmp_path) == []


def test_a_reused_stage_counts_as_used_and_is_not_pruned(tmp_path):
    cache = StageCache(tmp_path, log=lambda _: None)
    built = _aged(cache.stage("sft", {"x": 1}, lambda out: (out / "w.bin").write_bytes(b"w")).path, 30)
    assert cache.stage("sft", {"x": 1}, lambda out: pytest.fail("rebuilt")).reused  # a run reuses it today
    assert cache.prune(older_than_days=7).deleted == [] and built.is_dir()
    eight_days_on = cache.prune(older_than_days=7, now=time.time() + 8 * DAY)
    assert [s.path for s in eight_days_on.deleted] == [built] and not built.exists()


@pytest.mark.parametrize("argv, message", [
    (["clean"], "argument COMMAND: invalid choice: 'clean' (choose from 'ls', 'du', 'prune')"),
    ([], "the following arguments are required: COMMAND"),
    (["prune", "--older-than", "-1"], "--older-than: got -1; allowed: a number of days >= 0"),
    (["prune", "--older-than", "nan"], "--older-than: got nan; allowed: a number of days >= 0"),
    (["prune"], "the following arguments are required: --older-than"),
    (["ls", "--sort", "age"], "argument --sort: invalid choice: 'age' (choose from 'used', 'built', 'size', 'name')"),
    (["du", "--cache", "{tmp}"], "--cache: {tmp} is not a stage cache (it has no .locks/); allowed: a dir a run "
                                 "used as its --cache"),
], ids=["unknown command", "no command", "negative days", "nan days", "no days", "unknown sort", "not a cache"])
def test_bad_cache_commands_are_one_line_and_exit_2(tmp_path, argv, message):
    (tmp_path / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "harness.cache", *[a.format(tmp=tmp_path) for a in argv]],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"harness.cache: error: {message.format(tmp=tmp_path)}"]
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_default_cache_is_the_users_beside_its_models(monkeypatch, tmp_path, capsys):
    from harness.cache import default_stage_cache
    from harness.pipeline import default_model_cache

    monkeypatch.delenv("RLP_HARNESS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_stage_cache() == tmp_path / "xdg" / "rlp-harness" / "stages"
    assert default_model_cache() == tmp_path / "xdg" / "rlp-harness" / "models"
    monkeypatch.setenv("RLP_HARNESS_CACHE", str(tmp_path / "big-disk"))
    assert default_stage_cache() == tmp_path / "big-disk" / "stages"
    assert default_model_cache() == tmp_path / "big-disk" / "models"
    assert _cache_command(capsys, "ls") == [f"stage cache {tmp_path / 'big-disk' / 'stages'}: empty, no run has used "
                                            "it yet"]
