"""What a run shows on the console, and what it writes to ``run.log`` only.

At the default verbosity the console shows the harness's own lines (``[hh:mm:ss] stage ... done``), its labelled
progress bars and the final table. Everything the libraries say (Python warnings, transformers' load reports,
lm-eval's notices, the trainers' per-step dicts) goes to ``run.log`` alone, without terminal colour codes, and their
unlabelled progress bars are off. ``--verbose`` shows all of it on stderr as well.

    with library_output(out_dir / "run.log", verbose=False):
        ...  # the run
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Iterator

# Terminal escape sequences (colours, cursor moves) that libraries put into their messages.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# True while a --verbose run is in progress (read by unlabelled_bars_hidden).
_VERBOSE = False


class PlainFormatter(logging.Formatter):
    """A log line without terminal escape codes, so ``run.log`` reads the same in an editor as in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return ANSI.sub("", super().format(record))


@contextlib.contextmanager
def library_output(run_log: Path, verbose: bool = False) -> Iterator[None]:
    """Sends the libraries' logging and warnings to ``run_log`` (and to stderr with ``verbose``) while it lasts.

    Everything it changes (root handlers and level, warning capture, the libraries' own handlers and progress
    bars) is put back on exit, so an in-process caller (a notebook, the tests) gets its settings back.
    """
    global _VERBOSE
    handlers: list[logging.Handler] = [logging.FileHandler(run_log, encoding="utf-8")]
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(PlainFormatter("%(asctime)s %(name)s %(levelname)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    previous_level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    previous_verbose, _VERBOSE = _VERBOSE, verbose
    try:
        with warnings.catch_warnings(), _libraries_to_root(quiet_bars=not verbose):
            warnings.simplefilter("default")  # each distinct warning once, into the log
            yield
    finally:
        _VERBOSE = previous_verbose
        logging.captureWarnings(False)
        root.setLevel(previous_level)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


@contextlib.contextmanager
def _libraries_to_root(quiet_bars: bool) -> Iterator[None]:
    """transformers and datasets log to stderr through handlers of their own, and stop propagation: route them to
    the root logger instead, and turn their progress bars (and huggingface_hub's) off when ``quiet_bars``."""
    import datasets
    import huggingface_hub.utils as hub
    import transformers

    loggers = [logging.getLogger(name) for name in ("transformers", "datasets")]
    transformers.utils.logging.get_logger()  # each library configures its logger on first use: do it now
    datasets.utils.logging.get_logger()
    saved = [(log.handlers[:], log.propagate, log.level) for log in loggers]
    bars = [(transformers.utils.logging.is_progress_bar_enabled(), transformers.utils.logging.enable_progress_bar),
            (datasets.is_progress_bar_enabled(), datasets.enable_progress_bars),
            (not hub.are_progress_bars_disabled(), hub.enable_progress_bars)]
    for log in loggers:
        log.handlers.clear()
        log.propagate = True
        log.setLevel(logging.WARNING)
    if quiet_bars:
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        hub.disable_progress_bars()
    try:
        yield
    finally:
        for log, (handlers, propagate, level) in zip(loggers, saved):
            log.handlers[:] = handlers
            log.propagate = propagate
            log.setLevel(level)
        for was_on, enable in bars:
            if was_on:
                enable()


@contextlib.contextmanager
def unlabelled_bars_hidden() -> Iterator[None]:
    """Hides the progress bars a library draws without a label, which it offers no switch for (lm-eval's).

    tqdm picks its stream when a bar is made, so bars made inside go to the null device; logging handlers keep the
    streams they hold, so warnings still reach ``run.log``. With ``--verbose`` nothing is hidden.
    """
    if _VERBOSE:
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        yield
