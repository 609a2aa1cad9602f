"""One forward pass of every network at batch size 1, with parameter counts and tensor shapes: what
``thpad models`` prints and what ``benchmarks/models.py`` times."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from thpad.models.generator.discriminator import DISCRIMINATOR_PRESETS, MultiscaleDiscriminator
from thpad.models.generator.synthesis import Generator
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser, MotionDenoiserConfig
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead

MODULE_NAMES = ("identity_encoder", "visual_encoder", "audio_encoder", "generator", "discriminator", "prior",
                "ar_prior")


@dataclass
class ModuleCase:
    """A network with example inputs (batch 1) for one forward pass."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    call: Callable[[nn.Module, dict[str, torch.Tensor]], object]


def ar_prior_config(cfg: MotionDenoiserConfig) -> MotionDenoiserConfig:
    """The auto-regressive prior: the same transformer, causal and without a diffusion timestep."""
    return dataclasses.replace(cfg, causal=True, use_timestep=False)


def build_cases(preset: str, frames: int | None = None) -> dict[str, ModuleCase]:
    """Every network of ``preset`` with random batch-1 inputs; ``frames`` defaults to the prior's window."""
    head = TalkingHead(TALKING_HEAD_PRESETS[preset])
    cfg = head.cfg
    size, prior_cfg = cfg.identity.image_size, DENOISER_PRESETS[preset]
    T = frames or prior_cfg.max_frames
    image = torch.randn(1, 3, size, size)  # (1, 3, S, S)
    mel = torch.randn(1, 1, cfg.audio.n_mels, cfg.audio.n_frames)  # (1, 1, 80, 20)
    id_map = torch.randn(1, cfg.identity.map_channels, cfg.identity.map_size, cfg.identity.map_size)
    motion = {"x_t": torch.randn(1, T, prior_cfg.nl_dim), "audio": torch.randn(1, T, prior_cfg.audio_dim)}
    return {
        "identity_encoder": ModuleCase(head.identity_encoder, {"frames": image},
                                       lambda m, x: dict(zip(("f_id", "id_map"), m(x["frames"]), strict=True))),
        "visual_encoder": ModuleCase(head.visual_encoder, {"frames": image}, lambda m, x: m(x["frames"])),
        "audio_encoder": ModuleCase(head.audio_encoder, {"mel": mel}, lambda m, x: {"f_a": m(x["mel"])}),
        "generator": ModuleCase(Generator(cfg.generator, cfg.style_dim),
                                {"id_map": id_map, "style": torch.randn(1, cfg.style_dim)},
                                lambda m, x: {"image": m(x["id_map"], x["style"])}),
        "discriminator": ModuleCase(MultiscaleDiscriminator(DISCRIMINATOR_PRESETS[preset]), {"images": image},
                                    lambda m, x: {f"logits_scale{i}": s.logits for i, s in enumerate(m(x["images"]))}),
        "prior": ModuleCase(MotionDenoiser(prior_cfg), {**motion, "t": torch.tensor([500])},
                            lambda m, x: {"x0": m(x["x_t"], x["t"], x["audio"])}),
        "ar_prior": ModuleCase(MotionDenoiser(ar_prior_config(prior_cfg)), motion,
                               lambda m, x: {"next_frames": m(x["x_t"], None, x["audio"])}),
    }


def _shapes(value: object, prefix: str = "out") -> dict[str, list[int]]:
    if isinstance(value, torch.Tensor):
        return {prefix: list(value.shape)}
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {k: s for name, v in value.items() for k, s in _shapes(v, name).items()}
    if isinstance(value, list | tuple):
        return {k: s for i, v in enumerate(value) for k, s in _shapes(v, f"{prefix}{i}").items()}
    return {}


def summarize(preset: str) -> dict[str, dict]:
    """Per module: ``params`` (count), ``inputs`` and ``outputs`` (name -> shape list) at batch 1."""
    summary = {}
    for name, case in build_cases(preset).items():
        case.module.eval()
        with torch.no_grad():
            out = case.call(case.module, case.inputs)
        summary[name] = {
            "params": sum(p.numel() for p in case.module.parameters()),
            "inputs": {k: list(v.shape) for k, v in case.inputs.items()},
            "outputs": _shapes(out),
        }
    return summary
