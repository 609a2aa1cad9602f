"""The TH-PAD talking-head network: the one place that states how E_id, E_v, E_a, the MLPs and G connect.

Wiring (TH-PAD Fig. 2; supplement §I.2):
    f_id, id_map = E_id(identity frames)            2048-d vector, 512×7×7 map
    f_v = E_v(driving frame); f_ol = MLP_ol(f_v); f_cl = MLP_cl(f_v); f_nl = MLP_nl(f_ol)   (42-d)
    f_a = E_a(0.2 s mel window); f_l = MLP_a2l(f_a)  (470-d)
    style = cat(f_id, f_nl, f_l)                     2048 + 42 + 470 = 2560
    image = G(id_map, style)                         (renderer "synthesis", the paper's)
    image = W(photo, id_map, cat(E_v(photo).f_nl, f_nl, f_l))   (renderer "warp": the photo's pixels moved,
                                                      models/generator/warp.py)
In training f_nl comes from the driving frame; at inference it comes from the diffusion prior and
the visual branch is not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from thpad.codec import from_dict, to_dict
from thpad.models.audio_encoder import AUDIO_PRESETS, AudioEncoder, AudioEncoderConfig
from thpad.models.generator.layers import NoiseMode
from thpad.models.generator.synthesis import GENERATOR_PRESETS, Generator, GeneratorConfig
from thpad.models.generator.warp import WARP_PRESETS, WarpFields, WarpRenderer, WarpRendererConfig, compose
from thpad.models.identity_encoder import IDENTITY_PRESETS, IdentityEncoder, IdentityEncoderConfig
from thpad.models.mlp import MLP, MLPConfig
from thpad.models.shapes import assert_shape
from thpad.models.visual_encoder import VISUAL_PRESETS, VisualEncoder, VisualEncoderConfig


@dataclass(frozen=True)
class TalkingHeadConfig:
    """Configs of all parts; the style width is derived here and nowhere else (``style_dim``).

    ``lip_source`` chooses what MLP_a2l reads in training: "audio" (f_a, as Fig. 2 draws it) or
    "visual_cl" (f_cl, the supplement's wording "f_cl ... mapped to lip features through MLP_a2l").
    Inference always reads f_a, since no driving video exists then; L_cl makes the two spaces agree.

    ``renderer`` chooses what draws the image from the style: "synthesis", the paper's StyleGAN2 generator started
    from E_id's map (``generator``), or "warp", which moves the identity frame's pixels (``warp``; the first
    identity frame when several are given). Both are called with the same style vector; the warp reads its motion
    part, cat(f_nl, f_l), after the photo's own f_nl (where the face starts), and sees the identity in the photo's
    pixels and E_id's map.
    """

    identity: IdentityEncoderConfig = field(default_factory=IdentityEncoderConfig)
    visual: VisualEncoderConfig = field(default_factory=VisualEncoderConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    a2l: MLPConfig = field(default_factory=lambda: MLPConfig(512, 470, hidden_dim=None, input_relu=True))
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    renderer: Literal["synthesis", "warp"] = "synthesis"
    warp: WarpRendererConfig = field(default_factory=WarpRendererConfig)
    lip_source: Literal["audio", "visual_cl"] = "audio"

    def __post_init__(self) -> None:
        checks = {
            "visual.image_size == identity.image_size": self.visual.image_size == self.identity.image_size,
            "generator.out_size == identity.image_size": self.generator.out_size == self.identity.image_size,
            "generator.channels[0] == identity.map_channels":
                self.generator.channels[0] == self.identity.map_channels,
            "generator.start_size == identity.map_size": self.generator.start_size == self.identity.map_size,
            "visual.cl.out_dim == audio.out_dim (L_cl)": self.visual.cl.out_dim == self.audio.out_dim,
            "visual.ol.out_dim == audio.out_dim (L_ol)": self.visual.ol.out_dim == self.audio.out_dim,
            "a2l.in_dim == audio.out_dim": self.a2l.in_dim == self.audio.out_dim,
        }
        if self.renderer == "warp":
            checks |= {"warp.image_size == identity.image_size": self.warp.image_size == self.identity.image_size,
                       "warp.map_channels == identity.map_channels":
                           self.warp.map_channels == self.identity.map_channels,
                       "warp.map_size == identity.map_size": self.warp.map_size == self.identity.map_size}
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"inconsistent TalkingHeadConfig: {failed[0]}")

    @property
    def nl_dim(self) -> int:
        """Non-lip code width (42)."""
        return self.visual.nl.out_dim

    @property
    def lip_dim(self) -> int:
        """Lip code width (470 in the paper)."""
        return self.a2l.out_dim

    @property
    def warp_code_dim(self) -> int:
        """Width of the warping renderer's motion code cat(f_nl of the photo, f_nl, f_l)."""
        return 2 * self.nl_dim + self.lip_dim

    @property
    def style_dim(self) -> int:
        """Width of f_cat = cat(f_id, f_nl, f_l): 2048 + 42 + 470 = 2560 in the paper."""
        return self.identity.id_dim + self.nl_dim + self.lip_dim


TALKING_HEAD_PRESETS: dict[str, TalkingHeadConfig] = {
    "paper": TalkingHeadConfig(),
    "tiny": TalkingHeadConfig(
        identity=IDENTITY_PRESETS["tiny"], visual=VISUAL_PRESETS["tiny"], audio=AUDIO_PRESETS["tiny"],
        a2l=MLPConfig(32, 32, hidden_dim=None, input_relu=True), generator=GENERATOR_PRESETS["tiny"],
        warp=WARP_PRESETS["tiny"],
    ),
}


class TalkingHeadOutput(NamedTuple):
    """Every feature of one training forward pass plus the generated image."""

    f_id: torch.Tensor  # (B, 2048)
    id_map: torch.Tensor  # (B, 512, 7, 7)
    f_v: torch.Tensor  # (B, 512)
    f_ol: torch.Tensor  # (B, 512)
    f_cl: torch.Tensor  # (B, 512)
    f_nl: torch.Tensor  # (B, 42)
    f_a: torch.Tensor  # (B, 512)
    f_l: torch.Tensor  # (B, 470)
    style: torch.Tensor  # (B, 2560)
    image: torch.Tensor  # (B, 3, 224, 224)
    warp: WarpFields | None = None  # the warping renderer's affine map, flow, mask and fill; None for "synthesis"


class TalkingHead(nn.Module):
    """E_id, E_v with its heads, E_a, MLP_a2l and G, wired as in TH-PAD Fig. 2."""

    def __init__(self, cfg: TalkingHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.identity_encoder = IdentityEncoder(cfg.identity)
        self.visual_encoder = VisualEncoder(cfg.visual)
        self.audio_encoder = AudioEncoder(cfg.audio)
        self.mlp_a2l = MLP(cfg.a2l)
        self.generator: Generator | WarpRenderer = (
            WarpRenderer(cfg.warp, cfg.warp_code_dim) if cfg.renderer == "warp"
            else Generator(cfg.generator, cfg.style_dim))

    def load_pretrained(self, identity: str | None = None, visual: str | None = None) -> None:
        """Load the optional ImageNet/LPD weight files of E_id and E_v (None keeps random init)."""
        self.identity_encoder.load_pretrained(identity)
        self.visual_encoder.load_pretrained(visual)

    def encode_identity(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E_id.

        Args:
            frames: (B, K, 3, H, W) or (B, 3, H, W) reference frames in [-1, 1].
        Returns:
            f_id (B, 2048) and id_map (B, 512, 7, 7).
        """
        return self.identity_encoder(frames)

    def encode_audio(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E_a and MLP_a2l.

        Args:
            mel: (B, 1, 80, 20) mel windows.
        Returns:
            f_a (B, 512) and f_l (B, 470).
        """
        f_a = self.audio_encoder(mel)
        return f_a, self.mlp_a2l(f_a)

    def make_style(self, f_id: torch.Tensor, f_nl: torch.Tensor, f_l: torch.Tensor) -> torch.Tensor:
        """f_cat = cat(f_id, f_nl, f_l).

        Args:
            f_id: (B, 2048); f_nl: (B, 42); f_l: (B, 470).
        Returns:
            (B, 2560) style vector.
        """
        B, cfg = f_id.shape[0], self.cfg
        assert_shape(f_id, (B, cfg.identity.id_dim), "f_id")
        assert_shape(f_nl, (B, cfg.nl_dim), "f_nl")
        assert_shape(f_l, (B, cfg.lip_dim), "f_l")
        return torch.cat([f_id, f_nl, f_l], dim=1)  # (B, style_dim)

    def render(self, source: torch.Tensor, id_map: torch.Tensor, style: torch.Tensor,
               noise_mode: NoiseMode = "random", source_nl: torch.Tensor | None = None) -> torch.Tensor:
        """The renderer on a style vector: G(id_map, style), or for "warp" W(photo, id_map, motion code).

        Args:
            source: (B, K, 3, H, W) or (B, 3, H, W) identity frames in [-1, 1] (the warp moves the first).
            id_map: (B, C, s, s); style: (B, style_dim).
            source_nl: (B, nl_dim) E_v's f_nl of the moved photo, when already known (the warp computes it if
                None; the synthesis generator ignores it).
        Returns:
            (B, 3, H, W) images in [-1, 1].
        """
        return self.render_fields(source, id_map, style, noise_mode, source_nl)[0]

    def render_fields(self, source: torch.Tensor, id_map: torch.Tensor, style: torch.Tensor,
                      noise_mode: NoiseMode = "random",
                      source_nl: torch.Tensor | None = None) -> tuple[torch.Tensor, WarpFields | None]:
        """``render``'s image (B, 3, H, W) with the warping renderer's fields (None for "synthesis"); arguments as
        in ``render``."""
        if not isinstance(self.generator, WarpRenderer):
            return self.generator(id_map, style, noise_mode), None
        photo = source[:, 0] if source.dim() == 5 else source  # (B, 3, H, W)
        if source_nl is None:
            source_nl = self.visual_encoder(photo).f_nl  # (B, nl_dim)
        code = torch.cat([source_nl, style[:, self.cfg.identity.id_dim:]], dim=1)  # (B, 2 nl_dim + lip_dim)
        fields = self.generator.fields(photo, id_map, code, noise_mode)
        return compose(photo, fields), fields

    def synthesize(
        self, source: torch.Tensor, f_id: torch.Tensor, id_map: torch.Tensor, f_nl: torch.Tensor,
        f_l: torch.Tensor, noise_mode: NoiseMode = "random", source_nl: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The renderer on cat(f_id, f_nl, f_l). ``source`` and ``source_nl`` as in ``render``, the codes as in
        ``make_style``; returns (B, 3, 224, 224)."""
        return self.render(source, id_map, self.make_style(f_id, f_nl, f_l), noise_mode, source_nl)

    def forward(
        self, identity_frames: torch.Tensor, driving_frames: torch.Tensor, mel: torch.Tensor,
        noise_mode: NoiseMode = "random",
    ) -> TalkingHeadOutput:
        """Training pass: non-lip code from the driving frame, lip code from audio (or f_cl, see config).

        Args:
            identity_frames: (B, K, 3, H, W) or (B, 3, H, W) reference frames in [-1, 1].
            driving_frames: (B, 3, H, W) target frames in [-1, 1].
            mel: (B, 1, 80, 20) mel window centred on the target frame.
            noise_mode: generator noise, "random" or "none".
        Returns:
            TalkingHeadOutput with all features and the (B, 3, H, W) image.
        """
        f_id, id_map = self.encode_identity(identity_frames)
        visual = self.visual_encoder(driving_frames)
        f_a = self.audio_encoder(mel)
        f_l = self.mlp_a2l(visual.f_cl if self.cfg.lip_source == "visual_cl" else f_a)
        style = self.make_style(f_id, visual.f_nl, f_l)
        image, fields = self.render_fields(identity_frames, id_map, style, noise_mode)  # (B, 3, H, W), fields
        return TalkingHeadOutput(
            f_id, id_map, visual.f_v, visual.f_ol, visual.f_cl, visual.f_nl, f_a, f_l, style, image, fields
        )

    def infer(
        self, identity_frames: torch.Tensor, f_nl: torch.Tensor, mel: torch.Tensor,
        noise_mode: NoiseMode = "random",
    ) -> torch.Tensor:
        """Inference: f_nl is given (from the prior), the lip code comes from audio.

        Args:
            identity_frames: (B, K, 3, H, W) or (B, 3, H, W) reference frames in [-1, 1].
            f_nl: (B, 42) non-lip codes.
            mel: (B, 1, 80, 20) mel windows.
            noise_mode: generator noise, "random" or "none".
        Returns:
            (B, 3, H, W) images in [-1, 1].
        """
        f_id, id_map = self.encode_identity(identity_frames)
        _, f_l = self.encode_audio(mel)
        return self.synthesize(identity_frames, f_id, id_map, f_nl, f_l, noise_mode)


def talking_head_snapshot_config(cfg: TalkingHeadConfig) -> dict[str, Any]:
    """The JSON config of a ``TalkingHead`` snapshot (``save_snapshot``): ``{"talking_head": ...}``."""
    return {"talking_head": to_dict(cfg)}


def build_talking_head(config: Mapping[str, Any]) -> TalkingHead:
    """A freshly initialised ``TalkingHead`` from a snapshot config (see ``talking_head_snapshot_config``)."""
    return TalkingHead(from_dict(TalkingHeadConfig, config["talking_head"]))
