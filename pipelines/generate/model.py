"""A loaded bundle, ready to generate: ``TalkingHeadModel`` is what ``thpad.load`` returns and what every consumer
(CLI, Python API, batch job, evaluation, the registry's model, the web demo) generates with.

``generate`` prepares one call at once: the photo aligned by preprocessing's code (pipelines/generate/inputs.py),
the speech resampled and cut into 0.2 s mel windows as in training, E_a / MLP_a2l over every frame, and the non-lip
trajectory: sampled by the prior in chained windows, given by a driving video, or zeros. Rendering is left to
``GenerationResult.chunks()``, which yields 128-frame windows lazily, so that memory stays flat in the video's length.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thpad.codec import from_dict
from thpad.models.generation import MotionPrior, encode_audio, encode_identity, encode_nonlip, iter_prior_nl
from thpad.models.motion_prior import build_prior
from thpad.models.talking_head import TalkingHead, build_talking_head
from thpad.pipelines.generate.inputs import Portrait, align_portrait, load_image, load_speech
from thpad.pipelines.generate.reenact import driving_codes
from thpad.pipelines.generate.result import GenerationResult, Sample
from thpad.pipelines.generate.settings import Settings, SettingsError, check_settings, resolved, sampler_config
from thpad.pipelines.generate.tensors import to_model_input
from thpad.pipelines.generate.trajectory import Trajectory, scaled_chunks
from thpad.pipelines.media.audio import mel_spectrogram
from thpad.pipelines.media.config import AlignConfig, AudioConfig, TrackConfig, bins_per_frame, samples_per_frame
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.storage.bundle import Bundle, read_bundle, sha256_file
from thpad.storage.windows import mel_window

log = logging.getLogger(__name__)
PRIOR_ROLES = {"diffusion": "prior", "ar": "prior_ar"}
PORTRAIT_CACHE = 8  # aligned photos kept per model


def _load_net(module: torch.nn.Module, state: Mapping[str, torch.Tensor], device: str) -> torch.nn.Module:
    module.load_state_dict(dict(state), strict=True)
    return module.to(device).eval()


def label(source: Any, default: str) -> str:
    """How messages name an input: its path, else ``default`` ("photo", "speech")."""
    return str(source) if isinstance(source, str | Path) else default


def sha256_of(source: Any) -> str | None:
    """The sha256 of a path's or bytes' content (None for arrays: they have no file)."""
    if isinstance(source, bytes | bytearray):
        return hashlib.sha256(source).hexdigest()
    if isinstance(source, str | Path) and Path(source).is_file():
        return sha256_file(source)
    return None


class TalkingHeadModel:
    """A verified bundle's networks in eval mode, its preprocessing and its sampling defaults.

    Example:
        >>> model = TalkingHeadModel("data/bundle")
        >>> model.generate("face.jpg", "speech.wav", seed=3).save("talk.mp4")
    """

    def __init__(self, bundle: str | Path | Bundle, device: str = "cpu") -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        self.device = device
        manifest = self.bundle.manifest
        config, state = self.bundle.snapshots["talking_head"]
        self.head: TalkingHead = _load_net(build_talking_head(config), state, device)
        self.priors = {name: self._prior(role) for name, role in PRIOR_ROLES.items()}
        pre = manifest["preprocessing"]
        self.audio_cfg = from_dict(AudioConfig, pre["audio"])
        self.align_cfg = from_dict(AlignConfig, pre["align"])
        self.track_cfg = from_dict(TrackConfig, pre["track"])
        self.fps, self.sample_rate = int(pre["fps"]), int(pre["sample_rate"])
        self.sampling: dict[str, Any] = dict(manifest["sampling"])
        self.landmarker = FaceLandmarker()
        self._lock = threading.Lock()  # the cache may be shared by a threaded server's requests
        self._portraits: dict[tuple, Portrait] = {}  # the last PORTRAIT_CACHE photos, by content (see ``portrait``)

    def _prior(self, role: str) -> MotionPrior:
        config, state = self.bundle.snapshots[role]
        return MotionPrior(_load_net(build_prior(config), state, self.device), config)

    @property
    def image_size(self) -> int:
        """The side of the frames the generator renders (56 in the tiny preset, 224 in the paper's)."""
        return self.head.cfg.identity.image_size

    @property
    def num_train_steps(self) -> int:
        """T of the diffusion prior (DDPM runs all of them)."""
        return int(self.priors["diffusion"].config["diffusion"]["num_steps"])

    def portrait(self, image: Any, face: int | None = None, name: str | None = None) -> Portrait:
        """Load any photo and align its face exactly as preprocessing aligns video frames. The last few photos are
        kept by their pixels' hash, so generating again from the same photo skips face detection."""
        name = name or label(image, "photo")
        pixels = load_image(image, name=name)
        key = (hashlib.sha256(pixels.tobytes()).hexdigest(), pixels.shape, face)
        with self._lock:
            cached = self._portraits.get(key)
        if cached is not None:
            return cached
        portrait = align_portrait(pixels, self.landmarker, self.track_cfg, self.align_cfg, face, name=name)
        with self._lock:
            while len(self._portraits) >= PORTRAIT_CACHE:
                self._portraits.pop(next(iter(self._portraits)))
            self._portraits[key] = portrait
        return portrait

    def speech(self, audio: Any, sample_rate: int | None = None, name: str | None = None,
               max_seconds: float | None = None) -> np.ndarray:
        """Load any speech as mono PCM at the bundle's sample rate, as preprocessing resamples it."""
        return load_speech(audio, self.audio_cfg, sample_rate=sample_rate, name=name or label(audio, "speech"),
                           max_seconds=max_seconds)

    def audio_codes(self, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f_a (L, A) and f_l (L, lip) of PCM at the bundle's rate; L = round(len(pcm) * fps / sample_rate)."""
        num_frames = max(1, round(len(pcm) / samples_per_frame(self.audio_cfg)))
        mel = mel_spectrogram(pcm, self.audio_cfg, num_frames)  # (n_mels, 4L)
        per_frame = bins_per_frame(self.audio_cfg)
        span = self.head.cfg.audio.n_frames // per_frame  # 5 video frames = 0.2 s
        windows = np.stack([mel_window(mel, t, span, per_frame)[0] for t in range(num_frames)])  # (L, n_mels, W)
        return encode_audio(self.head, torch.from_numpy(windows)[:, None].to(self.device))

    def nonlip_code(self, portrait: Portrait) -> np.ndarray:
        """E_v's non-lip code (N,) of an aligned photo (the anchor and keyframes)."""
        return encode_nonlip(self.head, to_model_input(portrait.aligned, self.image_size)[None].to(self.device))[0]

    def generate(self, image: Any, audio: Any, sample_rate: int | None = None, max_seconds: float | None = None,
                 **options: Any) -> GenerationResult:
        """Generate talking-head video(s) from a photo and speech.

        Args:
            image: a photo: path, bytes or (H, W, 3) array. audio: speech: path (any audio or video file), bytes,
                or an array with ``sample_rate``; speech longer than ``max_seconds`` is refused.
            options: the fields of ``Settings`` (``seed``, ``guidance``,
                ``samples``, ``keyframes``, ``prior``, ...).
        Returns:
            A ``GenerationResult``: the trajectories, audio and fps at once; frames lazily (``chunks()``).
        Raises:
            InputError: a photo or speech the model cannot use (the message names it and the fix).
            SettingsError: an option out of range or not applying to the chosen prior.
        Example:
            >>> model.generate("face.jpg", "speech.wav", samples=3, guidance=2.5).save("talk.mp4")
        """
        try:
            settings = Settings(**options)
        except TypeError as err:
            raise SettingsError(f"unknown option: {err}") from err
        check_settings(settings, self.num_train_steps)
        portrait = self.portrait(image, settings.face)
        if portrait.other_boxes:
            log.warning("%d other face(s) in the photo at %s; using the largest at %s (choose with face=N)",
                        len(portrait.other_boxes), list(portrait.other_boxes), portrait.box)
        pcm = self.speech(audio, sample_rate, max_seconds=max_seconds)
        f_a, f_l = self.audio_codes(pcm)
        if settings.lip == "zero":
            f_l = np.zeros_like(f_l)
        identity = encode_identity(self.head, to_model_input(portrait.aligned, self.image_size).to(self.device))
        samples = self._trajectories(settings, portrait, f_a)
        inputs = {"image_sha256": sha256_of(image), "audio_sha256": sha256_of(audio)}
        return GenerationResult(model=self, identity=identity, portrait=portrait, f_l=f_l, audio=pcm,
                                samples=samples, settings=resolved(settings, self.sampling), inputs=inputs)

    def _trajectories(self, s: Settings, portrait: Portrait, f_a: np.ndarray) -> list[Sample]:
        """Every sample's non-lip codes (L, N): from the prior (sampled window by window as rendering asks for them),
        a driving video, or zeros. Inputs are checked here, before anything is sampled."""
        L, N = len(f_a), self.head.cfg.nl_dim
        if s.nonlip == "zero":
            return [Sample(None, Trajectory.of(np.zeros((L, N), np.float32)))]
        if s.nonlip_from is not None:
            return [Sample(None, Trajectory.of(driving_codes(self, s.nonlip_from, L)))]
        anchor = self.nonlip_code(portrait) if s.anchor else None
        known = {0: anchor} if anchor is not None else {}
        for frame, photo in s.keyframes.items():
            if not 0 <= int(frame) < L:
                raise SettingsError(f"keyframe {frame} is outside the video's {L} frames")
            known[int(frame)] = self.nonlip_code(self.portrait(photo, name=f"keyframe {frame}"))
        prior = self.priors[s.prior]
        if s.prior == "ar":
            chunks = iter_prior_nl(prior, f_a, None, None, known)
            return [Sample(None, Trajectory(scaled_chunks(chunks, anchor, s.motion_scale), L))]
        sampler, first = sampler_config(s, self.sampling), s.seed or 0
        out = []
        for seed in range(first, first + s.samples):
            generator = torch.Generator(device="cpu").manual_seed(seed)  # per call, never the global RNG
            chunks = iter_prior_nl(prior, f_a, sampler, generator, known)
            out.append(Sample(seed, Trajectory(scaled_chunks(chunks, anchor, s.motion_scale), L)))
        return out
