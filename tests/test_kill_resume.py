"""SIGKILL the run at random moments, rerun the same command, and demand the uninterrupted run's results.

Marked slow (about ten minutes on 2 cores): `make test-slow`. Kill times are spread uniformly over the length of
an uninterrupted run, so trials land in every stage: base-model pretraining, SFT, reward models, PPO, sampling,
evaluation, report and leaderboard writing.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest


TRIALS = 12


def command(smoke_command, out, leaderboards):
    """The smoke run into ``out``, with a stage cache of its own beside it (``stages/``), so every trial builds
    every stage and its kill can land in any of them."""
    return [sys.executable, "-m", "harness.run", *smoke_command(out), "--cache", str(out.parent / "stages"),
            "--update-leaderboard", "--leaderboards", str(leaderboards)]


def run(cmd, kill_after=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is None:
        _, err = process.communicate()
        assert process.returncode == 0, err[-2000:]
        return True
    try:
        process.wait(timeout=kill_after)
        return False  # finished before the kill
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return True


@pytest.mark.slow
def test_random_kills_never_lose_finished_work(tmp_path, stable, smoke_command):
    reference_out, reference_boards = tmp_path / "reference" / "run", tmp_path / "reference-boards"
    started = time.perf_counter()
    run(command(smoke_command, reference_out, reference_boards))
    duration = time.perf_counter() - started
    expected = stable(json.loads((reference_out / "results.json").read_text()))
    expected_board = pd.read_csv(reference_boards / "tiny.csv").drop(columns=["train_wall_s"])

    rng = random.Random(0)
    killed = 0
    for trial in range(TRIALS):
        out, boards = tmp_path / f"trial{trial}" / "run", tmp_path / f"boards{trial}"
        stages = out.parent / "stages"
        if not run(command(smoke_command, out, boards), kill_after=rng.uniform(0.5, duration)):
            continue
        killed += 1
        finished = {p.name for p in stages.glob("*-*") if not p.name.startswith(".")} if stages.exists() else set()
        log_before = (out / "run.log").read_text() if (out / "run.log").exists() else ""
        for board in boards.glob("tiny.*"):  # a leaderboard that exists is whole
            if board.suffix == ".csv":
                pd.read_csv(board)
            else:
                json.loads(board.read_text())

        run(command(smoke_command, out, boards))
        rerun_log = (out / "run.log").read_text()[len(log_before):]
        retrained = set(re.findall(r"\] stage \S+ +training (\S+)", rerun_log)) & finished
        assert not retrained, f"trial {trial}: finished stages trained again: {retrained}"
        assert stable(json.loads((out / "results.json").read_text())) == expected, f"trial {trial}"
        board = pd.read_csv(boards / "tiny.csv").drop(columns=["train_wall_s"])
        pd.testing.assert_frame_equal(board, expected_board)
        assert not list(stages.glob(".tmp-*"))
    assert killed >= 10, f"only {killed} of {TRIALS} trials were killed before finishing"
