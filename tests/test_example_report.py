"""The committed example report (reports/tiny/, ``make example-report``) is the stored leaderboard's run: the same
commit and the same resolved config as ``leaderboards/tiny.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "tiny"


def report_provenance(report_dir: Path) -> tuple[str, dict]:
    """The git commit and resolved config a report shows: in its appendix, or in report.md for reports written
    before the appendix existed."""
    appendix = report_dir / "report-appendix.md"
    text = (appendix if appendix.is_file() else report_dir / "report.md").read_text()
    commit = re.search(r"^- git commit: `([^`]+)`", text, re.M).group(1)
    config = re.search(r"Resolved config:\n\n(`{3,})yaml\n(.*?)\n\1", text, re.S).group(2)
    return commit, yaml.safe_load(config)


def test_the_example_report_is_the_stored_leaderboard_s_run():
    stored = json.loads((ROOT / "leaderboards" / "tiny.json").read_text())["provenance"]
    commit, config = report_provenance(REPORT)
    assert commit == stored["git_commit"]
    assert config == stored["config"]


def test_the_example_report_s_provenance_can_be_read():
    commit, config = report_provenance(REPORT)
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and config["preset"] == "tiny"
