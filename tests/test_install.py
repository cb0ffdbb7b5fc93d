"""`make setup` installs the CPU build of the pinned torch, as the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_setup_installs_the_pinned_torch_from_the_cpu_index_first():
    pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    commands = subprocess.run(["make", "--no-print-directory", "-n", "setup", "PYTHON=python"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.splitlines()
    assert commands[0] == f"python -m pip install '{pin}' --extra-index-url {CPU_INDEX}"
    assert commands[1] == "python -m pip install -e '.[dev]'"  # finds torch installed: no CUDA build pulled in
    readme = (ROOT / "README.md").read_text()
    assert f"pip install {pin} --extra-index-url {CPU_INDEX}" in readme
    opt_out = subprocess.run(["make", "--no-print-directory", "-n", "setup", "PYTHON=python", "TORCH_INDEX="], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert opt_out[0].strip() == f"python -m pip install '{pin}'"
