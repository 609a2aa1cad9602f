"""The HTML report writer (pipelines/evaluate/report.py): cell formatting, escaping of hostile text, and a written
report that parses and holds every caption, cell, image and video."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from thpad.pipelines.evaluate.report import Section, Table, format_cell, media_src, render_report, write_report

HOSTILE = "<script>alert('x')</script>"


class Collector(HTMLParser):
    """Every start tag with its attributes, the text of each tag kind, and whether the tags nest properly."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)

    def handle_data(self, data: str) -> None:
        if self.stack and data.strip():
            self.text.setdefault(self.stack[-1], []).append(data)

    def cells(self) -> list[tuple[str, str | None]]:
        """(text, class) of every <td>, in order (requires one text run per cell)."""
        classes = [attrs.get("class") for tag, attrs in self.tags if tag == "td"]
        return list(zip(self.text.get("td", []), classes, strict=True))


def parse(text: str) -> Collector:
    parser = Collector()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    return parser


def sample_sections() -> list[Section]:
    metrics = Table(
        caption="Table I: motion metrics",
        header=["method", "Var", "FID_fm", "SND", "blink r"],
        rows=[["real", 1.234567, 0.0, None, 0.91],
              ["diffusion", (2.345678, 0.0123456), 12345678.9, 3, "unavailable: measurer r 0.21 < 0.5 on real frames"],
              [HOSTILE, np.float32(0.5), float("nan"), True, "plain"]],
        note="mean ± 95% CI over 5 seeds",
    )
    return [
        Section(title="Motion", text="First paragraph.\n\nSecond paragraph.", tables=[metrics],
                images=["figures/tsne pose.png"], videos=["videos/clip_0.mp4"]),
        Section(title=HOSTILE, text=HOSTILE),
    ]


# --- cells ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text", "cls"), [
    (1.234567, "1.235", "num"),
    (12345678.9, "1.235e+07", "num"),
    (0.000123456, "0.0001235", "num"),
    (np.float32(0.5), "0.5", "num"),
    (7, "7", "num"),
    (np.int64(12), "12", "num"),
    (float("nan"), "nan", "num"),
    ((2.345678, 0.0123456), "2.346 ± 0.01235", "num"),
    (None, "—", "missing"),
    (True, "True", "text"),
    ("unavailable: no weights configured", "unavailable: no weights configured", "unavailable"),
    ("plain", "plain", "text"),
])
def test_format_cell(value: object, text: str, cls: str) -> None:
    assert format_cell(value) == (text, cls)


@pytest.mark.parametrize("path", ["/abs/clip.mp4", "javascript:alert(1)", "https://example.com/a.png", ""])
def test_media_paths_must_be_relative(path: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        media_src(path)


def test_media_path_is_encoded() -> None:
    assert media_src("figures/a b.png") == "figures/a%20b.png"
    assert media_src('x/"q".png') == "x/%22q%22.png"


def test_ragged_row_is_an_error() -> None:
    bad = Section(title="t", tables=[Table(caption="c", header=["a", "b"], rows=[[1]])])
    with pytest.raises(ValueError, match="1 cells under 2 headers"):
        render_report("r", [bad], {})


# --- the written report ---------------------------------------------------------------------------------------


@pytest.fixture()
def written(tmp_path: Path) -> tuple[Path, Collector]:
    path = write_report(tmp_path / "out" / "report.html", f"Evaluation {HOSTILE}", sample_sections(),
                        {"run": "abc123", "params": "s=2.0 <b>"})
    return path, parse(path.read_text(encoding="utf-8"))


def test_report_is_written_atomically(written: tuple[Path, Collector]) -> None:
    path, _ = written
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left


def test_report_holds_every_caption_and_cell(written: tuple[Path, Collector]) -> None:
    _, doc = written
    assert doc.text["caption"] == ["Table I: motion metrics"]
    assert doc.text["th"] == ["method", "Var", "FID_fm", "SND", "blink r"]
    texts = [t for t, _ in doc.cells()]
    assert texts == ["real", "1.235", "0", "—", "0.91",
                     "diffusion", "2.346 ± 0.01235", "1.235e+07", "3",
                     "unavailable: measurer r 0.21 < 0.5 on real frames",
                     HOSTILE, "0.5", "nan", "True", "plain"]
    assert "mean ± 95% CI over 5 seeds" in doc.text["p"]
    assert doc.text["p"][:2] == ["First paragraph.", "Second paragraph."]


def test_unavailable_cells_keep_their_reason_greyed(written: tuple[Path, Collector]) -> None:
    _, doc = written
    (cell,) = [(t, c) for t, c in doc.cells() if t.startswith("unavailable")]
    assert cell == ("unavailable: measurer r 0.21 < 0.5 on real frames", "unavailable")


def test_report_holds_images_and_videos(written: tuple[Path, Collector]) -> None:
    _, doc = written
    images = [a["src"] for t, a in doc.tags if t == "img"]
    videos = [a for t, a in doc.tags if t == "video"]
    assert images == ["figures/tsne%20pose.png"]
    assert len(videos) == 1 and videos[0]["src"] == "videos/clip_0.mp4" and "controls" in videos[0]


def test_hostile_text_is_escaped(written: tuple[Path, Collector]) -> None:
    path, doc = written
    raw = path.read_text(encoding="utf-8")
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    assert not [t for t, _ in doc.tags if t in ("script", "b")]
    assert doc.text["h1"] == [f"Evaluation {HOSTILE}"] and HOSTILE in doc.text["h2"]
    assert doc.text["dd"] == ["abc123", "s=2.0 <b>"]


def test_report_without_sections_or_meta(tmp_path: Path) -> None:
    doc = parse(write_report(tmp_path / "empty.html", "Empty", [], {}).read_text(encoding="utf-8"))
    tags = {t for t, _ in doc.tags}
    assert doc.text["title"] == ["Empty"] and not tags & {"table", "nav", "section", "dl"}
