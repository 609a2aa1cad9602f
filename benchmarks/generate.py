"""Benchmark of generation: end-to-end frames/s and its split (face alignment, audio features, prior sampling,
rendering, encoding), time to the first written frame after the model is loaded, and peak memory, on 10 s and 60 s
of speech; with paste-back into a 512 px photo; DDIM-25/50 and DDPM-1000 at the tiny preset; the paper preset's prior
(DDIM-25, DDPM-1000) on 10 s and its rendering on 50 frames. Each case runs in a fresh process (peak RSS is the
process's). The bundle is ``--bundle`` (e.g. data/bundle after make run) or one of random weights of the preset (a
timing does not depend on the weights). Prints one JSON object.

Usage: .venv/bin/python -m benchmarks.generate [--bundle data/bundle] [--cases tiny,paste,paper]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TEXT = ("The prior samples head motion from the audio, so each seed gives a different but natural video, while the "
        "lips follow the words. ")


def _speech(folder: Path, seconds: float) -> Path:
    """espeak-ng speech, repeated to at least ``seconds``, as 16 kHz wav."""
    import soundfile

    from thpad.pipelines.media.audio import resample_pcm
    from thpad.pipelines.media.config import AudioConfig

    raw = folder / "raw.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), TEXT], check=True)
    data, rate = soundfile.read(raw, dtype="float32")
    pcm = resample_pcm(data, rate, AudioConfig(), (8000, 48000))
    pcm = np.tile(pcm, int(np.ceil(seconds * 16000 / len(pcm))))[: int(seconds * 16000)]
    path = folder / f"speech-{seconds:g}.wav"
    soundfile.write(path, pcm, 16000)
    return path


def _photo(folder: Path, side: int) -> Path:
    """Grace Hopper's portrait (matplotlib) resized to ``side`` px on its longer side."""
    from matplotlib import cbook
    from PIL import Image

    image = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    scale = side / max(image.size)
    image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)))
    path = folder / f"photo-{side}.jpg"
    image.save(path, quality=95)
    return path


def bundle_of(folder: Path, preset: str) -> Path:
    """A bundle of ``preset`` networks with random weights, sampling defaults DDIM-50 (the timing is the same)."""
    import dataclasses

    from thpad.pipelines.generate.random_bundle import random_bundle
    from thpad.stages.params import load_params

    params = load_params("params.yaml")
    validation = dataclasses.replace(params.train_prior.validation, num_steps=50, sampler="ddim")
    return random_bundle(folder / preset, preset, params.preprocess, validation)


def run_case(bundle: str, photo: str, speech: str, options: dict, paste_back: bool, prior_only: bool,
             render_frames: int | None) -> dict:
    """One case in this process: the parts timed one after the other as ``generate`` + ``save`` run them."""
    import torch

    import thpad
    from thpad.pipelines.generate.result import GenerationResult
    from thpad.pipelines.generate.settings import Settings, check_settings
    from thpad.pipelines.generate.tensors import to_model_input
    from thpad.pipelines.generate.writer import StreamingVideoWriter

    torch.set_num_threads(2)
    start = time.perf_counter()
    model = thpad.load(bundle)
    load_s = time.perf_counter() - start
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    portrait = model.portrait(photo)
    times["face_alignment"] = time.perf_counter() - t0
    t = time.perf_counter()
    pcm = model.speech(speech)
    f_a, f_l = model.audio_codes(pcm)
    times["audio_features"] = time.perf_counter() - t
    settings = Settings(**options)
    check_settings(settings, model.num_train_steps)
    t = time.perf_counter()
    samples = model._trajectories(settings, portrait, f_a)  # checks and the anchor's E_v; windows are sampled lazily
    times["prior_sampling"] = time.perf_counter() - t
    out = {"frames": len(f_a), "load_s": round(load_s, 3)}
    if prior_only:
        t = time.perf_counter()
        _ = [s.f_nl for s in samples]
        times["prior_sampling"] += time.perf_counter() - t
        return {**out, **{k: round(v, 3) for k, v in times.items()}}
    from thpad.models.generation import encode_identity
    from thpad.pipelines.generate.result import Sample
    from thpad.pipelines.generate.trajectory import Trajectory

    identity = encode_identity(model.head, to_model_input(portrait.aligned, model.image_size))
    if render_frames:  # rendering timed on the first frames only (the paper preset's generator is slow on CPU)
        samples = [Sample(s.seed, Trajectory.of(s.f_nl[:render_frames])) for s in samples]
    f_l = f_l[:render_frames] if render_frames else f_l
    result = GenerationResult(model, identity, portrait, f_l, pcm, samples, {}, {})
    paste = result._paste(paste_back)
    times["rendering"] = times["encoding"] = 0.0
    first_frame_s = None
    with tempfile.TemporaryDirectory() as tmp:
        writer = StreamingVideoWriter(Path(tmp) / "out.mp4", model.fps, pcm, model.sample_rate)
        for begin in range(0, result.num_frames, 128):
            end = min(begin + 128, result.num_frames)
            t = time.perf_counter()
            for sample in samples:
                sample.trajectory.frames(begin, end)  # the prior's windows this chunk needs
            times["prior_sampling"] += time.perf_counter() - t
            t = time.perf_counter()
            chunk = result._render(begin, end, None, paste)[0]
            times["rendering"] += time.perf_counter() - t
            t = time.perf_counter()
            writer.write(chunk)
            times["encoding"] += time.perf_counter() - t
            if first_frame_s is None:
                first_frame_s = time.perf_counter() - t0
        t = time.perf_counter()
        writer.close()
        times["encoding"] += time.perf_counter() - t
    total = sum(times.values())
    frames = result.num_frames
    return {**out, "frames": frames, "total_s": round(total, 3), "frames_per_s": round(frames / total, 1),
            "first_frame_s": round(first_frame_s, 3), "seconds": {k: round(v, 3) for k, v in times.items()},
            "share": {k: round(v / total, 3) for k, v in times.items()},
            "s_per_frame": round(total / frames, 4)}


def child(args: argparse.Namespace) -> None:
    case = json.loads(args.case)
    result = run_case(**case)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def spawn(case: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.generate", "--case", json.dumps(case)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="", help="a bundle folder (default: random tiny weights)")
    parser.add_argument("--cases", default="tiny,paste,paper", help="comma list of tiny, paste, paper")
    parser.add_argument("--case", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child(args)
        return
    wanted = set(args.cases.split(","))
    folder = Path(tempfile.mkdtemp(prefix="thpad-bench-gen-"))
    try:
        tiny = args.bundle or str(bundle_of(folder, "tiny"))
        photo, big = str(_photo(folder, 256)), str(_photo(folder, 512))
        speech = {s: str(_speech(folder, s)) for s in (10.0, 60.0)}
        report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                    "load": os.getloadavg()}, "bundle": args.bundle or "random tiny"}
        base = {"bundle": tiny, "photo": photo, "paste_back": False, "prior_only": False, "render_frames": None}
        if "tiny" in wanted:
            for seconds in (10.0, 60.0):
                for name, options in (("ddim50", {"sampler": "ddim", "steps": 50}),
                                      ("ddim25", {"sampler": "ddim", "steps": 25})):
                    report[f"tiny_{name}_{seconds:g}s"] = spawn({**base, "speech": speech[seconds], "options": options})
            report["tiny_ddpm1000_10s"] = spawn({**base, "speech": speech[10.0], "options": {"sampler": "ddpm"}})
        if "paste" in wanted:
            report["tiny_ddim50_10s_paste512"] = spawn({**base, "photo": big, "speech": speech[10.0],
                                                        "options": {"sampler": "ddim", "steps": 50},
                                                        "paste_back": True})
        if "paper" in wanted:
            paper = str(bundle_of(folder, "paper"))
            for name, options in (("ddim25", {"sampler": "ddim", "steps": 25}), ("ddpm1000", {"sampler": "ddpm"})):
                report[f"paper_prior_{name}_10s"] = spawn({**base, "bundle": paper, "speech": speech[10.0],
                                                          "options": options, "prior_only": True})
            report["paper_render_50frames"] = spawn({**base, "bundle": paper, "speech": speech[10.0],
                                                    "options": {"sampler": "ddim", "steps": 25},
                                                    "render_frames": 50})
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
