"""`make setup` installs the CPU build of the pinned torch, as the README says, and asks PyTorch's CPU index once
before relying on it: a machine that cannot reach it installs without it, at once, and is told so.

The Makefile runs for real with a stand-in for Python that records the pip commands it is given and runs the
index probe (`scripts/index_answers.py`) with this interpreter, against indexes served on localhost.
"""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PIN = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _setup(tmp_path: Path, *variables: str) -> tuple[list[str], str]:
    """Runs ``make setup`` with the stand-in Python; returns the commands it was given and the output."""
    log = tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1" = scripts/index_answers.py ]; then echo "probe $2" >> {log}; '
                      f'exec {sys.executable} "$@"; fi\necho "$*" >> {log}\n')
    python.chmod(0o755)
    done = subprocess.run(["make", "--no-print-directory", "setup", f"PYTHON={python}", *variables], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines(), done.stdout + done.stderr


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server name)
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()

    def log_message(self, *args):  # no request lines on stderr
        pass


@pytest.fixture
def index_url():
    """An index on localhost that answers for torch."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    server.shutdown()


def test_setup_installs_the_pinned_torch_from_an_index_that_answers_first(tmp_path, index_url):
    calls, output = _setup(tmp_path, f"TORCH_INDEX={index_url}")
    assert calls == [f"probe {index_url}/torch/", f"-m pip install {PIN} --extra-index-url {index_url}",
                     "-m pip install -e .[dev]",  # finds torch installed: no CUDA build pulled in
                     "-m pip install --no-deps -r requirements-nodeps.txt"]
    assert "did not answer" not in output


def test_the_default_index_is_pytorchs_cpu_index_as_the_readme_says():
    recipe = subprocess.run(["make", "--no-print-directory", "-n", "setup", "PYTHON=python"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert f"index='{CPU_INDEX}'" in recipe and f"python -m pip install '{PIN}'" in recipe
    assert f"pip install {PIN} --extra-index-url {CPU_INDEX}" in (ROOT / "README.md").read_text()


def test_an_index_that_refuses_connections_is_left_out_at_once_with_one_line_saying_what_that_means(tmp_path):
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/whl/cpu"
    calls, output = _setup(tmp_path, f"TORCH_INDEX={url}")
    assert calls[1] == f"-m pip install {PIN}" and len(calls) == 4
    (line,) = [line for line in output.splitlines() if "did not answer" in line]
    assert line.startswith(f"make setup: {url} did not answer (") and "Connection refused" in line
    assert "PyPI's CUDA build" in line and "TORCH_INDEX=" in line


def test_an_index_that_never_answers_is_given_up_after_one_timeout(tmp_path):
    with socket.socket() as silent:  # connections are accepted (the backlog) and never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu"
        calls, output = _setup(tmp_path, f"TORCH_INDEX={url}", "TORCH_INDEX_TIMEOUT=1")
    # the probe gave up after its timeout, where pip would have waited 5 times its own for each package
    assert calls[1] == f"-m pip install {PIN}" and "did not answer (timed out)" in output


def test_an_empty_torch_index_leaves_the_choice_to_pip_without_asking_any_index(tmp_path):
    calls, output = _setup(tmp_path, "TORCH_INDEX=")
    assert calls[0] == f"-m pip install {PIN}" and not [c for c in calls if c.startswith("probe")]
    assert "did not answer" not in output
