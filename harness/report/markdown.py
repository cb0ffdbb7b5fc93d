"""The report as Markdown (GitHub-flavoured), safe to render whatever the models wrote.

Nothing from a run is ever written as Markdown source: model outputs, instructions, references and the config go
into fenced code blocks whose fence is longer than any backtick run inside, and names and paths (the base model's
name in its sentence too) into code spans on one line (with ``|`` escaped inside tables). Renderers show both
literally, so an output holding ``<script>``, a Markdown link or a line starting with ``#`` stays text.
Control characters (ESC, NUL, ...) are shown as symbols everywhere (:func:`harness.report.content.visible`), so
``cat report.md`` runs no terminal escape sequence.
"""

from __future__ import annotations

import re

from harness.report.content import HEADLINE_NOTES, STAGES_NOTE, ReportData, base_model_sentence, visible
from harness.report.sections import Section

APPENDIX = "report-appendix.md"  # sample outputs and provenance, beside report.md


def longest_backtick_run(text: str) -> int:
    """Length of the longest run of consecutive backticks in ``text`` (0 if none)."""
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def fenced(text: str, info: str = "text") -> str:
    """``text`` as a fenced code block that nothing inside it can close.

    CommonMark closes a fence only with a run of backticks at least as long as the opening one, so a fence one
    longer than the longest run in ``text`` (and at least three) is unbreakable.
    """
    text = visible(text)
    fence = "`" * max(3, longest_backtick_run(text) + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def code_span(text: str, in_table: bool = False) -> str:
    """``text`` as an inline code span on one line.

    The delimiter is one backtick longer than any run inside; a space pads text that starts or ends with a
    backtick (CommonMark strips one such space). Inside a GFM table a ``|`` would end the cell even within a code
    span, so it is escaped there (GFM removes that backslash).
    """
    text = " ".join(visible(text).splitlines())
    if in_table:
        text = text.replace("|", "\\|")
    ticks = "`" * (longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GFM table; cells must already be safe Markdown (code spans or text this module produced)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: ReportData) -> str:
    """The report as Markdown, the answer first; figures are linked by their path relative to the run dir. Sample
    outputs and provenance are in :func:`render_appendix`'s file, linked at the end."""
    parts = [
        f"# Run report: preset {code_span(data.preset)}",
        f"Methods: {', '.join(code_span(m) for m in data.methods)}. Seeds: {data.seeds}. "
        f"Judge: {code_span(data.judge)}."
        + (f" Wall time: {data.wall_s:.0f} s." if data.wall_s is not None else "")
        + (f"\n\n{base_model_sentence(data.base_model, code_span)}" if data.base_model else ""),
        *(_section(section) for section in data.lead[:1]),
        "## Results",
        _headline(data),
        *(_section(section) for section in data.lead[1:]),
        "## Beside the paper's numbers",
        _paper(data),
    ]
    if data.plots:
        parts.append("## Figures")
        parts += [f"### {title}\n\n![{title}]({path})" for title, path in data.plots.items()]
    parts += [_section(section) for section in data.sections]
    if data.diagnostics:
        parts += ["## Method diagnostics", "Scalar diagnostics each method reports, mean over seeds.",
                  table(["method", "diagnostic", "mean"],
                        [[code_span(m, True), code_span(k, True), v] for m, k, v in data.diagnostics])]
    parts += ["## Sample outputs and provenance",
              f"In [{APPENDIX}]({APPENDIX}): the same instructions answered by every method with the judge's "
              "verdicts, package versions, the resolved config and every stage the run used."]
    return "\n\n".join(parts) + "\n"


def render_appendix(data: ReportData) -> str:
    """Sample outputs and provenance, the long parts of the report, as their own Markdown file."""
    parts = [f"# Run report appendix: preset {code_span(data.preset)}",
             "Sample outputs and provenance of the run; the results are in [report.md](report.md).",
             "## Sample outputs", _samples(data), "## Provenance", _provenance(data)]
    return "\n\n".join(parts) + "\n"


def _section(section: Section) -> str:
    """An analysis section: every string escaped as plain text, the first column of a table (a name) as code."""
    parts = [f"## {section.title}"]
    for block in section.blocks:
        if block.kind == "paragraph":
            parts.append(_plain(block.text))
        elif block.kind == "bullets":
            parts.append("\n".join(f"- {_plain(item)}" for item in block.items))
        elif block.kind == "figure":
            parts.append(f"### {block.title}\n\n![{block.title}]({block.path})")
        else:
            rows = [[code_span(row[0], True), *(_plain(c) for c in row[1:])] for row in block.rows]
            parts.append(table([_plain(h) for h in block.header], rows)
                         + "".join(f"\n\n- {_plain(note)}" for note in block.notes))
    return "\n\n".join(parts)


def _plain(text: str) -> str:
    """Plain text as Markdown: markup characters escaped, ``|`` (which would end a table cell) too, and control
    characters shown."""
    return re.sub(r"([\\`*_{}\[\]<>|#])", r"\\\1", visible(text))


def _headline(data: ReportData) -> str:
    rows = []
    for method, cells in data.headline.items():
        rows.append([code_span(method, True)] + [
            c.text + (" †" if c.standard_error else "") + (" ‡" if c.below_chance else "") for c in cells])
    notes = [*HEADLINE_NOTES, f"knowledge_acc is measured on the knowledge task {code_span(data.knowledge_task)}."]
    header = ["method"] + [code_span(m, True) + (f" ({u})" if u else "") for m, u in zip(data.metrics, data.units)]
    return table(header, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def _paper(data: ReportData) -> str:
    paper = data.paper
    rows = [[code_span(m, True), *cells] for m, cells in paper["rows"].items()]
    return table(["method", *paper["columns"]], rows) + "\n\n" + "\n".join(f"- {n}" for n in paper["notes"])


def _samples(data: ReportData) -> str:
    if not data.samples:
        return "No sample outputs: the run's win-rate stage dirs were not found."
    parts = ["The same instructions for every method (seed 0), with the judge's verdict against the reference."]
    for sample in data.samples:
        parts += [f"### {code_span(sample.eval_set)} sample {sample.number}",
                  "Instruction:", fenced(sample.instruction), "Reference:", fenced(sample.reference)]
        for out in sample.outputs:
            parts += [f"{code_span(out.method)} ({out.verdict}):", fenced(out.output)]
    return "\n\n".join(parts)


def _provenance(data: ReportData) -> str:
    prov = data.provenance
    hardware = prov.get("hardware", {})
    facts = [
        f"- git commit: {code_span(str(prov.get('git_commit', 'unknown')))}",
        f"- seeds: {data.seeds}",
        f"- python: {code_span(str(prov.get('python', 'unknown')))}",
        f"- hardware: {hardware.get('cpu_count')} CPUs ({code_span(str(hardware.get('machine')))}), "
        f"GPU: {code_span(str(hardware.get('gpu') or 'none'))}",
    ]
    packages = table(["package", "version"], [[code_span(k, True), code_span(str(v), True)]
                                              for k, v in prov.get("packages", {}).items()])
    stages = table(["seed", "stage", "dir", "this run", "build s", "uses"], [
        [code_span(str(s.seed), True), code_span(s.stage, True), code_span(s.path, True),
         "built" if s.built else "reused", "–" if s.build_wall_s is None else f"{s.build_wall_s:.1f}", str(s.uses)]
        for s in data.stages])
    return "\n\n".join(["\n".join(facts), packages, "Resolved config:", fenced(data.config_yaml, "yaml"),
                        STAGES_NOTE, stages])
