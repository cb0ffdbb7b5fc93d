"""Parallel jobs: tasks in worker processes give what one process gives, in order; failures and Ctrl-C end the run.

The pool's own rules are tested with small module-level functions (a worker imports them by name); one run at the
minimal budget checks that ``--jobs 2`` builds the same stages and measures the same metrics as ``--jobs 1``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import jobs
from harness.jobs import Task, run_tasks
from harness.run import main


def square_with_job(x: int) -> tuple[int, int]:
    time.sleep(0.05 * (x % 3))  # finish out of order
    return x * x, jobs.job_number()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task three is bad")
    time.sleep(0.2)
    return x


def die_on_two(x: int) -> int:
    if x == 2:
        os._exit(9)  # a worker killed without a word (out of memory, kill -9)
    time.sleep(0.5)
    return x


def failing_setup() -> None:
    raise RuntimeError("setup cannot build the suite")


def test_results_come_back_in_task_order_from_both_jobs():
    tasks = [Task(x, group=x % 2) for x in range(8)]
    results = run_tasks(tasks, square_with_job, jobs=2)
    assert [r[0] for r in results] == [x * x for x in range(8)]
    assert {r[1] for r in results} == {1, 2}  # both workers worked, numbered 1 and 2


def test_one_job_runs_everything_here_in_order():
    assert run_tasks([Task(x) for x in range(4)], square_with_job, jobs=1) == [(x * x, 0) for x in range(4)]


def test_a_free_job_takes_a_task_of_a_group_nobody_works_on():
    tasks = [Task("a", 0), Task("b", 0), Task("c", 1), Task("base", None)]
    assert jobs._next_task(tasks, pending=[1, 2, 3], running=[0]) == 2  # group 0 is busy: take group 1
    assert jobs._next_task(tasks, pending=[1, 3], running=[0]) == 3  # a task without a group goes anywhere
    assert jobs._next_task(tasks, pending=[1], running=[0]) == 1  # nothing free: wait on the busy group's locks


def test_the_first_failure_ends_the_run_with_the_worker_traceback():
    with pytest.raises(ValueError, match="task three is bad") as caught:
        run_tasks([Task(x, group=x) for x in range(6)], fail_on_three, jobs=2)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "in job" in notes and "fail_on_three" in notes


def test_a_worker_that_dies_silently_is_reported_not_waited_for():
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"job \d ended unexpectedly \(exit code 9\)"):
        run_tasks([Task(x, group=x) for x in range(4)], die_on_two, jobs=2)
    assert time.perf_counter() - started < 60


def test_a_setup_failure_is_raised_once_not_retried_forever():
    with pytest.raises(RuntimeError, match="setup cannot build the suite"):
        run_tasks([Task(x) for x in range(3)], square_with_job, jobs=2, setup=failing_setup)


def test_jobs_is_not_part_of_what_a_run_is(tmp_path, smoke_command):
    """A run may be resumed with another --jobs: config.yaml's identity leaves runtime.jobs out."""
    from harness.run import parse_and_validate
    from harness.rundir import identity

    config_1, methods, _ = parse_and_validate([*smoke_command(tmp_path / "a", ["sft"]), "--jobs", "1"])
    config_2, _, _ = parse_and_validate([*smoke_command(tmp_path / "a", ["sft"]), "--jobs", "2"])
    assert (config_1.runtime.jobs, config_2.runtime.jobs) == (1, 2)
    assert identity(methods, 1, config_1.to_dict()) == identity(methods, 1, config_2.to_dict())


def test_the_default_takes_one_job_per_core_other_programs_leave_idle():
    assert jobs.default_jobs(2, 2.0) == 2  # a quiet 2-core machine
    assert jobs.default_jobs(2, 1.02) == 1  # one busy process beside the run
    assert jobs.default_jobs(2, 1.5) == 2  # a core half busy still takes a job
    assert jobs.default_jobs(2, 0.1) == 1  # at least one
    assert jobs.default_jobs(4, 7.9) == 4  # never more than this process may run on
    assert jobs.default_jobs(3, None) == 3  # idleness unknown (no /proc/stat): every core


def test_a_default_that_takes_fewer_jobs_than_cores_says_why(tmp_path, smoke_command, monkeypatch):
    from harness import pipeline
    from harness.run import parse_and_validate

    config, _, _ = parse_and_validate(smoke_command(tmp_path / "run", ["sft"]))
    monkeypatch.setattr(pipeline.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(jobs, "available_cores", lambda: 2)
    monkeypatch.setattr(jobs, "idle_cores", lambda: 1.1)  # one busy process beside the run
    count, why = pipeline.job_count(config)
    assert count == 1 and why.startswith("1 job(s) for 2 cores") and "0.9 of them busy" in why
    monkeypatch.setattr(jobs, "idle_cores", lambda: 1.9)
    assert pipeline.job_count(config) == (2, None)
    config.runtime.jobs = 2  # set: taken as it is, whatever the load
    monkeypatch.setattr(jobs, "idle_cores", lambda: 0.0)
    assert pipeline.job_count(config) == (2, None)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc/stat")
def test_idle_cores_sees_a_busy_process():
    cores = os.cpu_count()
    assert 0 <= jobs.idle_cores() <= cores
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        assert jobs.idle_cores(0.5) <= cores - 0.5  # its core, or all of them already busy elsewhere
    finally:
        spinner.kill()
        spinner.wait()


@pytest.mark.parametrize("flag", [["--jobs", "0"], ["--jobs", "-2"], ["--set", "runtime.jobs=0"]])
def test_a_bad_job_count_is_one_line(flag, tmp_path, smoke_command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*smoke_command(tmp_path / "bad", ["sft"]), *flag])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "jobs" in err and ("positive" in err or "> 0" in err)


def _stage_names(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir() if not p.name.startswith(".")}


def test_two_jobs_build_the_same_stages_and_measure_the_same_as_one(tmp_path, smoke_command, stable):
    methods = ["ppo", "rlp_spg", "best_of_n"]
    one, two = tmp_path / "one", tmp_path / "two"
    for out, jobs_ in ((one, "1"), (two, "2")):  # each with a cache of its own, so each builds every stage
        cache = ["--cache", str(out / "stages")]
        assert main([*smoke_command(out, methods), "--seeds", "2", "--jobs", jobs_, *cache]) == 0
    assert _stage_names(one / "stages") == _stage_names(two / "stages")
    results_one = json.loads((one / "results.json").read_text())
    results_two = json.loads((two / "results.json").read_text())
    assert stable(results_two) == stable(results_one)
    log = (two / "run.log").read_text()
    assert "[job 1] " in log and "[job 2] " in log  # each job's lines are labelled
    assert log.count("stage sft              training") == 2  # each seed's SFT built once, by one job


@pytest.mark.slow  # three runs at the minimal budget: about two minutes on a quiet machine
def test_ctrl_c_ends_every_job_and_the_rerun_resumes(tmp_path, smoke_command, stable, wait_for_log_line):
    """SIGINT (what a terminal sends the whole process group on Ctrl-C) mid-run: exit 130, no job left running,
    nothing half published, and the same command then finishes with the results of an uninterrupted run."""
    out = tmp_path / "run"
    command = [*smoke_command(out, ["ppo", "rlp_spg"]), "--seeds", "2", "--cache", str(out / "stages")]
    argv = [sys.executable, "-m", "harness.run", *command, "--jobs", "2"]
    process = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    log = out / "run.log"
    wait_for_log_line(log, "stage ppo              training", process)
    os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: every process of the group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    assert not (out / "results.json").exists()
    assert not _processes_in_group(process.pid), "a job outlived the run"

    assert list((out / "stages").iterdir()), "the interrupted run built no stage"
    assert main([*command, "--jobs", "2"]) == 0
    assert "reused" in log.read_text() and not list((out / "stages").glob(".tmp-*"))
    fresh = tmp_path / "fresh"
    assert main([*smoke_command(fresh, ["ppo", "rlp_spg"]), "--seeds", "2", "--jobs", "1",
                 "--cache", str(fresh / "stages")]) == 0
    assert stable(json.loads((out / "results.json").read_text())) == stable(
        json.loads((fresh / "results.json").read_text()))


def _processes_in_group(group: int, wait: float = 10.0) -> list[int]:
    """Processes of a process group still alive after up to ``wait`` seconds (the jobs are in the run's group)."""
    deadline = time.time() + wait
    while True:
        alive = []
        for proc in Path("/proc").iterdir():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if proc.name.isdigit() and int(fields[2]) == group and fields[0] != "Z":
                alive.append(int(proc.name))
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.2)
