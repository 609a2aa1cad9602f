"""LPD's driving-frame augmentation (pipelines/train/augment.py): off means untouched, on changes every frame
independently while keeping shape and range, a seed replays it, and the stretch/shift moves content where
it says."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from thpad.pipelines.train.disentangle.augment import AugmentConfig, augment_frames, pixel_ops, stretch_and_shift

OFF = AugmentConfig(max_pixel_ops=0, affine_prob=0.0)


def frames(batch: int = 6, size: int = 32) -> torch.Tensor:
    """Smooth random frames in [-1, 1] (a blurred noise field, so blur and sharpening have work to do)."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(batch, 3, size // 4, size // 4, generator=gen)
    return torch.nn.functional.interpolate(noise, size=size, mode="bilinear", align_corners=False) * 2 - 1


def test_switched_off_returns_the_frames() -> None:
    x = frames()
    assert torch.equal(augment_frames(x, OFF), x)


def test_every_pixel_op_keeps_shape_and_range_and_changes_the_frame() -> None:
    torch.manual_seed(1)
    frame = (frames(1)[0] + 1) / 2  # (3, S, S) in [0, 1]
    ops = pixel_ops(dataclasses.replace(AugmentConfig(), noise_std=(0.05, 0.05), sharpness=(3.0, 3.0),
                                        brightness=(0.6, 0.6), contrast=(0.7, 0.7), saturation=(0.5, 0.5),
                                        jpeg_quality=(10, 10), elastic_alpha=20.0))
    for i, op in enumerate(ops):
        out = op(frame)
        assert out.shape == frame.shape and out.dtype == frame.dtype, i
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0, i
        assert float((out - frame).abs().mean()) > 1e-3, i


def test_strong_augmentation_changes_each_frame_differently_and_replays_with_the_seed() -> None:
    x = frames()
    strong = AugmentConfig(max_pixel_ops=5, affine_prob=1.0)
    torch.manual_seed(7)
    a = augment_frames(x, strong)
    torch.manual_seed(7)
    b = augment_frames(x, strong)
    assert torch.equal(a, b)
    assert a.shape == x.shape and float(a.min()) >= -1.0 and float(a.max()) <= 1.0
    change = (a - x).abs().mean(dim=(1, 2, 3))  # (B,)
    assert bool((change > 1e-3).all())
    assert len({round(float(c), 5) for c in change}) == len(x)  # independent draws per frame


def test_stretch_and_shift_moves_a_dot_and_stretches_an_axis() -> None:
    size = 33
    dot = torch.zeros(1, size, size)
    dot[0, 16, 16] = 1.0  # the centre pixel
    moved = stretch_and_shift(dot, 1.0, 1.0, dx=3.0, dy=-2.0)
    assert divmod(int(moved.argmax()), size) == (14, 19)  # (row, column): up 2, right 3
    bar = torch.zeros(1, size, size)
    bar[0, :, 12:21] = 1.0  # a vertical bar 9 px wide
    wide = stretch_and_shift(bar, 1.5, 1.0, 0.0, 0.0)
    assert float(wide[0, 16].sum()) == pytest.approx(13.5, abs=1.5)  # 1.5x wider
    assert float(wide[0, :, 16].sum()) == pytest.approx(size, abs=0.5)  # still full height


def test_config_refuses_out_of_range_settings() -> None:
    with pytest.raises(ValueError, match="max_pixel_ops"):
        AugmentConfig(max_pixel_ops=9)
    with pytest.raises(ValueError, match="translate"):
        AugmentConfig(scale=(0.3, 1.0))
