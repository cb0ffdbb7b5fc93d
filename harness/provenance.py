"""Where a run's numbers came from: config, seeds, code version, package versions, hardware, stage times.

Reports and stored leaderboards carry this so a number can be traced and reproduced. It deliberately never reads
environment variables, and config values that are secrets are redacted (:func:`redact`), so nothing written here
can leak an API key.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

# Distributions whose versions decide the numbers (PyPI names).
PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "lm-eval", "alpaca-eval")

# Config keys whose value is a secret, matched whole (case and "-"/"_" ignored). Whole names, not parts of names:
# a part such as "token" would hide ordinary fields (max_new_tokens) and still miss a key under another name,
# which the value shapes below catch.
SECRET_KEYS = frozenset({
    "api_key", "apikey", "openai_api_key", "anthropic_api_key", "access_key", "secret_key", "aws_secret_access_key",
    "token", "access_token", "auth_token", "hf_token", "hub_token", "bearer_token", "secret", "client_secret",
    "password", "passwd", "credentials", "private_key",
})
# Values shaped like a credential, whatever their key: API keys of the usual providers, bearer tokens, and a
# user:password@ in a URL.
SECRET_VALUES = re.compile(
    r"sk-[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic (sk-ant-...)
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|[Bb]earer\s+[A-Za-z0-9._~+/-]{16,}"
    r"|://[^/\s:@]+:[^/\s@]+@"
)
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
    """``config`` with every secret replaced by ``<redacted>``: the value of a key named in :data:`SECRET_KEYS`,
    and any string shaped like a credential (:data:`SECRET_VALUES`) under any key."""
    if isinstance(config, dict):
        return {key: REDACTED if is_secret_key(key) else redact(value) for key, value in config.items()}
    if isinstance(config, list):
        return [redact(item) for item in config]
    if isinstance(config, str) and SECRET_VALUES.search(config):
        return REDACTED
    return config


def is_secret_key(key: object) -> bool:
    """True if ``key`` names a secret (``OPENAI_API_KEY``, ``hf-token``, ...), not merely contains such a word."""
    return str(key).lower().replace("-", "_") in SECRET_KEYS


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
