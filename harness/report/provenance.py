"""Where a run's numbers came from: config, seeds, code version, package versions, hardware, stage times.

Reports and stored leaderboards carry this so a number can be traced and reproduced. It deliberately never reads
environment variables, and config values under secret-looking keys are redacted, so nothing written here can leak
an API key.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

# Distributions whose versions decide the numbers (PyPI names).
PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "lm-eval", "alpaca-eval")

# A config key containing one of these is never written out, whatever its value.
SECRET_MARKERS = ("key", "token", "secret", "password", "credential")
REDACTED = "<redacted>"


def collect_provenance(run_dir: Path, results: dict) -> dict:
    """Provenance of the run in ``run_dir``.

    Args:
        run_dir: the run dir; its ``config.yaml`` is read if present.
        results: the run's parsed ``results.json`` (seeds, judge, wall time, stage times).

    Returns:
        A JSON-serialisable dict: config, seeds, judge, wall_s, git_commit, python, packages, hardware, stages.
    """
    config_path = Path(run_dir) / "config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
    return {
        "config": redact(config),
        "seeds": results.get("seeds"),
        "judge": results.get("judge"),
        "wall_s": results.get("wall_s"),
        "git_commit": git_commit(Path(__file__).parent),
        "python": platform.python_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "stages": [
            {key: stage.get(key) for key in ("seed", "stage", "path", "reused", "build_wall_s")}
            for stage in results.get("stages", [])
        ],
    }


def redact(config: object) -> object:
    """``config`` with the value of every key that looks like a secret replaced by ``<redacted>``."""
    if isinstance(config, dict):
        return {key: REDACTED if any(m in str(key).lower() for m in SECRET_MARKERS) else redact(value)
                for key, value in config.items()}
    if isinstance(config, list):
        return [redact(item) for item in config]
    return config


def git_commit(path: Path) -> str:
    """The commit checked out at ``path`` (``-dirty`` if tracked files changed), or ``unknown`` outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):  # no git, not a checkout, or no commit yet
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    """Installed version of each of :data:`PACKAGES` (``not installed`` if absent)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware() -> dict:
    """CPU count, machine type, and the name of the first GPU torch sees (None without one)."""
    import torch  # deferred: slow to import, and only this function needs it

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "system": platform.system(), "gpu": gpu}
