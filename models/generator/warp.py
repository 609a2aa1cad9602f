"""A warping renderer: the source photo's pixels moved by a dense flow, with an occlusion mask and a synthesised
fill, all predicted from a motion code.

The synthesis generator (``synthesis.py``) paints every pixel from a code, so a face it has not trained on comes
out as the faces it has. This renderer keeps the photo's own pixels where they are visible and moves them. Its
code ``motion`` says where the face is in the photo and where it should go (the talking head passes the photo's
f_nl, the target's f_nl and the lip code f_l):

    theta = I + a tanh(Linear(motion))               a global affine map (the head's rigid motion), 2x3, a = max_affine
    feats = U-Net encoder(source)                    (B, c_k, S/2^k, S/2^k) for k = 0..depth
    x = StyledConv(cat(feats[depth], id_map), motion) at the coarsest scale, then per finer scale
    x = StyledConv(cat(upsample(x), feats[k]), motion)
    flow (bounded by max_flow), occlusion at ``flow_level`` (a smooth, coarse field), upsampled to S
    out = m * source(affine_grid(theta) + flow) + (1 - m) * tanh(rgb)          m = sigmoid(occlusion)

The affine map starts at the identity, the flow at zero and the mask at mostly-warp, so an untrained renderer
returns the photo itself (the copy-the-photo baseline) rather than noise. This is the dense motion + occlusion idea
of FOMM, LIA and LivePortrait, driven by TH-PAD's codes instead of keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from thpad.models.generator.layers import NoiseMode, StyledConv
from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class WarpRendererConfig:
    """Widths of the warping renderer.

    ``channels[k]`` is the width at ``image_size / 2^k``; the coarsest level must match the identity map's size,
    whose ``map_channels`` join the bottleneck. ``flow_level`` is the level whose features predict the flow and the
    mask (1: half resolution, upsampled bilinearly). ``mask_bias`` starts the mask at sigmoid(bias) of warped
    pixels. ``max_affine`` bounds each entry of theta - I and ``max_flow`` each flow component (tanh, in [-1, 1]
    image coordinates): a map that samples wholly outside the photo gets no gradient back (the border repeats), and
    unbounded heads were seen to jump there and stay. A tanh driven deep into saturation passes no gradient either, so
    the fields expose the logits under the bounds (``WarpFields.bounded``) for a loss that keeps them in range.
    """

    image_size: int = 224
    channels: tuple[int, ...] = (32, 64, 128, 256, 512, 512)  # 224, 112, 56, 28, 14, 7
    map_channels: int = 512
    flow_level: int = 1
    mask_bias: float = 3.0
    max_affine: float = 0.5
    max_flow: float = 0.25
    kernel_size: int = 3

    @property
    def map_size(self) -> int:
        """Side length of the coarsest level (E_id's map must have it)."""
        return self.image_size // 2 ** (len(self.channels) - 1)

    def __post_init__(self) -> None:
        if self.image_size % 2 ** (len(self.channels) - 1) or not 0 <= self.flow_level < len(self.channels):
            raise ValueError(f"image_size must halve {len(self.channels) - 1} times and flow_level index a level, "
                             f"got {self}")
        if self.max_affine <= 0 or self.max_flow <= 0:
            raise ValueError(f"max_affine and max_flow must be > 0, got {self}")


WARP_PRESETS: dict[str, WarpRendererConfig] = {
    "paper": WarpRendererConfig(),  # sized for the paper's 224 px and E_id's 512x7x7 map (not the paper's renderer)
    "tiny": WarpRendererConfig(image_size=56, channels=(16, 32, 48, 64), map_channels=32),  # 56, 28, 14, 7
}


def down_block(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """conv 3x3 (stride 1 or 2) + leaky ReLU + conv 3x3 + leaky ReLU."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(out_ch, out_ch, 3, 1, 1), nn.LeakyReLU(0.2))


def zero_conv(in_ch: int, out_ch: int, bias: float = 0.0) -> nn.Conv2d:
    """A 3x3 conv that starts at the constant ``bias`` (zero weights)."""
    conv = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
    nn.init.zeros_(conv.weight)
    nn.init.constant_(conv.bias, bias)
    return conv


IDENTITY_AFFINE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # theta, row-major 2x3


def warp_image(source: torch.Tensor, flow: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
    """``source`` (B, C, S, S) sampled at the affine map ``theta`` (B, 2, 3; the identity when None) of each output
    pixel plus ``flow`` (B, 2, S, S), in grid_sample's [-1, 1] (x, y) coordinates; bilinear, edges repeated."""
    B, C, S, _ = source.shape
    if theta is None:
        theta = source.new_tensor(IDENTITY_AFFINE).view(1, 2, 3).expand(B, 2, 3)
    grid = F.affine_grid(theta, [B, C, S, S], align_corners=False) + flow.permute(0, 2, 3, 1)  # (B, S, S, 2)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pixel_to_grid(points: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinates (pixel centres at integers) of a ``size``-px image -> grid_sample's [-1, 1]
    (align_corners=False); any shape (..., 2) of (x, y)."""
    return (2 * points + 1) / size - 1


class WarpFields(NamedTuple):
    """What the renderer predicts for one batch, before composing the image."""

    theta: torch.Tensor  # (B, 2, 3) the global affine map, output coordinates -> source coordinates
    flow: torch.Tensor  # (B, 2, S, S) the residual flow in [-1, 1] (x, y) units, bounded by max_flow
    mask: torch.Tensor  # (B, 1, S, S) 1 = the warped photo, 0 = the fill
    fill: torch.Tensor  # (B, 3, S, S) the synthesised pixels, in [-1, 1]
    bounded: torch.Tensor | None = None  # (B, 6 + 2 s'^2) the logits under the tanh bounds: theta's, the flow's


def compose(source: torch.Tensor, fields: WarpFields) -> torch.Tensor:
    """The rendered image: mask * source warped by (theta, flow) + (1 - mask) * fill; (B, 3, S, S)."""
    warped = warp_image(source, fields.flow, fields.theta)  # (B, 3, S, S)
    return fields.mask * warped + (1 - fields.mask) * fields.fill  # (B, 3, S, S)


def source_points(fields: WarpFields, points: torch.Tensor) -> torch.Tensor:
    """Where in the photo the rendered image reads its pixels at ``points``: (B, N, 2) output points in grid
    coordinates ([-1, 1], x then y) -> (B, N, 2) source points in the same units (theta applied, plus the flow
    sampled bilinearly at the points). A perfect warp maps a driving frame's landmarks onto the photo's."""
    B, N, _ = points.shape
    ones = points.new_ones(B, N, 1)
    rigid = torch.cat([points, ones], dim=2) @ fields.theta.transpose(1, 2)  # (B, N, 2)
    flow = F.grid_sample(fields.flow, points[:, :, None], mode="bilinear", padding_mode="border",
                         align_corners=False)  # (B, 2, N, 1)
    return rigid + flow[..., 0].transpose(1, 2)  # (B, N, 2)


class WarpRenderer(nn.Module):
    """Source photo, identity map and motion code -> image in [-1, 1] (see the module docstring)."""

    def __init__(self, cfg: WarpRendererConfig, style_dim: int) -> None:
        super().__init__()
        self.cfg, self.style_dim = cfg, style_dim
        ch, k = cfg.channels, cfg.kernel_size
        self.affine = nn.Linear(style_dim, 6)  # theta - I
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)
        self.encoder = nn.ModuleList(down_block(3 if i == 0 else ch[i - 1], c, 1 if i == 0 else 2)
                                     for i, c in enumerate(ch))
        self.bottleneck = StyledConv(ch[-1] + cfg.map_channels, ch[-1], k, style_dim)
        self.decoder = nn.ModuleList(StyledConv(ch[i + 1] + ch[i], ch[i], k, style_dim)
                                     for i in reversed(range(len(ch) - 1)))
        self.motion = zero_conv(ch[cfg.flow_level], 3)  # flow (2) and occlusion logit (1)
        with torch.no_grad():
            self.motion.bias[2] = cfg.mask_bias
        self.fill = nn.Conv2d(ch[0], 3, 3, 1, 1)

    def forward(self, source: torch.Tensor, id_map: torch.Tensor, style: torch.Tensor,
                noise_mode: NoiseMode = "random") -> torch.Tensor:
        """Render: ``compose(source, self.fields(...))``, (B, 3, S, S) images in [-1, 1] (arguments as in
        ``fields``)."""
        return compose(source, self.fields(source, id_map, style, noise_mode))

    def fields(self, source: torch.Tensor, id_map: torch.Tensor, style: torch.Tensor,
               noise_mode: NoiseMode = "random") -> WarpFields:
        """The affine map, flow, mask and fill for a batch.

        Args:
            source: (B, 3, S, S) the identity frame in [-1, 1].
            id_map: (B, map_channels, s, s) E_id's map at the coarsest level.
            style: (B, style_dim) the motion code.
            noise_mode: noise of the styled convs, "random" or "none".
        """
        cfg, B = self.cfg, style.shape[0]
        S, s = cfg.image_size, cfg.map_size
        assert_shape(source, (B, 3, S, S), "source")
        assert_shape(id_map, (B, cfg.map_channels, s, s), "id_map")
        assert_shape(style, (B, self.style_dim), "style")
        feats, x = [], source
        for block in self.encoder:
            x = block(x)  # (B, c_k, S/2^k, S/2^k)
            feats.append(x)
        x = self.bottleneck(torch.cat([feats[-1], id_map], dim=1), style, noise_mode)  # (B, c_last, s, s)
        motion = self.motion(x) if cfg.flow_level == len(feats) - 1 else None  # (B, 3, s, s)
        for level, conv in zip(reversed(range(len(feats) - 1)), self.decoder, strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = conv(torch.cat([x, feats[level]], dim=1), style, noise_mode)  # (B, c_level, S/2^level, ...)
            if level == cfg.flow_level:
                motion = self.motion(x)  # (B, 3, S/2^level, S/2^level)
        assert motion is not None
        logits = motion  # (B, 3, s', s') at the flow level
        motion = F.interpolate(motion, size=(S, S), mode="bilinear", align_corners=False)  # (B, 3, S, S)
        mask = torch.sigmoid(motion[:, 2:])  # (B, 1, S, S): 1 = the warped photo
        affine = self.affine(style)  # (B, 6)
        offset = cfg.max_affine * torch.tanh(affine).view(B, 2, 3)  # (B, 2, 3)
        theta = offset + style.new_tensor(IDENTITY_AFFINE).view(1, 2, 3)  # (B, 2, 3)
        flow = cfg.max_flow * torch.tanh(motion[:, :2])  # (B, 2, S, S)
        bounded = torch.cat([affine, logits[:, :2].flatten(1)], dim=1)  # (B, 6 + 2 s'^2)
        return WarpFields(theta, flow, mask, torch.tanh(self.fill(x)), bounded)
