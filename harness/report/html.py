"""The report as one self-contained HTML file.

Rendered by jinja2 with autoescaping on, so every string from the run (model outputs, instructions, references,
config values, names) is HTML-escaped wherever the template puts it, and its control characters (ESC, NUL, ...)
are shown as symbols (:func:`harness.report.content.visible`). Figures are embedded as base64 ``data:`` URIs
and the style sheet is inline: the file opens offline, fetches nothing, and runs no script. A Content-Security-
Policy meta tag (no scripts, images only from ``data:``) backs this up should an escaping bug ever slip through.
"""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness.report.content import HEADLINE_NOTES, STAGES_NOTE, ReportData, base_model_sentence, visible

TEMPLATES = Path(__file__).with_name("templates")


def data_uri(png: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=_shown)
    images = {title: data_uri(data.run_dir / path) for title, path in data.plots.items()}
    section_images = {block.path: data_uri(data.run_dir / block.path) for section in data.sections
                      for block in section.blocks if block.kind == "figure"}
    return env.get_template("report.html.j2").render(data=data, images=images, section_images=section_images,
                                                     notes=HEADLINE_NOTES, stages_note=STAGES_NOTE,
                                                     base_model=base_model_sentence(data.base_model))


def _shown(value: object) -> object:
    """Every ``{{ value }}`` passes here before it is escaped: control characters become visible symbols. A
    macro's output (``Markup``, already escaped value by value inside the macro) passes unchanged."""
    return visible(value) if isinstance(value, str) and not isinstance(value, Markup) else value
