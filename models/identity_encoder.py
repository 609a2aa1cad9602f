"""Identity encoder E_id: ResNeXt-50 32×4d giving f_id and the generator's 512×7×7 input map.

TH-PAD uses "a pretrained ResNeXt50" (supplement §I.2). Following PC-AVS's identity encoder
(docs/paper-notes.md §2.3), the 2048-d global-average-pooled layer4 feature is f_id and a 1×1 conv on the
layer4 map, adaptive-average-pooled to 7×7, replaces StyleGAN2's constant input. Several reference
frames of one person are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from thpad.models.pretrained import PretrainedSpec, imagenet_normalize, load_pretrained
from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class IdentityEncoderConfig:
    """Sizes of E_id; ``paper`` is torchvision's ResNeXt-50 32×4d at 224×224.

    ``use_maxpool`` and ``dilate_layer4`` keep the layer4 map at 7×7 for 56×56 inputs in ``tiny``
    (total stride 8 instead of 32) by torchvision's own ``replace_stride_with_dilation``; the paper
    preset uses neither. ``base_planes`` narrows every layer (torchvision's 64: the paper); ``tiny`` uses 16 so
    that E_id, otherwise stage 2's slowest network on a CPU, costs about what G costs. The ImageNet classifier
    head is dropped: TH-PAD lists no identity classification loss (PC-AVS had one), so ``fc.*`` keys of a
    weights file are ignored.
    """

    image_size: int = 224
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    groups: int = 32
    width_per_group: int = 4
    use_maxpool: bool = True
    dilate_layer4: bool = False
    map_channels: int = 512
    map_size: int = 7
    base_planes: int = 64  # torchvision's stem width; layer k has base_planes·2^(k-1) planes

    @property
    def id_dim(self) -> int:
        """Width of f_id: 8·base_planes × Bottleneck.expansion (2048 for torchvision's ResNeXt-50)."""
        return 8 * self.base_planes * Bottleneck.expansion


IDENTITY_PRESETS: dict[str, IdentityEncoderConfig] = {
    "paper": IdentityEncoderConfig(),
    "tiny": IdentityEncoderConfig(
        image_size=56, blocks=(1, 1, 1, 1), groups=8, width_per_group=4,
        use_maxpool=False, dilate_layer4=True, map_channels=32,
        base_planes=16,  # f_id 512: a quarter of the widths, 11x faster (stage 2's slowest network at 64)
    ),
}


TORCHVISION_BASE_PLANES = 64


def narrow_backbone(net: ResNet, cfg: IdentityEncoderConfig) -> None:
    """Rebuild the stem and the four layers of ``net`` with ``cfg.base_planes`` instead of torchvision's 64 (same
    module names, so the structure of a state_dict is unchanged), initialised as torchvision initialises them."""
    base = cfg.base_planes
    net.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(base)
    net.inplanes, net.dilation = base, 1
    net.layer1 = net._make_layer(Bottleneck, base, cfg.blocks[0])
    net.layer2 = net._make_layer(Bottleneck, 2 * base, cfg.blocks[1], stride=2)
    net.layer3 = net._make_layer(Bottleneck, 4 * base, cfg.blocks[2], stride=2)
    net.layer4 = net._make_layer(Bottleneck, 8 * base, cfg.blocks[3], stride=2, dilate=cfg.dilate_layer4)
    for module in (net.conv1, net.bn1, net.layer1, net.layer2, net.layer3, net.layer4):
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class IdentityEncoder(nn.Module):
    """E_id: frames of one person → pooled identity vector f_id and the identity feature map."""

    pretrained_spec: ClassVar[PretrainedSpec] = PretrainedSpec(
        prefix="backbone.", ignore=("fc.*",), new=("to_map.*",)
    )

    def __init__(self, cfg: IdentityEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet(
            Bottleneck, list(cfg.blocks), groups=cfg.groups, width_per_group=cfg.width_per_group,
            replace_stride_with_dilation=[False, False, cfg.dilate_layer4],
        )
        self.backbone.fc = nn.Identity()  # classifier head unused (see config docstring)
        if cfg.base_planes != TORCHVISION_BASE_PLANES:
            narrow_backbone(self.backbone, cfg)
        if not cfg.use_maxpool:
            self.backbone.maxpool = nn.Identity()
        self.to_map = nn.Conv2d(cfg.id_dim, cfg.map_channels, kernel_size=1)

    def load_pretrained(self, path: str | None) -> bool:
        """Load torchvision ResNeXt weights (``fc.*`` dropped, ``to_map`` new); None keeps random init."""
        return load_pretrained(self, path, self.pretrained_spec)

    def _layer4(self, images: torch.Tensor) -> torch.Tensor:
        net = self.backbone
        x = net.maxpool(net.relu(net.bn1(net.conv1(imagenet_normalize(images)))))
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))  # (N, id_dim, h, w)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode reference frames, averaging over the K frames of each sample.

        Args:
            frames: (B, K, 3, H, W) or (B, 3, H, W) images in [-1, 1].
        Returns:
            f_id: (B, id_dim) pooled identity vector; id_map: (B, map_channels, map_size, map_size).
        """
        cfg = self.cfg
        if frames.ndim == 4:
            frames = frames.unsqueeze(1)  # (B, 1, 3, H, W)
        assert_shape(frames, (None, None, 3, cfg.image_size, cfg.image_size), "identity frames")
        B, K = frames.shape[:2]
        feat = self._layer4(frames.flatten(0, 1))  # (B*K, 2048, h, w)
        feat = feat.view(B, K, *feat.shape[1:]).mean(dim=1)  # (B, 2048, h, w)
        f_id = feat.mean(dim=(2, 3))  # (B, 2048)
        id_map = F.adaptive_avg_pool2d(self.to_map(feat), cfg.map_size)  # (B, map_channels, 7, 7)
        return f_id, id_map
