"""Reports of a run: ``report.md`` and a self-contained ``report.html`` with figures under ``plots/``.

    from harness.report import write_reports
    markdown_path, html_path = write_reports(Path("runs/tiny"))

Both files show the same content (:mod:`harness.report.content`): the headline table with intervals and the best
value per column marked, the paper's numbers beside it, figures, method diagnostics, sample outputs with the
judge's verdicts, and provenance; analysis sections (:mod:`harness.report.sections`: over-optimisation, RLP - PPO,
the refinement and its mechanism) follow the figures when the run has data for them.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.publish import write_atomic
from harness.leaderboard import load_results
from harness.provenance import collect_provenance
from harness.report.content import build_report_data
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.mechanism import mechanism_section
from harness.report.plots import make_plots
from harness.report.overoptimisation import overoptimisation_section
from harness.report.rlp_vs_ppo import rlp_vs_ppo_section
from harness.report.sections import Section

__all__ = ["write_reports"]


def build_sections(run_dir: Path, results: dict) -> list[Section]:
    """Every analysis section the run has data for, in report order; figures go to ``run_dir/plots``."""
    sections = [overoptimisation_section(run_dir, results), rlp_vs_ppo_section(run_dir, results),
                mechanism_section(run_dir, results)]
    return [section for section in sections if section is not None]


def write_reports(run_dir: Path, samples_per_set: int = 3) -> tuple[Path, Path]:
    """Writes ``report.md``, ``report.html`` and ``plots/*.png`` into a finished run dir.

    Args:
        run_dir: the run dir (``results.json``; ``config.yaml`` and the win-rate stage dirs when present).
        samples_per_set: instructions per evaluation set shown with every method's output.

    Returns:
        The paths of the Markdown and the HTML report.

    Raises:
        ValueError: ``results.json`` is missing or malformed (one line naming the file).
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    plots = make_plots(results, run_dir / "plots")
    data = build_report_data(run_dir, results, plots, collect_provenance(run_dir, results), samples_per_set,
                             build_sections(run_dir, results))
    markdown_path, html_path = run_dir / "report.md", run_dir / "report.html"
    write_atomic(markdown_path, render_markdown(data))
    write_atomic(html_path, render_html(data))
    return markdown_path, html_path
