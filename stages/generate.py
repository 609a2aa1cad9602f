"""``thpad generate IMAGE AUDIO -o OUT.mp4``: a photo and a speech clip in, a talking-head video out.

A thin layer over the Python API (``thpad.load(...).generate(...).save(...)``): options become ``Settings``, bad
inputs exit with code 2 and a message naming the file and the fix, and the video is streamed to a temporary name and
renamed, so a failed run leaves nothing at OUT.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import typer
from tqdm import tqdm

from thpad.stages.common import DRY_RUN_OPTION, EXIT_CONFIG, PARAMS_OPTION, fail, read_params

log = logging.getLogger(__name__)
EPILOG = ("Example: thpad generate face.jpg speech.wav -o talk.mp4 --seed 3 --samples 3\n\n"
          "Options per prior: --seed, --samples, --guidance, --guidance-rescale, --sampler, --steps and --keyframe "
          "apply to the diffusion prior only (the AR prior is deterministic); DDPM always runs all its steps.")


def parse_keyframes(values: list[str]) -> dict[int, str]:
    """``["40=smile.jpg", ...]`` -> {40: "smile.jpg"}; a malformed entry exits with code 2."""
    out: dict[int, str] = {}
    for value in values:
        frame, sep, photo = value.partition("=")
        if not sep or not frame.strip().isdigit() or not photo:
            fail(f"--keyframe takes FRAME=PHOTO (e.g. 40=smile.jpg), got {value!r}", EXIT_CONFIG)
        out[int(frame)] = photo
    return out


def generate(
    image: Path = typer.Argument(..., help="The photo: JPEG, PNG, WebP or BMP, any size; one face (see --face)."),
    audio: Path = typer.Argument(..., help="The speech: wav, mp3, m4a, flac, ogg, or a video's sound track."),
    out: Path = typer.Option(..., "--out", "-o", help="The mp4 to write (OUT.json beside it)."),
    model: str = typer.Option("", help="A bundle folder (default: paths.bundle)."),
    prior: str = typer.Option("diffusion", help="diffusion (sampled) or ar (deterministic)."),
    sampler: str | None = typer.Option(None, help="ddpm or ddim (default: the bundle's)."),
    steps: int | None = typer.Option(None, help="DDIM steps (default: the bundle's)."),
    guidance: float | None = typer.Option(None, help="Classifier-free guidance s (default: the bundle's)."),
    guidance_rescale: float | None = typer.Option(None, help="Guidance rescale in [0, 1] (default: the bundle's)."),
    seed: int | None = typer.Option(None, help="Seed of the first sample (default 0)."),
    samples: int = typer.Option(1, help="K videos from K seeds plus a side-by-side grid at OUT."),
    keyframe: list[str] = typer.Option([], help="FRAME=PHOTO: pin frame FRAME to the photo's pose and expression."),
    no_anchor: bool = typer.Option(False, "--no-anchor", help="Do not pin frame 0 to the photo's own code."),
    nonlip_from: Path | None = typer.Option(None, help="Reenactment: non-lip motion from this driving video."),
    lip: str = typer.Option("audio", help="audio, or zero (a still mouth: the non-lip view)."),
    nonlip: str = typer.Option("sampled", help="sampled, or zero (only the lips move: the lip view)."),
    motion_scale: float | None = typer.Option(None, help="Head motion amount: 0 still, 1 as sampled "
                                                         "(default: generate.motion_scale, or "
                                                         "generate.paste_back_motion_scale with --paste-back)."),
    size: int | None = typer.Option(None, help="Resize the face video to PX (resizing, not added detail)."),
    paste_back: bool = typer.Option(False, "--paste-back", help="Put the face back into the original photo."),
    face: int | None = typer.Option(None, help="Which face of the photo: 0 = the largest."),
    params: Path = PARAMS_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Make a talking-head video: the lips follow AUDIO, head pose, expression, blinks and gaze are sampled from the
    audio-conditioned diffusion prior (a different seed gives a different video)."""
    cfg = read_params(params) if params.is_file() else None
    defaults = cfg.generate if cfg is not None else None
    bundle = model or (cfg.paths.bundle if cfg is not None else "data/bundle")
    scale = motion_scale if motion_scale is not None else (
        (defaults.paste_back_motion_scale if paste_back else defaults.motion_scale) if defaults else 1.0)
    options: dict[str, Any] = {
        "prior": prior, "sampler": sampler, "steps": steps, "guidance": guidance, "guidance_rescale": guidance_rescale,
        "seed": seed, "samples": samples, "keyframes": parse_keyframes(keyframe), "anchor": not no_anchor,
        "nonlip_from": str(nonlip_from) if nonlip_from else None, "lip": lip, "nonlip": nonlip,
        "motion_scale": scale, "face": face}
    if dry_run:
        typer.echo(json.dumps({"model": bundle, "image": str(image), "audio": str(audio), "out": str(out),
                               "size": size, "paste_back": paste_back, **options}, indent=2, default=str))
        return
    run_generate(bundle, image, audio, out, options, size, paste_back, defaults)


def run_generate(bundle: str, image: Path, audio: Path, out: Path, options: dict[str, Any], size: int | None,
                 paste_back: bool, defaults: Any) -> None:
    """Load, generate and save, turning every user error into exit code 2 with its message."""
    import thpad
    from thpad.pipelines.generate.inputs import InputError
    from thpad.pipelines.generate.settings import SettingsError
    from thpad.storage.bundle import BundleError

    start = time.perf_counter()
    try:
        loaded = thpad.load(bundle)
        log.info("loaded bundle %s (%s) in %.1f s", bundle, loaded.bundle.id, time.perf_counter() - start)
        result = loaded.generate(str(image), str(audio), max_seconds=defaults.max_seconds if defaults else None,
                                 **options)
        if size is not None and not paste_back:
            log.info("--size %d resizes the %d px face video (resizing, not added detail)", size, loaded.image_size)
        with tqdm(total=result.num_frames, desc="rendering", unit="frame") as bar:
            written = result.save(out, size=size, paste_back=paste_back, crf=defaults.crf if defaults else 18,
                                  progress=bar.update)
    except (InputError, SettingsError, BundleError) as err:
        fail(str(err), EXIT_CONFIG)
    seconds = time.perf_counter() - start
    typer.echo(f"wrote {written['video']} ({result.num_frames} frames, {len(result.audio) / result.sample_rate:.1f} s"
               f" of speech, {len(result.samples)} sample(s)) and {written['sidecar']} in {seconds:.1f} s")
