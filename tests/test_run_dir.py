"""Fault injection on run dirs and shared caches: what a user who shares caches, reuses folders and makes mistakes
does, each answered by one line and exit 2, or by the results a clean run gets, and never by lost or wrong data.

Every real run here is the SFT-only smoke run at the reduced budget (about ten seconds after imports); the module
trains it once and the other cases reuse its stages from the module's stage cache (the default of its runs, as the
user's is of theirs). The two-process case takes about 30 seconds of real processes.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import rundir
from harness.rundir import RunDirError, check_out
from harness.run import main as run_main

REPO = Path(__file__).parent.parent
RUN_FILES = ("config.yaml", "results.json", "leaderboard.csv", "diagnostics.json", "report.md", "report.html")


def env() -> dict[str, str]:
    """The environment of a run in a child process: this one's as it is now (with the module's stage cache)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def main(argv: list[str]) -> int:
    """``python -m harness.run`` in this process: its exit status, whether returned or raised for bad input."""
    try:
        return run_main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.fixture(scope="session")
def command(smoke_command):
    """``command(out, *extra)``: the SFT-only smoke run into ``out``, with more arguments, in one process (the
    tests stop and interrupt it there; tests/test_jobs.py interrupts parallel jobs)."""
    return lambda out, *extra: [*smoke_command(out, ["sft"]), "--jobs", "1", *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, command) -> Path:
    """A finished SFT-only smoke run; its siblings share its base model (the user's model cache)."""
    out = tmp_path_factory.mktemp("runs") / "alone"
    assert main(command(out)) == 0
    return out


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a run dir, with its modification time (the lock, which holds the pid of the last run that
    took it, aside)."""
    return {p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="session")
def results_of(stable):
    """``results_of(out)``: the run's results.json without what differs between identical runs."""
    return lambda out: stable(json.loads((out / "results.json").read_text()))


def _one_line(capfd) -> str:
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("harness.run: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith((".publish-", ".tmp-")) or p.suffix == ".tmp")


def _copy(finished: Path, name: str) -> Path:
    copy = finished.parent / name
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def _own_cache(stage_cache: Path, tmp_path: Path) -> Path:
    """A copy of the module's stage cache (modification times kept, as ``cp -p`` keeps them), for a test that
    damages stages: the module's own stay intact for the other tests."""
    copy = tmp_path / "stages"
    shutil.copytree(stage_cache, copy, symlinks=True)
    return copy


# -- which dirs a run writes into (issue: --out onto user files, another command's results) ---------------------------

def test_a_dir_of_user_files_is_refused_and_left_untouched(tmp_path, capfd, command):
    out = tmp_path / "project"
    out.mkdir()
    for name in ("config.yaml", "report.md", "results.json", "notes.txt"):
        (out / name).write_text(f"my {name}")
    before = _snapshot(out)
    assert main(command(out)) == 2
    assert _one_line(capfd) == (
        f"harness.run: error: --out: {out} holds files this harness did not write (config.yaml, notes.txt, "
        "report.md, ...); choose a new or empty dir, or pass --overwrite to write into it anyway")
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_another_commands_finished_run_is_refused_naming_the_difference(finished, capfd, smoke_command, command):
    before = _snapshot(finished)
    assert main(command(finished, "--set", "runtime.mixed_precision='no'")) == 2
    assert _one_line(capfd) == (
        f"harness.run: error: --out: {finished} holds a finished run of another command (runtime.mixed_precision: "
        "'auto' there, 'no' here); choose another --out, or pass --overwrite to replace that run's results")
    assert main([*smoke_command(finished, ["sft", "ppo"])]) == 2
    assert "holds a finished run of another command (methods: sft there, sft ppo here)" in _one_line(capfd)
    assert _snapshot(finished) == before


def test_overwrite_replaces_config_and_results_together(finished, command, results_of):
    out = _copy(finished, "overwritten")
    (out / "outputs" / "ppo").mkdir()  # the alpaca_eval files of a method only the replaced run had
    assert main(command(out, "--set", "runtime.mixed_precision='no'", "--overwrite")) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["runtime"]["mixed_precision"] == "no"
    assert results_of(out) == results_of(finished) and _leftovers(out) == []
    assert [p.name for p in (out / "outputs").iterdir()] == ["sft"], "outputs/ is published with the results"
    assert (out / "outputs" / "sft" / "farm" / "model_outputs.json").is_file()


# -- a failed run leaves a finished one as it was ---------------------------------------------------------------------

def test_a_run_that_fails_midway_leaves_the_finished_run_exactly_as_it_was(finished, capfd, command):
    out = _copy(finished, "failed")
    before = _snapshot(out)
    log_before = (out / "run.log").read_text()
    assert main(command(out, "--set", "model.base=/etc", "--overwrite")) == 2
    line = _one_line(capfd)
    assert line.startswith("harness.run: error: model.base: '/etc' is not a model checkpoint (")
    assert line.endswith(f"; {out} keeps its previous results")
    after = _snapshot(out)
    assert after.pop("run.log")[0].decode().startswith(log_before)  # the log only grew
    before.pop("run.log")
    assert after == before and _leftovers(out) == []


def test_an_interrupted_run_is_one_line_and_the_finished_run_stays(finished, monkeypatch, capfd, command):
    out = _copy(finished, "interrupted")
    before = _snapshot(out)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.pipeline.evaluate_policy", ctrl_c)  # Ctrl-C once SFT is trained (reused here)
    assert main(command(out, "--set", "runtime.mixed_precision='no'", "--overwrite")) == 130
    assert capfd.readouterr().err.splitlines()[-1] == (
        f"harness.run: interrupted; finished stages are kept, rerun the same command to resume; {out} keeps its "
        "previous results")
    after = _snapshot(out)
    after.pop("run.log"), before.pop("run.log")
    assert after == before and _leftovers(out) == []


def test_a_full_disk_at_the_end_is_one_line_and_the_old_results_stay(finished, command):
    """A real write failure: the process may write no file over 16 KiB (RLIMIT_FSIZE), so writing the HTML report
    (about 30 KiB) fails with EFBIG, as a full disk fails with ENOSPC, after everything else was written."""
    out = _copy(finished, "full-disk")
    before = _snapshot(out)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write(), not a killed process

    process = subprocess.run([sys.executable, "-m", "harness.run", *command(out)], cwd=REPO, env=env(),
                             capture_output=True, text=True, preexec_fn=limit_file_size, timeout=600)
    assert process.returncode == 2, process.stderr[-3000:]
    assert process.stderr.splitlines()[-1].startswith("harness.run: error: ")
    assert process.stderr.splitlines()[-1].endswith(f"File too large; {out} keeps its previous results")
    assert "Traceback" not in process.stderr
    after = _snapshot(out)
    after.pop("run.log"), before.pop("run.log")
    assert after == before and _leftovers(out) == []


def test_a_publication_interrupted_between_two_moves_is_completed_by_the_next_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    for name, text in (("config.yaml", "old config"), ("results.json", "old results")):
        (out / name).write_text(text)
    (out / "plots").mkdir()
    (out / "plots" / "old.png").write_text("old plot")
    real_replace, moves = os.replace, []

    def die_after_the_first_move(source, target):
        if Path(target).parent == out:
            if moves:
                raise KeyboardInterrupt  # killed between two moves
            moves.append(target)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", die_after_the_first_move)
    with pytest.raises(KeyboardInterrupt):
        with rundir.staging(out) as staging:
            (staging / "config.yaml").write_text("new config")
            (staging / "results.json").write_text("new results")
            (staging / "plots").mkdir()
            (staging / "plots" / "new.png").write_text("new plot")
    monkeypatch.undo()
    assert (out / "config.yaml").read_text() == "new config" and (out / "results.json").read_text() == "old results"
    rundir.recover(out)
    assert [(out / n).read_text() for n in ("config.yaml", "results.json")] == ["new config", "new results"]
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["new.png"] and _leftovers(out) == []


# -- the same run through other paths, copies and damaged stages ------------------------------------------------------

def test_the_same_command_into_another_out_trains_nothing(finished, command, results_of, stage_cache):
    """The stages are the user's (here the module's cache), not the run dir's: a second run dir gets the results
    of the first without training anything, and holds no stages of its own."""
    out = finished.parent / "second"
    assert main(command(out)) == 0
    log = (out / "run.log").read_text()
    assert " training " not in log and "stage sft              reused" in log, log
    assert f"stage cache {stage_cache} " in log
    assert results_of(out) == results_of(finished) and not (out / "stages").exists()


def test_the_run_through_a_symlink_a_relative_path_or_a_copy_trains_nothing(finished, monkeypatch, command, results_of,
                                                                            stage_cache, tmp_path):
    """The run dir and the stage cache, each reached through a symlink, a relative path, or copied elsewhere."""
    link, cache_link = finished.parent / "link", tmp_path / "cache-link"
    link.symlink_to(finished, target_is_directory=True)
    cache_link.symlink_to(stage_cache, target_is_directory=True)
    copy, cache_copy = _copy(finished, "copy"), _own_cache(stage_cache, tmp_path)
    monkeypatch.chdir(finished.parent)
    relative_cache = Path(os.path.relpath(stage_cache, finished.parent))
    for out, cache in ((link, cache_link), (Path("alone"), relative_cache), (copy, cache_copy)):
        log_before = (out / "run.log").read_text()
        assert main(command(out, "--cache", str(cache))) == 0
        new_lines = (out / "run.log").read_text()[len(log_before):]
        assert " training " not in new_lines and " reused " in new_lines, (out, new_lines)
        assert results_of(out) == results_of(finished)


def test_a_hand_edited_win_rate_is_detected_rebuilt_and_never_reported(finished, command, results_of, stage_cache,
                                                                       tmp_path):
    out, cache = _copy(finished, "edited"), _own_cache(stage_cache, tmp_path)
    stage = next(cache.glob("winrate_farm-*"))
    metrics = json.loads((stage / "metrics.json").read_text())
    metrics["win_rate"] = 99.9
    (stage / "metrics.json").write_text(json.dumps(metrics, indent=1))
    assert main(command(out, "--cache", str(cache))) == 0
    log = (out / "run.log").read_text()
    assert f"damaged  {stage.name}: metrics.json " in log and "rebuilding it" in log
    assert results_of(out) == results_of(finished)
    assert json.loads((out / "results.json").read_text())["methods"]["sft"]["metrics"]["farm_win_rate"]["mean"] != 99.9


def test_a_truncated_checkpoint_is_rebuilt_before_anything_loads_it(finished, command, results_of, stage_cache,
                                                                     tmp_path):
    out, cache = _copy(finished, "truncated"), _own_cache(stage_cache, tmp_path)
    weights = next(cache.glob("sft-*")) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(command(out, "--cache", str(cache))) == 0
    assert f"damaged  {weights.parent.name}: model.safetensors has 100 bytes" in (out / "run.log").read_text()
    assert results_of(out) == results_of(finished)


# -- --out and preset names that are not what they seem ---------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "out").symlink_to(d / "gone"), "is a symlink to {d}/gone, which does not exist"),
    (lambda d: (d / "out").symlink_to(d / "out"), "Too many levels of symbolic links"),
    (lambda d: (d / "out").write_text("a file"), "is not a writable directory"),
], ids=["dangling symlink", "looping symlink", "a file"])
def test_an_out_that_can_never_be_a_run_dir_is_one_line(tmp_path, capfd, make, message, command):
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(command(tmp_path / "out")) == 2
    assert message.format(d=tmp_path) in _one_line(capfd)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_check_out_refuses_a_symlinked_parent_that_dangles(tmp_path):
    (tmp_path / "runs").symlink_to(tmp_path / "gone")
    with pytest.raises(RunDirError, match="runs is a symlink to .*gone, which does not exist"):
        check_out(tmp_path / "runs" / "tiny", {"methods": ["sft"]})


def test_a_preset_name_that_is_a_path_is_refused(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --set takes section fields only, so a preset name comes from a preset file.
    assert main(["--methods", "sft", "--set", "preset=../../escaped", "--update-leaderboard"]) == 2
    assert "--set preset=../../escaped: unknown field preset" in _one_line(capfd)
    preset = tmp_path / "mine.yaml"
    preset.write_text((REPO / "harness" / "presets" / "tiny.yaml").read_text().replace("preset: tiny", "preset: ../x"))
    assert main(["--methods", "sft", "--preset", str(preset), "--update-leaderboard"]) == 2
    assert "preset: got '../x'; allowed: a name of letters, digits, '-' and '_' (not a path)" in _one_line(capfd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]


# -- two runs, one cache ----------------------------------------------------------------------------------------------

def _wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert process.poll() is None, f"the run ended before {text!r} appeared in {path}"
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_two_runs_on_one_cache_both_get_the_results_each_gets_alone(finished, tmp_path, command, results_of):
    """Run 1 is paused inside its SFT stage while run 2 starts on the same --cache: run 2's cleanup must leave the
    half-built stage alone and wait for it; both then finish with the results of the run done alone."""
    cache = tmp_path / "shared-cache"
    outs = [finished.parent / "first", finished.parent / "second"]
    processes = []
    try:
        for out in outs:
            with (tmp_path / f"{out.name}.err").open("w") as err:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "harness.run", *command(out, "--cache", str(cache))],
                    cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=err))
            if out is outs[0]:
                _wait_for(out / "run.log", "stage sft              training", processes[0])
                processes[0].send_signal(signal.SIGSTOP)
        _wait_for(outs[1] / "run.log", "another run is building it", processes[1])
        processes[0].send_signal(signal.SIGCONT)
        for process, out in zip(processes, outs):
            assert process.wait(timeout=600) == 0, (tmp_path / f"{out.name}.err").read_text()[-3000:]
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
            if process.poll() is None:
                process.kill()
    for out in outs:
        assert results_of(out) == results_of(finished)
    assert "stage sft              reused" in (outs[1] / "run.log").read_text()
    assert _leftovers(cache) == []
