"""Writes docs/sample_frames.png: frames of sample-corpus clips with their written truth.

Usage: python scripts/sample_frames.py [CORPUS] [OUT.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from thpad.pipelines.media.video import read_video


def strip(mp4: Path, num: int = 6) -> np.ndarray:
    """``num`` frames of a clip side by side, each captioned with its truth: evenly spaced, but the last one is
    the clip's fullest blink (if it blinks)."""
    frames = read_video(mp4).frames
    truth = json.loads(mp4.with_suffix(".json").read_text())["motion"]
    picks = np.linspace(0, len(frames) - 1, num).astype(int)
    blink = np.asarray(truth["blink"][:len(frames)])
    if blink.max() > 0:
        picks[-1] = int(np.argmax(blink))
    tiles = []
    for t in sorted(picks):
        tile = np.ascontiguousarray(frames[t])
        caption = [f"t={t} mouth={truth['mouth'][t]:.2f}", f"yaw={truth['yaw'][t]:+.1f} blink={truth['blink'][t]:.1f}"]
        for row, text in enumerate(caption):
            cv2.putText(tile, text, (4, 14 + 14 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "data/sample_corpus")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/sample_frames.png")
    clips = json.loads((corpus / "corpus.json").read_text())["clips"]
    picks = [clips[0], clips[len(clips) // 2 + 1], clips[-1]]
    grid = np.concatenate([strip(corpus / c) for c in picks], axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {out} from {', '.join(picks)}")


if __name__ == "__main__":
    main()
