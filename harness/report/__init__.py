"""Reports of a run: ``report.md`` (with ``report-appendix.md``) and a self-contained ``report.html``, figures
under ``plots/``.

    from harness.report import write_reports
    markdown_path, html_path = write_reports(Path("runs/tiny"))

Both show the same content (:mod:`harness.report.content`), the answer first: the verdict and its flags, the
results table ranked by the headline win rate, every paired comparison (:mod:`harness.report.verdict`), the
paper's numbers beside the run's, figures, analysis sections (:mod:`harness.report.sections`: over-optimisation,
RLP's mechanism, the refinement of the reward model) and method diagnostics. Sample outputs and provenance
(packages, config, every stage) follow in ``report-appendix.md``, and in collapsed ``<details>`` in the HTML.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.publish import write_atomic
from harness.evals.paired import run_comparisons
from harness.leaderboard import load_results
from harness.provenance import collect_provenance
from harness.report.content import build_report_data
from harness.report.drift import drift_kind_section
from harness.report.html import render_html
from harness.report.labels import relabelled
from harness.report.markdown import APPENDIX, render_appendix, render_markdown
from harness.report.mechanism import mechanism_section
from harness.report.refinement import refinement_section
from harness.report.overoptimisation import overoptimisation_section
from harness.report.plots import make_plots
from harness.report.sections import Section
from harness.report.verdict import comparisons_section, verdict_section

__all__ = ["write_reports"]


def build_sections(run_dir: Path, results: dict) -> tuple[list[Section], list[Section]]:
    """The sections before the results table (verdict, paired comparisons) and the analyses after the figures,
    each only where the run has data for it; figures go to ``run_dir/plots``."""
    lead = [verdict_section(results), comparisons_section(results)]
    analyses = [overoptimisation_section(run_dir, results), drift_kind_section(results),
                mechanism_section(results), refinement_section(run_dir, results)]
    return ([section for section in lead if section is not None],
            [section for section in analyses if section is not None])


def write_reports(run_dir: Path, samples_per_set: int = 3) -> tuple[Path, Path]:
    """Writes ``report.md``, ``report-appendix.md``, ``report.html`` and ``plots/*.png`` into a finished run dir.

    A ``results.json`` without stored comparisons (written before the harness stored them) gets them computed here
    from the run's win-rate stages, by the same function the pipeline uses.

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
    results["comparisons"] = run_comparisons(run_dir, results)
    results = relabelled(results)
    plots = make_plots(results, run_dir / "plots")
    lead, analyses = build_sections(run_dir, results)
    data = build_report_data(run_dir, results, plots, collect_provenance(run_dir, results), samples_per_set,
                             analyses, lead)
    markdown_path, html_path = run_dir / "report.md", run_dir / "report.html"
    write_atomic(markdown_path, render_markdown(data))
    write_atomic(run_dir / APPENDIX, render_appendix(data))
    write_atomic(html_path, render_html(data))
    return markdown_path, html_path
