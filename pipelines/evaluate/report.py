"""A small self-contained HTML report of an evaluation (the evaluate stage's report, docs/paper-notes.md §9.6): titled
sections of text, tables of metrics, figures and demo videos, written with the standard library alone.

Cells follow one convention throughout: floats show 4 significant digits, a (mean, ci) pair shows "mean ± ci"
(``metrics.sets.mean_ci``), a string starting with "unavailable" (``metrics.face_measure.gate``) is shown greyed
with its reason in full, and None shows "—". Every piece of text is HTML-escaped; media paths must be relative
to the report, so the report and its folder can be moved or served as they are.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from thpad.storage.files import atomic_write_bytes

MISSING = "—"
CSS = """
body { font-family: system-ui, sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f2f2f2; }
td.text { text-align: left; }
td.unavailable { color: #999; font-style: italic; text-align: left; }
td.missing { color: #999; text-align: center; }
p.note { color: #555; font-size: .9em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; font-family: monospace; }
figure { margin: 1em 0; }
img, video { max-width: 100%; }
"""


@dataclass(frozen=True)
class Table:
    """A captioned table: a header row and rows of cells (any values, formatted by ``format_cell``)."""

    caption: str
    header: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass(frozen=True)
class Section:
    """A titled part of the report: text (paragraphs split at blank lines), then tables, images and videos, the
    media given as paths relative to the report."""

    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)


def format_number(x: numbers.Real) -> str:
    """An integer in full, any other real to 4 significant digits ("nan" and "inf" as Python writes them)."""
    if isinstance(x, numbers.Integral):
        return str(int(x))
    return f"{float(x):.4g}"


def format_cell(value: Any) -> tuple[str, str]:
    """The text of one cell and its CSS class ("num", "text", "unavailable" or "missing"), not yet escaped.

    Args:
        value: None, a bool, a real, a (mean, ci) pair of reals, a string, or anything ``str`` can write.
    Returns:
        (text, css_class).
    """
    if value is None:
        return MISSING, "missing"
    if isinstance(value, bool):
        return str(value), "text"
    if isinstance(value, numbers.Real):
        return format_number(value), "num"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, numbers.Real) for v in value):
        return f"{format_number(value[0])} ± {format_number(value[1])}", "num"
    if isinstance(value, str) and value.startswith("unavailable"):
        return value, "unavailable"
    return str(value), "text"


def media_src(path: str) -> str:
    """A relative media path as an escaped, percent-encoded ``src`` attribute value.

    Raises:
        ValueError: the path is absolute or carries a URL scheme (the report must stay self-contained and could
            otherwise be made to run ``javascript:`` links).
    """
    posix = PurePosixPath(path.replace("\\", "/"))
    if not posix.parts or posix.is_absolute() or ":" in posix.parts[0]:
        raise ValueError(f"media path {path!r} must be relative to the report")
    return html.escape(quote(str(posix)), quote=True)


def render_table(table: Table) -> list[str]:
    """The HTML lines of one table; every row must have as many cells as the header."""
    lines = ["<table>", f"<caption>{html.escape(table.caption)}</caption>",
             "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr>"]
    for row in table.rows:
        if len(row) != len(table.header):
            raise ValueError(f"table {table.caption!r}: row of {len(row)} cells under {len(table.header)} headers")
        cells = (format_cell(v) for v in row)
        lines.append("<tr>" + "".join(f'<td class="{cls}">{html.escape(text)}</td>' for text, cls in cells) + "</tr>")
    lines.append("</table>")
    if table.note:
        lines.append(f'<p class="note">{html.escape(table.note)}</p>')
    return lines


def render_section(section: Section, index: int) -> list[str]:
    """The HTML lines of one section, anchored as ``s<index>`` for the table of contents."""
    lines = [f'<section id="s{index}">', f"<h2>{html.escape(section.title)}</h2>"]
    paragraphs = [p.strip() for p in section.text.split("\n\n") if p.strip()]
    lines += [f"<p>{html.escape(p)}</p>" for p in paragraphs]
    for table in section.tables:
        lines += render_table(table)
    for image in section.images:
        src = media_src(image)
        lines.append(f'<figure><img src="{src}" alt="{html.escape(image, quote=True)}">'
                     f"<figcaption>{html.escape(image)}</figcaption></figure>")
    for video in section.videos:
        lines.append(f'<figure><video controls preload="metadata" src="{media_src(video)}"></video>'
                     f"<figcaption>{html.escape(video)}</figcaption></figure>")
    lines.append("</section>")
    return lines


def render_report(title: str, sections: Sequence[Section], meta: Mapping[str, str]) -> str:
    """The whole HTML document: title, the meta block (e.g. run id, commit, params), a table of contents and
    the sections."""
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>"]
    if meta:
        lines.append('<dl class="meta">')
        lines += [f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in meta.items()]
        lines.append("</dl>")
    if sections:
        lines.append("<nav><ol>")
        lines += [f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections)]
        lines.append("</ol></nav>")
    for i, section in enumerate(sections):
        lines += render_section(section, i)
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)


def write_report(path: str | Path, title: str, sections: Sequence[Section], meta: Mapping[str, str]) -> Path:
    """Write the report atomically (``storage.files.atomic_write_bytes``: a temporary sibling, then
    ``os.replace``), so a reader never sees half a report.

    Args:
        path: the .html file to write (its folder is created); media paths in the sections are relative to it.
        title: the page's title and heading.
        sections: the report's sections, in order.
        meta: name -> value lines shown under the title (run id, commit, device ...).
    Returns:
        the written path.
    """
    text = render_report(title, sections, meta)  # rendered first: a bad table or path leaves no file behind
    return atomic_write_bytes(path, text.encode("utf-8"))
