"""Face detection and 68-point landmarks with dlib (HOG detector + the shape predictor shipped in
``face-recognition-models``), the CPU default of thpad (docs/paper-notes.md §2.2 uses FAN; see params)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np


def face_models_dir() -> Path:
    """The folder of dlib model files inside the ``face_recognition_models`` package.

    Found with ``importlib.util.find_spec`` so that ``pkg_resources`` is not needed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("the package face-recognition-models is not installed (run `make setup`)")
    return Path(spec.origin).parent / "models"


Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels


def box_size(box: Box) -> int:
    """A box's longer side in pixels."""
    return max(box[2] - box[0], box[3] - box[1])


@dataclass(frozen=True)
class Face:
    """One detected face: its box (left, top, right, bottom) and 68 landmarks (68, 2) as (x, y)."""

    box: Box
    landmarks: np.ndarray

    @property
    def size(self) -> int:
        """The box's longer side in pixels."""
        return box_size(self.box)


class FaceLandmarker:
    """dlib HOG face detector plus the 68-point shape predictor; load once per process."""

    def __init__(self, predictor_path: str | Path | None = None) -> None:
        path = Path(predictor_path) if predictor_path else face_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise FileNotFoundError(f"dlib landmark model {path} not found")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))

    def boxes(self, rgb: np.ndarray, upsample: int = 0) -> list[Box]:
        """The HOG detector's face boxes in an (H, W, 3) uint8 RGB image, largest first, without landmarks."""
        rects = self._detector(np.ascontiguousarray(rgb), upsample)
        return sorted(((r.left(), r.top(), r.right(), r.bottom()) for r in rects), key=lambda b: -box_size(b))

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Face]:
        """All faces in an (H, W, 3) uint8 RGB image, largest first."""
        return [Face(box=box, landmarks=self.landmarks(rgb, box)) for box in self.boxes(rgb, upsample)]

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """68 landmarks (68, 2) float32 inside a given box (used when tracking without re-detection)."""
        rect = dlib.rectangle(*[int(round(v)) for v in box])
        return shape_points(self._predictor(np.ascontiguousarray(rgb), rect))  # (68, 2)


_PUNCTUATION = str.maketrans("(),", "   ")


def shape_points(shape: dlib.full_object_detection) -> np.ndarray:
    """A dlib shape's points as (N, 2) float32.

    Parsed from the points' text form ("points[(x, y), ...]"), which dlib builds in C++: 3-4 times faster than
    reading 2N attributes through the bindings (~50 against ~180 us for 68 points). Any other text falls back
    to the attributes.
    """
    text = str(shape.parts())
    if text.startswith("points[") and text.endswith("]"):
        values = np.array(text[7:-1].translate(_PUNCTUATION).split(), dtype=np.float32)
        if values.size == 2 * shape.num_parts:
            return values.reshape(-1, 2)  # (N, 2)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # (N, 2)


def box_from_landmarks(landmarks: np.ndarray, margin: float = 0.1) -> tuple[int, int, int, int]:
    """A detection-like box around (68, 2) landmarks, grown by ``margin`` of its size on each side."""
    x0, y0 = landmarks.min(axis=0)
    x1, y1 = landmarks.max(axis=0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return int(x0 - mx), int(y0 - my), int(x1 + mx), int(y1 + my)
