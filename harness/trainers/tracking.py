"""Where training reports its per-step statistics besides ``run.log``: the experiment tracker (``--report-to``).

The TRL trainers (SFT, reward) and our PPO share these settings, so ``--report-to tensorboard`` puts every stage a
run trains under one folder, ``<run dir>/tracking/<stage>``, to watch live with
``tensorboard --logdir <run dir>/tracking``. A reused stage trains nothing and so logs nothing.

The tracker is a process-wide setting, like the mixed precision (:mod:`harness.core.precision`): a run sets it for
its length (:func:`reporting_to`), and the trainers read it when they are built. It is not part of any stage's key:
watching a run does not change what it computes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

TRACKERS = ("none", "tensorboard", "trackio", "wandb")
PROJECT = "rlp-harness"  # the project name trackio and wandb file the runs under


@dataclass(frozen=True)
class Tracking:
    """Where training statistics go besides ``run.log``.

    Attributes:
        report_to: one of :data:`TRACKERS`.
        log_dir: the folder under which each trained stage gets a subfolder (TensorBoard's event files; trackio and
            wandb keep their own stores).
    """

    report_to: str = "none"
    log_dir: Path | None = None


_tracking = Tracking()


@contextlib.contextmanager
def reporting_to(report_to: str, log_dir: Path | None) -> Iterator[None]:
    """Where the trainers and PPO built in this process report while the block runs; the previous setting after.

    Raises:
        ValueError: ``report_to`` is not one of :data:`TRACKERS`, or its package is not installed.
    """
    problem = tracker_problem(report_to)
    if problem:
        raise ValueError(problem)
    global _tracking
    previous, _tracking = _tracking, Tracking(report_to, log_dir)
    try:
        yield
    finally:
        _tracking = previous


def tracker_problem(report_to: str) -> str | None:
    """Why ``--report-to report_to`` cannot work here (one line), or None if it can."""
    if report_to not in TRACKERS:
        return f"--report-to: {report_to!r} is not a tracker; choose one of {', '.join(TRACKERS)}"
    if report_to != "none" and importlib.util.find_spec(report_to) is None:
        return f"--report-to {report_to}: the {report_to} package is not installed (pip install {report_to})"
    return None


def tracking() -> Tracking:
    """The process's current tracking settings."""
    return _tracking


def stage_run_name(out_dir: Path | str) -> str:
    """The tracker's name for a stage being built in ``out_dir``: the name of the stage dir it will become.

    A stage is built in a temporary dir (``.tmp-ppo-<key>-<8 hex>``) and then renamed ``ppo-<key>``; the run is
    named after the latter, so a tracker's run and ``run.log``'s stage line carry the same name.
    """
    name = Path(out_dir).name
    temporary = re.fullmatch(r"\.tmp-(.+)-[0-9a-f]{8}", name)
    return temporary.group(1) if temporary else name


def trainer_reporting(out_dir: Path | str) -> dict:
    """HF ``TrainingArguments`` fields that send a TRL trainer's logs to the tracker (none by default).

    TensorBoard's callback takes its folder from ``TENSORBOARD_LOGGING_DIR`` when the trainer is built (transformers
    5 has no argument for it), so this sets that variable for the trainer about to be built.
    """
    if _tracking.report_to == "none":
        return {"report_to": []}
    name = stage_run_name(out_dir)
    if _tracking.report_to == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(_tracking.log_dir / name)
    return {"report_to": [_tracking.report_to], "run_name": name, "project": PROJECT}


def accelerator_reporting() -> dict:
    """``Accelerator`` arguments that give our PPO the same tracker (accelerate's ``log_with``)."""
    if _tracking.report_to == "none":
        return {}
    return {"log_with": _tracking.report_to, "project_dir": str(_tracking.log_dir)}


def tracker_init(out_dir: Path | str) -> dict:
    """``Accelerator.init_trackers`` arguments for a stage built in ``out_dir``, named as the trainers name theirs.

    accelerate's TensorBoard tracker makes its folder from the project name, so there the stage is the project;
    trackio and wandb file the stage as a run of the :data:`PROJECT`.
    """
    name = stage_run_name(out_dir)
    if _tracking.report_to == "tensorboard":
        return {"project_name": name}
    return {"project_name": PROJECT, "init_kwargs": {_tracking.report_to: {"name": name}}}
