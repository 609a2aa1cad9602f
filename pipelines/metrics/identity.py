"""Identity preservation with dlib's face-recognition descriptor (issue 21, "Measurers, validated first"): a 128-D
ResNet embedding per frame, its Euclidean distance to the source photo's, and the share of frames dlib would call
the same person (distance under 0.6, dlib's own threshold). It stands in for CSIM, the cosine similarity of ArcFace
embeddings (docs/paper-notes.md §8), whose weights we lack; its values do not compare with published CSIMs.

The models are the ones shipped in the ``face-recognition-models`` package (nothing is downloaded): dlib's HOG
frontal face detector, its 5-point shape predictor (the landmarks dlib's own face-recognition example aligns the
descriptor's face chip with) and ``dlib_face_recognition_resnet_model_v1.dat``.
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from thpad.pipelines.media.faces import face_models_dir
from thpad.pipelines.metrics.motion import frechet_distance

WORK_SIZE = 224  # crops are upscaled to the template's own size: HOG finds no face under about 80 px
DESC_DIM = 128  # the length of dlib's face descriptor
SAME_PERSON = 0.6  # dlib's threshold: two descriptors closer than this are the same person (99.38% on LFW)
PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class IdentityEncoder:
    """dlib's face detector, 5-point predictor and 128-D face-recognition ResNet; build once (it loads all three).

    A descriptor costs about 160 ms per frame on a 2-core CPU (the ResNet; the HOG detection at 224 px is about
    8 ms), so a 250-frame clip takes some 40 s: describe a subsample of frames when time matters.
    """

    def __init__(self, work_size: int = WORK_SIZE, num_jitters: int = 0) -> None:
        models = face_models_dir()
        for name in (PREDICTOR_FILE, RECOGNITION_FILE):
            if not (models / name).is_file():
                raise FileNotFoundError(f"dlib model {models / name} not found")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(models / PREDICTOR_FILE))
        self._recogniser = dlib.face_recognition_model_v1(str(models / RECOGNITION_FILE))
        self._work_size = work_size
        self._num_jitters = num_jitters

    def descriptor(self, frame: np.ndarray) -> np.ndarray | None:
        """The descriptor of one aligned crop, or None when no face is detected.

        1. Upscale the crop to the working size (cv2 bicubic; a crop already that size is used as is).
        2. Detect faces with the HOG detector (no extra upsampling) and keep the largest box.
        3. Fit the 5 landmarks in that box and compute the descriptor on the face chip they align.

        Args:
            frame: (S, S, 3) uint8 RGB, any S (e.g. 56 or 224).
        Returns:
            (128,) float32, or None.
        """
        size = self._work_size
        work = frame if frame.shape[:2] == (size, size) else cv2.resize(
            frame, (size, size), interpolation=cv2.INTER_CUBIC)  # (W, W, 3)
        work = np.ascontiguousarray(work)
        boxes = self._detector(work, 0)
        if len(boxes) == 0:
            return None
        box = max(boxes, key=lambda r: r.area())
        shape = self._predictor(work, box)
        return np.array(self._recogniser.compute_face_descriptor(work, shape, self._num_jitters), np.float32)

    def descriptors(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors of every frame of aligned crops.

        Args:
            frames: (T, S, S, 3) uint8 RGB crops aligned to the template.
        Returns:
            (descs (T, 128) float32, NaN rows where no face is detected; found (T,) bool).
        """
        if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[3] != 3:
            raise ValueError(f"frames must be (T, S, S, 3), got {frames.shape}")
        descs = np.full((len(frames), DESC_DIM), np.nan, np.float32)  # (T, 128)
        found = np.zeros(len(frames), bool)  # (T,)
        for t, frame in enumerate(frames):
            desc = self.descriptor(frame)
            if desc is not None:
                descs[t], found[t] = desc, True
        return descs, found

    def photo_descriptor(self, image: np.ndarray) -> np.ndarray:
        """The descriptor of the source photo, aligned to the template like the frames and described the same way.

        Args:
            image: (S, S, 3) uint8 RGB.
        Returns:
            (128,) float32.
        Raises:
            ValueError: the image is not (S, S, 3) or no face is detected in it.
        """
        if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 3:
            raise ValueError(f"the source photo must be (S, S, 3), got {image.shape}")
        desc = self.descriptor(image)
        if desc is None:
            raise ValueError(f"no face detected in the source photo ({image.shape[0]} px, upscaled to "
                             f"{self._work_size} px)")
        return desc


def identity_metrics(source_desc: np.ndarray, descs: np.ndarray, found: np.ndarray,
                     threshold: float = SAME_PERSON) -> dict[str, float]:
    """Identity preservation of a clip against its source photo.

    Args:
        source_desc: (128,) the source photo's descriptor (``IdentityEncoder.photo_descriptor``).
        descs: (T, 128) the frames' descriptors; found: (T,) bool, the frames with a detected face.
        threshold: the same-person distance (dlib's 0.6).
    Returns:
        {"dlib_distance": the mean Euclidean distance over the found frames (NaN if none),
        "same_person_share": the share of ALL frames found and under ``threshold`` (a frame without a face is a
        failure, so a generator cannot score by losing the face), "face_found_share": the share of frames found}.
    """
    descs, found = np.asarray(descs, np.float64), np.asarray(found, bool)
    if descs.ndim != 2 or descs.shape[1] != DESC_DIM or found.shape != (len(descs),) or len(descs) == 0:
        raise ValueError(f"need descriptors (T >= 1, {DESC_DIM}) and found (T,), got {descs.shape} and {found.shape}")
    dist = np.linalg.norm(descs[found] - np.asarray(source_desc, np.float64), axis=1)  # (F,)
    return {
        "dlib_distance": float(dist.mean()) if dist.size else float("nan"),
        "same_person_share": float((dist < threshold).sum() / len(descs)),
        "face_found_share": float(found.mean()),
    }


def descriptor_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """A Fréchet distance on dlib descriptors, an identity-feature statistic: how far the distribution of one set
    of faces' identities is from another's (e.g. generated against real frames). It is not FID (no Inception
    features) and must not be reported as such.

    Rows with NaNs (frames without a face) are dropped first. With fewer frames than 128 the covariances are
    singular and the value is biased upward; compare only sets of similar sizes.

    Args:
        a: (n, 128) descriptors; b: (m, 128) descriptors.
    Returns:
        the Fréchet distance between Gaussians fitted to the found rows (``motion.frechet_distance``).
    Raises:
        ValueError: either side has fewer than 2 found rows.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return frechet_distance(a[np.isfinite(a).all(axis=1)], b[np.isfinite(b).all(axis=1)])
