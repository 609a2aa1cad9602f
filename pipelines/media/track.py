"""Face tracking over a clip: detect rarely, follow the 68 landmarks in between (docs/paper-notes.md §2.2).

PC-AVS runs FAN on every frame; detection is the expensive part (dlib's HOG with one upsampling costs ~45 ms
on a 224 px frame against ~3 ms for the landmarks), so here:

1. Detect on the first frame (searching up to ``max_search_frames`` frames for the first face;
   frames before it are tracked backwards). HOG runs with ``detect_upsample`` as on a photo, but on a frame
   whose longer side would pass ``detect_max_side`` it runs on a resized copy instead (``detection_scale``);
   the box is mapped back and the landmarks are predicted at full resolution.
2. On every other frame, run the landmark predictor in a box derived from the previous frame's
   landmarks. The box is calibrated at each detection: the detector's box is stored relative to the
   landmarks' centroid and RMS spread, and reapplied to later landmarks, so the predictor always sees
   a detector-like box. (A fixed-margin ``faces.box_from_landmarks`` box drifted off the face on 2 of
   5 sample-corpus clips; the calibrated box matched per-frame detection.)
3. Re-detect whenever the tracked landmarks degrade (box IoU drop, a large jump, or a tilted / upside-down
   face), and every ``redetect_every`` frames when that is not 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from thpad import landmarks as G
from thpad.pipelines.media import faces as F
from thpad.pipelines.media.config import TrackConfig
from thpad.pipelines.media.errors import RejectClip

Box = F.Box


class Landmarker(Protocol):
    """What tracking needs from a landmark model (``faces.FaceLandmarker`` or ``FanLandmarker``)."""

    def boxes(self, rgb: np.ndarray, upsample: int = 0) -> list[Box]: ...

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[F.Face]: ...

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray: ...


@dataclass(frozen=True)
class TrackStats:
    """What tracking did on one clip (recorded by the orchestrator)."""

    detections: int
    redetections: int
    frames_tracked: int
    frames_lost: int
    max_faces: int
    min_face_size: int


@dataclass(frozen=True)
class FaceTrack:
    """Per-frame landmarks (T, 68, 2) float32 in original frame pixels, and tracking stats."""

    landmarks: np.ndarray
    stats: TrackStats


@dataclass
class _Counts:
    """Mutable tallies of one ``track_face`` call (local to it, never shared)."""

    detections: int = 0
    redetections: int = 0
    tracked: int = 0
    lost: int = 0
    max_faces: int = 0
    sizes: list[int] = field(default_factory=list)


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid (2,) and scale (RMS distance from the centroid) of (68, 2) landmarks."""
    centre = landmarks.mean(axis=0)
    return centre, float(np.sqrt(((landmarks - centre) ** 2).sum(axis=1).mean()))


def calibrate_box(box: Box, landmarks: np.ndarray) -> np.ndarray:
    """A detector box (4,) expressed relative to its landmarks' centroid and scale."""
    centre, scale = face_frame(landmarks)
    return (np.asarray(box, np.float64) - np.tile(centre, 2)) / scale


def box_from_calibration(calibration: np.ndarray, landmarks: np.ndarray) -> Box:
    """The detector-like box of ``landmarks`` (68, 2) under a ``calibrate_box`` calibration."""
    centre, scale = face_frame(landmarks)
    cx, cy = centre.tolist()
    left, top, right, bottom = calibration.tolist()
    return round(cx + left * scale), round(cy + top * scale), round(cx + right * scale), round(cy + bottom * scale)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _group_means() -> np.ndarray:
    """(3, 68) weights whose product with (68, 2) landmarks gives the right eye's, the left eye's and the inner
    mouth's mean points: one matrix product per frame instead of three gathers (the tracker runs it on every
    frame)."""
    weights = np.zeros((3, 68))
    for row, group in enumerate((G.EYE_RIGHT, G.EYE_LEFT, G.MOUTH_INNER)):
        weights[row, list(group)] = 1.0 / len(group)
    weights.setflags(write=False)
    return weights


GROUP_MEANS = _group_means()


def is_sane(landmarks: np.ndarray, max_roll_deg: float) -> bool:
    """Finite, eye line tilted less than ``max_roll_deg``, and the mouth below the eyes."""
    if not np.isfinite(landmarks).all():
        return False
    (rx, ry), (lx, ly), (mx, my) = (GROUP_MEANS @ landmarks).tolist()  # right eye, left eye, inner mouth
    ex, ey = lx - rx, ly - ry
    eye_dist = math.hypot(ex, ey)
    if eye_dist < 1.0 or math.degrees(abs(math.atan2(ey, ex))) > max_roll_deg:
        return False
    # Depth of the mouth along the unit normal (-ey, ex) / eye_dist, which points from the eyes to the chin.
    mouth_depth = ((mx - (lx + rx) / 2) * -ey + (my - (ly + ry) / 2) * ex) / eye_dist
    return 0.4 * eye_dist < mouth_depth < 2.5 * eye_dist


def is_degraded(prev: np.ndarray, cur: np.ndarray, cfg: TrackConfig) -> bool:
    """Whether tracked landmarks ``cur`` (68, 2) broke away from ``prev`` (68, 2) (see ``TrackConfig``)."""
    if not is_sane(cur, cfg.max_roll_deg):
        return True
    _, scale = face_frame(prev)
    jump = float(np.linalg.norm(cur - prev, axis=1).mean()) / scale
    return jump > cfg.max_jump or box_iou(F.box_from_landmarks(prev), F.box_from_landmarks(cur)) < cfg.min_box_iou


def detection_scale(height: int, width: int, cfg: TrackConfig) -> float:
    """The factor a frame is resized by for HOG: ``2 ** detect_upsample`` (dlib's own upsampling), but never so
    large that the longer side passes ``detect_max_side``."""
    return min(2.0 ** cfg.detect_upsample, cfg.detect_max_side / max(height, width))


def detect_boxes(landmarker: Landmarker, frame: np.ndarray, scale: float) -> list[Box]:
    """Face boxes (largest first) in frame pixels, found by HOG on ``frame`` resized by ``scale``. A power of two
    of at least 1 is dlib's own upsampling (the boxes of ``detect``); any other scale resizes with OpenCV."""
    if scale >= 1 and math.log2(scale).is_integer():
        return landmarker.boxes(frame, int(math.log2(scale)))
    height, width = frame.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    sx, sy = width / size[0], height / size[1]
    return [(round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
            for left, top, right, bottom in landmarker.boxes(resized)]


def choose_box(boxes: list[Box], track_box: Box | None, cfg: TrackConfig, frame: int) -> Box:
    """Pick the face to follow among detections (largest first), applying the multi-face policy."""
    if len(boxes) > 1 and cfg.multi_face_policy == "reject":
        raise RejectClip(f"{len(boxes)} faces in frame {frame} (multi_face_policy 'reject')")
    box = boxes[0]
    if track_box is not None and len(boxes) > 1:
        overlaps = [box_iou(track_box, b) for b in boxes]
        if max(overlaps) > 0:
            box = boxes[int(np.argmax(overlaps))]
    if F.box_size(box) < cfg.min_face_size:
        raise RejectClip(f"face in frame {frame} is {F.box_size(box)} px, below min_face_size {cfg.min_face_size} px")
    return box


def _detect(landmarker: Landmarker, frames: np.ndarray, t: int, track_box: Box | None,
            cfg: TrackConfig, counts: _Counts) -> F.Face | None:
    boxes = detect_boxes(landmarker, frames[t], detection_scale(*frames.shape[1:3], cfg))
    counts.detections += 1
    counts.max_faces = max(counts.max_faces, len(boxes))
    if not boxes:
        return None
    box = choose_box(boxes, track_box, cfg, t)
    counts.sizes.append(F.box_size(box))
    return F.Face(box=box, landmarks=landmarker.landmarks(frames[t], box))


def _tracked(landmarker: Landmarker, frame: np.ndarray, box: Box, prev: np.ndarray,
             cfg: TrackConfig) -> np.ndarray | None:
    """Landmarks (68, 2) predicted in ``box``, or None when they degraded against ``prev``."""
    cur = landmarker.landmarks(frame, box)
    return None if is_degraded(prev, cur, cfg) else cur


def _follow(landmarker: Landmarker, frames: np.ndarray, order: list[int], first: F.Face,
            cfg: TrackConfig, counts: _Counts, out: np.ndarray) -> None:
    """Track along ``order`` (frame indices, starting next to the frame ``first`` was detected in)."""
    prev, calibration = first.landmarks, calibrate_box(first.box, first.landmarks)
    for step, t in enumerate(order, start=1):
        box = box_from_calibration(calibration, prev)
        scheduled = cfg.redetect_every > 0 and step % cfg.redetect_every == 0
        cur = None if scheduled else _tracked(landmarker, frames[t], box, prev, cfg)
        if cur is None and not scheduled:
            counts.redetections += 1  # tracking degraded: detect now rather than at the next scheduled frame
        face = None if cur is not None else _detect(landmarker, frames, t, box, cfg, counts)
        if face is not None:
            cur, calibration = face.landmarks, calibrate_box(face.box, face.landmarks)
        elif cur is None and scheduled:
            cur = _tracked(landmarker, frames[t], box, prev, cfg)  # the detector missed a face we follow
        if cur is None:
            counts.lost += 1
            cur = prev  # repeat the last good landmarks
        elif face is None:
            counts.tracked += 1
        out[t] = cur
        prev = cur


def track_face(frames: np.ndarray, landmarker: Landmarker, cfg: TrackConfig) -> FaceTrack:
    """Track one face through a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB frames.
        landmarker: a loaded landmark model (see ``load_landmarker``).
        cfg: tracking parameters.
    Returns:
        ``FaceTrack`` with landmarks (T, 68, 2) float32 in original frame pixels and its stats.
    Raises:
        RejectClip: no face in the first ``max_search_frames`` frames, a face below ``min_face_size``,
            several faces under policy "reject", or too many lost frames.
    """
    if len(frames) == 0:
        raise RejectClip("the clip has no video frames")
    counts = _Counts()
    out = np.zeros((len(frames), 68, 2), np.float32)  # (T, 68, 2)
    search = min(cfg.max_search_frames, len(frames))
    first, start = None, 0
    for start in range(search):
        first = _detect(landmarker, frames, start, None, cfg, counts)
        if first is not None:
            break
    if first is None:
        raise RejectClip(f"no face found in the first {search} frames")
    out[start] = first.landmarks
    _follow(landmarker, frames, list(range(start + 1, len(frames))), first, cfg, counts, out)
    _follow(landmarker, frames, list(range(start - 1, -1, -1)), first, cfg, counts, out)
    if counts.lost > cfg.max_lost_fraction * len(frames):
        raise RejectClip(f"face lost in {counts.lost} of {len(frames)} frames "
                         f"(max_lost_fraction {cfg.max_lost_fraction:g})")
    stats = TrackStats(detections=counts.detections, redetections=counts.redetections,
                       frames_tracked=counts.tracked, frames_lost=counts.lost, max_faces=counts.max_faces,
                       min_face_size=min(counts.sizes))
    return FaceTrack(landmarks=out, stats=stats)


class FanLandmarker:
    """FAN-68 landmarks (2DFAN4, PC-AVS's choice) from a local weights file, with dlib HOG detection.

    Never downloads: face-alignment's own S3FD detector and weights URLs are not used. FAN was trained
    on S3FD boxes, which are looser than dlib's; tracking hands it dlib-calibrated boxes. This path
    is checked for plumbing only here (no FAN weights are reachable from the test machines).
    """

    def __init__(self, weights: str | Path, device: str = "cpu") -> None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"FAN weights {path} not found (thpad never downloads model weights)")
        import torch  # imported here: torch costs ~850 MB per process and dlib tracking does not need it
        from face_alignment.models import FAN

        self._torch, self._device = torch, device
        self._net = FAN(4)
        self._net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        self._net.to(device).eval()
        self._dlib = F.FaceLandmarker()

    def boxes(self, rgb: np.ndarray, upsample: int = 0) -> list[Box]:
        """dlib's HOG boxes in an (H, W, 3) uint8 RGB image, largest first."""
        return self._dlib.boxes(rgb, upsample)

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[F.Face]:
        """All faces in an (H, W, 3) uint8 RGB image (dlib HOG boxes, FAN landmarks), largest first."""
        return [F.Face(box=box, landmarks=self.landmarks(rgb, box)) for box in self.boxes(rgb, upsample)]

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """68 landmarks (68, 2) float32 in the box, with face-alignment's crop and heatmap decoding."""
        from face_alignment.utils import CENTER_Y_OFFSET, REFERENCE_SCALE, crop

        left, top, right, bottom = box
        centre = np.array([(left + right) / 2, (top + bottom) / 2 - (bottom - top) * CENTER_Y_OFFSET])
        scale = (right - left + bottom - top) / REFERENCE_SCALE
        patch = crop(rgb, centre, scale).transpose(2, 0, 1)[None].astype(np.float32) / 255.0  # (1, 3, 256, 256)
        with self._torch.no_grad():
            heatmaps = self._net(self._torch.from_numpy(patch).to(self._device))
        heatmaps = heatmaps[-1] if isinstance(heatmaps, list) else heatmaps  # (1, 68, 64, 64)
        return decode_heatmaps(heatmaps[0].cpu().numpy(), centre, scale)


def decode_heatmaps(heatmaps: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """FAN heatmaps (68, R, R) -> image points (68, 2) float32, as face-alignment decodes them (argmax,
    a quarter-pixel step towards the higher neighbour, then back through the crop's 200 * scale box);
    in numpy, because face-alignment's decoder compiles numba code for ~8 s in every process."""
    num, res, _ = heatmaps.shape
    flat = heatmaps.reshape(num, res * res).argmax(axis=1)
    x, y = flat % res, flat // res  # (68,), (68,)
    inner = (x > 0) & (x < res - 1) & (y > 0) & (y < res - 1)
    xc, yc = np.clip(x, 1, res - 2), np.clip(y, 1, res - 2)
    rows = np.arange(num)
    dx = heatmaps[rows, yc, xc + 1] - heatmaps[rows, yc, xc - 1]
    dy = heatmaps[rows, yc + 1, xc] - heatmaps[rows, yc - 1, xc]
    points = np.stack([x, y], axis=1) + 0.5 + 0.25 * np.sign(np.stack([dx, dy], axis=1)) * inner[:, None]  # (68, 2)
    return ((points / res - 0.5) * 200.0 * scale + centre).astype(np.float32)


def load_landmarker(cfg: TrackConfig) -> Landmarker:
    """The landmark model ``cfg.landmark_backend`` names: dlib by default, FAN from ``cfg.fan_weights``."""
    if cfg.landmark_backend == "fan":
        if not cfg.fan_weights:
            raise ValueError("landmark_backend 'fan' needs fan_weights (a local 2DFAN4 weights file)")
        return FanLandmarker(cfg.fan_weights)
    return F.FaceLandmarker()
