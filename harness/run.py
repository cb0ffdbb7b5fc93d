"""Command line: train the chosen methods on a preset and score them all the same way.

    python -m harness.run --methods ppo rlp_spg             # the embedded default (tiny preset, CPU, offline)
    python -m harness.run --methods all --seeds 3           # every method, mean and 95% interval over 3 seeds
    python -m harness.run --methods ppo --set ppo.kl_coef=0.05
    python -m harness.run --list-fields                     # every field --set accepts, its type, value and help
    python -m harness.run --list-fields --methods my_plugin # ... with the fields of a plugin method (entry point)

Every input is checked before any training starts; a bad one ends the run with exit status 2 and one line naming
the flag or field and what is allowed. torch, transformers and the trainers are imported only once a run starts,
so ``--help`` and the bad-input errors answer at once.
"""

from __future__ import annotations

import argparse
import errno
import gc
import os
import sys
import tempfile
import warnings
from pathlib import Path

from harness.core.cli import OneLineParser, fail

# alpaca_eval's import warning, in the -W syntax: silenced in this process and in the jobs it starts.
QUIET_WARNING = "ignore:pkg_resources is deprecated:UserWarning"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
# Storage failures that end a run with one line (exit 2) instead of a traceback: a full disk or quota, a file over
# the size limit, a read-only file system, no permission. Nothing of the run is half published (harness.rundir).
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _fail(message: str) -> int:
    return fail("harness.run", message)


def build_parser() -> argparse.ArgumentParser:
    from harness.registry import METHODS, PRESETS, method_names
    from harness.trainers.tracking import TRACKERS

    plugins = [name for name in method_names() if name not in METHODS]  # read from metadata: none is imported
    plugin_line = f"\nplugin methods: {', '.join(plugins)} (name them: 'all' is the built-in ones)" if plugins else ""
    parser = OneLineParser(
        tool="harness.run",
        prog="python -m harness.run",
        description="Train RLHF methods behind one interface and score them the same way.",
        epilog=f"methods: {', '.join(METHODS)} (or 'all'){plugin_line}\npresets: {', '.join(PRESETS)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", nargs="+", metavar="METHOD",
                        help=f"methods to train and evaluate: {', '.join(method_names())}, or all (the built-in "
                        "ones; a plugin method runs when named)")
    parser.add_argument("--preset", default="tiny", help=f"preset name ({', '.join(PRESETS)}) or a preset YAML "
                        "file (default: tiny)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds; metrics report mean and 95%% "
                        "interval over them (default: 1)")
    parser.add_argument("--out", type=Path, default=None, help="run dir (default: runs/<preset>); a new or empty "
                        "dir, or a run dir of the same command (which resumes or reruns it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even if it holds a finished run of another command or files the "
                        "harness did not write; the old results are replaced only when this run finishes")
    parser.add_argument("--cache", type=Path, default=None, help="stage cache dir (default: the user's, shared by "
                        "every run: $RLP_HARNESS_CACHE/stages, else $XDG_CACHE_HOME/rlp-harness/stages, else "
                        "~/.cache/rlp-harness/stages; python -m harness.cache ls|du|prune manages it)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes that train and evaluate independent tasks at once, one torch thread "
                        "each (runtime.jobs; default: one per idle CPU core, 1 on a GPU); results do not depend on it")
    parser.add_argument("--update-leaderboard", action="store_true",
                        help="store this run as the preset's leaderboard (leaderboards/<preset>.csv and .json), "
                        "the reference of python -m harness.check")
    parser.add_argument("--leaderboards", type=Path, default=Path("leaderboards"),
                        help="where stored leaderboards live (default: leaderboards)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a preset field, e.g. --set ppo.num_steps=20 (repeatable; --list-fields "
                        "lists them)")
    parser.add_argument("--list-fields", action="store_true",
                        help="print every field --set accepts, with its type, its value in the preset and its help, "
                        "and exit")
    parser.add_argument("--report-to", default="none", metavar="TRACKER",
                        help=f"experiment tracker of the trainers and PPO: {', '.join(TRACKERS)} (default: none); "
                        "logs under <out>/tracking")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the libraries' warnings, logs and progress bars (always in <out>/run.log)")
    return parser


def parse_and_validate(argv: list[str] | None = None):
    """Parses the command line and checks everything that can be checked before training.

    Returns (config, methods, args); ``methods`` may be empty with ``--list-fields``, which lists the sections of
    the plugin methods named too. Raises SystemExit(2) with a one-line message on bad input.
    """
    from harness.registry import PRESETS, resolve_methods
    from harness.rundir import RunDirError, check_out, identity
    from harness.trainers.tracking import tracker_problem

    args = build_parser().parse_args(argv)
    if not args.methods and not args.list_fields:
        raise SystemExit(_fail("the following arguments are required: --methods"))
    try:
        methods = resolve_methods(args.methods or [])
    except ValueError as err:
        raise SystemExit(_fail(str(err))) from None
    if args.seeds <= 0:
        raise SystemExit(_fail(f"--seeds: must be a positive integer, got {args.seeds}"))
    if args.jobs is not None and args.jobs <= 0:
        raise SystemExit(_fail(f"--jobs: must be a positive integer, got {args.jobs}"))
    problem = tracker_problem(args.report_to)
    if problem:
        raise SystemExit(_fail(problem))

    preset_path = PRESETS.get(args.preset) or Path(args.preset)
    if args.preset not in PRESETS and not preset_path.is_file():
        raise SystemExit(_fail(f"--preset: unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)} "
                               "or give a preset YAML file"))
    from harness.config import load_preset  # torch-free, but --help and --version never need it
    from harness.core.errors import ConfigError

    try:
        jobs = [f"runtime.jobs={args.jobs}"] if args.jobs is not None else []
        config = load_preset(preset_path, args.overrides + jobs, methods)
    except ConfigError as err:
        raise SystemExit(_fail(str(err))) from None
    if args.list_fields:
        return config, methods, args  # nothing will be written

    args.out = args.out or Path("runs") / config.preset
    try:  # refused before any work: a dir of user files, another command's finished run, a broken symlink
        check_out(args.out, identity(methods, args.seeds, config.to_dict()), args.overwrite)
    except RunDirError as err:
        raise SystemExit(_fail(str(err))) from None
    leaderboards = args.leaderboards if args.update_leaderboard else None
    for flag, path in (("--out", args.out), ("--cache", args.cache), ("--leaderboards", leaderboards)):
        if path is not None and not _writable(path):
            raise SystemExit(_fail(f"{flag}: {path} is not a writable directory"))
    if args.cache is None:
        from harness.cache import default_stage_cache

        if not _writable(default_stage_cache()):
            raise SystemExit(_fail(f"the stage cache {default_stage_cache()} is not a writable directory; set "
                                   "RLP_HARNESS_CACHE to a dir that is, or pass --cache DIR"))
    return config, methods, args


def _writable(path: Path) -> bool:
    """True if ``path`` is, or can be created as, a directory we can write into.

    It tries a nameless temporary file in the nearest existing directory: ``os.access`` says yes to root everywhere,
    even where every write fails (a read-only mount, /proc, /sys), and the run would then fail mid-way.
    """
    probe = path
    while not os.path.lexists(probe):  # unlike Path.exists, False (not an error) where a parent is unreadable
        probe = probe.parent
    if not probe.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=probe):
            return True
    except OSError:
        return False


def _kept(out: Path) -> str:
    """What a failed run says about the run dir: a finished run there keeps its results (harness.rundir)."""
    return f"; {out} keeps its previous results" if (out / "results.json").exists() else ""


def main(argv: list[str] | None = None) -> int:
    # The offline presets never need the hub; without these switches every hub look-up waits before failing.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # alpaca_eval imports pkg_resources, and setuptools warns about that to everyone who imports alpaca_eval: two
    # lines on stderr the user can do nothing about (pyproject pins setuptools<82, which still has it).
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    # The same for the parallel jobs (harness.jobs), new interpreters that read their warning filters from here.
    if QUIET_WARNING not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), QUIET_WARNING)))
    config, methods, args = parse_and_validate(argv)
    if args.list_fields:
        from harness.config import describe_fields

        print(f"Fields of preset {config.preset} (--set SECTION.FIELD=VALUE), with their value in it:\n")
        print(describe_fields(config, methods))
        return 0

    from harness import pipeline
    from harness.cache import RunLockedError
    from harness.console_table import format_table
    from harness.core.errors import ConfigError
    from harness.distributed import is_main_process
    from harness.rundir import RunDirError

    # The half a million objects those imports made live as long as the run; moving them out of the collector's
    # reach keeps each full garbage collection from walking them again (3 s of a 2.5-minute run).
    gc.collect()
    gc.freeze()
    try:
        result = pipeline.run(config, methods, args.seeds, args.out, cache_dir=args.cache, verbose=args.verbose,
                              report_to=args.report_to, overwrite=args.overwrite)
    except (ConfigError, RunLockedError, RunDirError) as err:
        return _fail(str(err) + _kept(args.out))
    except OSError as err:
        if err.errno not in STORAGE_ERRORS:
            raise
        return _fail(f"{err.filename or args.out}: {err.strerror}" + _kept(args.out))
    except KeyboardInterrupt:  # Ctrl-C: what was kept matters more than where Python was
        print(f"harness.run: interrupted; finished stages are kept, rerun the same command to resume"
              f"{_kept(args.out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        gc.unfreeze()  # an in-process caller (a notebook, the tests) gets its collector back as it was
    if not is_main_process():
        return 0  # under accelerate launch the main process reports and updates the leaderboard
    print()
    print(format_table(result.results))
    print(f"\nresults: {args.out / 'results.json'}  report: {args.out / 'report.html'}")
    if args.update_leaderboard:
        from harness.leaderboard import update_leaderboard

        csv_path, json_path = update_leaderboard(args.out, args.leaderboards)
        print(f"leaderboard updated: {csv_path} {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
