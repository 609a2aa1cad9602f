"""What the evaluate stage writes (docs/metrics.md): the metrics JSON (DVC ``metrics:``), the CSVs DVC draws
(``plots:``), and the report folder: PNG figures, side-by-side videos, the per-clip table and ``report.html``.

Every file is written under a temporary name and renamed, so a killed run never leaves half a file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thpad.pipelines.evaluate.figures import guidance_figure, save_png, timeline_figure, tsne_figure
from thpad.pipelines.evaluate.report import Section, write_report
from thpad.pipelines.evaluate.sections import report_sections
from thpad.pipelines.evaluate.suite import SuiteResult
from thpad.pipelines.generate.writer import StreamingVideoWriter, grid, resize_frames
from thpad.storage.files import atomic_write_bytes, atomic_write_json

VIDEO_SIZE = 128  # each tile of the report's videos is at least this many pixels wide
SAMPLER_COLUMNS = ("sampler", "fid_fm", "seconds_per_video_second")
TIMELINE_NAMES = ["yaw (deg)", "pitch (deg)", "roll (deg)", "eye closure (-EAR)"]


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> Path:
    """Rows of dicts as CSV (``columns`` first, then any others in first-seen order; floats at full precision, None
    empty), atomically. With no rows the file holds the header alone."""
    columns = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: ("" if v is None else v) for k, v in row.items()} for row in rows])
    return atomic_write_bytes(path, text.getvalue().encode())


def table1_wide(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Table I rows (s, metric, mean, ci, space) -> one row per s with a column per space and metric, the shape
    ``dvc plots show`` draws as lines over s."""
    by_s: dict[float, dict[str, Any]] = {}
    for r in rows:
        column = f"{r['space']} {r['metric']}".replace(",", "").replace(" ", "_").replace("=", "")
        by_s.setdefault(r["s"], {"s": r["s"]})[column] = r["mean"]
    return [by_s[s] for s in sorted(by_s)]


def timeline_rows(timeline: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per-frame yaw, pitch, roll and eye closure of the first clip, one column per set and factor."""
    length = min(len(v) for v in timeline.values())
    names = ("yaw", "pitch", "roll", "eye_closure")
    return [{"frame": t, **{f"{set_}_{n}": (None if not np.isfinite(v[t, j]) else float(v[t, j]))
                             for set_, v in timeline.items() for j, n in enumerate(names)}} for t in range(length)]


def write_plots(result: SuiteResult, plots: Path) -> list[Path]:
    """The DVC plots CSVs: ``table1.csv``, ``samplers.csv`` (the header alone when ``ddpm_clips`` is 0: DVC wants
    every declared plot file), ``timeline.csv``."""
    samplers = [{k: r[k] for k in SAMPLER_COLUMNS} for r in result.sampler_rows]
    return [write_csv(plots / "table1.csv", table1_wide(result.table1_rows)),
            write_csv(plots / "samplers.csv", samplers, SAMPLER_COLUMNS),
            write_csv(plots / "timeline.csv", timeline_rows(result.timeline))]


def write_videos(result: SuiteResult, folder: Path, fps: int, sample_rate: int) -> list[str]:
    """One mp4 per shown clip: its sets side by side (``result.videos`` order) with the clip's speech."""
    names = []
    for i, audio in enumerate(result.audio):
        tiles = [frames[i] for frames in result.videos.values() if i < len(frames)]
        size = max(VIDEO_SIZE, tiles[0].shape[1])
        length = min(len(t) for t in tiles)
        frames = grid([resize_frames(t[:length], size) for t in tiles])  # (T, size, K size, 3)
        name = f"clip{i}.mp4"
        with StreamingVideoWriter(folder / name, fps, audio, sample_rate) as writer:
            writer.write(frames)
        names.append(name)
    return names


def write_figures(result: SuiteResult, folder: Path, fps: int) -> list[str]:
    """The report's PNGs: Table I over guidance, the t-SNEs of measured pose and expression, the first clip's
    timeline."""
    names = []
    for name, label in (("f_nl", "f_nl space"), ("measured", "the measured space")):
        rows = [r for r in result.table1_rows if r["space"].startswith(name)]
        if rows:
            title = f"Table I over the guidance scale s in {label} (mean ± 95 % CI over seeds)"
            save_png(guidance_figure(rows, title), folder / f"table1_{name}.png")
            names.append(f"table1_{name}.png")
    for part, sets in result.tsne.items():
        figure = tsne_figure(sets, f"t-SNE of the measured {part}: real, diffusion and AR")
        save_png(figure, folder / f"tsne_{part}.png")
        names.append(f"tsne_{part}.png")
    if result.timeline:
        save_png(timeline_figure(result.timeline, TIMELINE_NAMES, fps, "measured motion of the first clip"),
                 folder / "timeline.png")
        names.append("timeline.png")
    return names


def write_outputs(result: SuiteResult, metrics_file: Path, plots: Path, folder: Path, fps: int, sample_rate: int,
                  meta: Mapping[str, str]) -> Path:
    """Write everything (see the module docstring); returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(metrics_file, result.metrics)
    atomic_write_json(folder / "evaluate.json", result.metrics)
    write_plots(result, plots)
    write_csv(folder / "clips.csv", result.clips)
    figures = write_figures(result, folder, fps)
    videos = write_videos(result, folder, fps, sample_rate)
    sections: list[Section] = report_sections(result.metrics, figures, videos, list(result.videos))
    return write_report(folder / "report.html", "thpad evaluation", sections, meta)
