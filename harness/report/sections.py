"""Report sections built from one analysis each, in one shape both renderers lay out the same way.

A :class:`Section` is a title and a list of blocks: paragraphs and bullet lists of plain text, tables and figures.
The builders (:mod:`harness.report.verdict`, :mod:`harness.report.overoptimisation`,
:mod:`harness.report.mechanism`) read a run's results and return a section, or None when the run has nothing for
it; ``markdown.py`` and the HTML template render any section, so a new analysis adds a builder (listed in
:func:`harness.report.build_sections`), not layout code.

Strings from the run (method and set names) appear in table cells and bullet items, which the renderers escape
as plain text like every other run string (Markdown: markup characters escaped; HTML: autoescaped).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text (no markup)."""

    text: str
    kind: str = field(default="paragraph", init=False)


@dataclass(frozen=True)
class Bullets:
    """A list of plain-text items (no markup)."""

    items: tuple[str, ...]
    kind: str = field(default="bullets", init=False)


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells; the first column names a method or a curve and is shown as code."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class Figure:
    """A PNG under the run dir (``path`` relative to it), with its title."""

    title: str
    path: str
    kind: str = field(default="figure", init=False)


@dataclass(frozen=True)
class Section:
    """One titled part of the report."""

    title: str
    blocks: tuple[Paragraph | Bullets | Table | Figure, ...]


def plus_minus(value: float | None, error: float | None, digits: int = 3) -> str:
    """``value ± error`` in ``digits`` decimals, ``error`` a 95% half-width (:data:`harness.stats.INTERVAL_CONVENTION`);
    "–" for a missing value, the value alone without an error."""
    if value is None or value != value:  # None or NaN
        return "–"
    if error is None or error != error:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {error:.{digits}f}"
