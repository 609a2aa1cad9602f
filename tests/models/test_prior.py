"""Tests of the motion prior network (models/motion_denoiser.py) and the AR prior (models/autoregressive.py):
shapes, determinism, config and checkpoint round trips, paper sizes, causality, padding, condition dropout."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.autoregressive import (
    AutoregressiveConfig,
    ar_sample,
    ar_sample_long,
    ar_training_loss,
    shift_right,
)
from thpad.models.diffusion import iter_chained_chunks, stitch_chunks
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser, MotionDenoiserConfig
from thpad.models.shapes import assert_shape

TINY = DENOISER_PRESETS["tiny"]
TINY_AR = dataclasses.replace(TINY, causal=True, use_timestep=False)
N, A = TINY.nl_dim, TINY.audio_dim


def build(cfg: MotionDenoiserConfig = TINY, seed: int = 0) -> MotionDenoiser:
    torch.manual_seed(seed)
    return MotionDenoiser(cfg).eval()


def inputs(B: int = 2, T: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "x_t": torch.randn(B, T, N, generator=g),
        "t": torch.randint(0, 1000, (B,), generator=g),
        "audio": torch.randn(B, T, A, generator=g),
        "known_mask": torch.rand(B, T, generator=g) < 0.2,
        "known": torch.randn(B, T, N, generator=g),
    }


def test_output_shape_and_determinism():
    x = inputs()
    out = build()(**x)
    assert_shape(out, (2, 16, N), "x0")
    assert torch.equal(out, build()(**x))
    assert not torch.equal(out, build(seed=1)(**x))


def test_config_round_trip():
    for cfg in (*DENOISER_PRESETS.values(), TINY_AR):
        assert from_dict(MotionDenoiserConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_checkpoint_round_trip(tmp_path):
    net, x = build(), inputs()
    torch.save({"config": to_dict(net.cfg), "state_dict": net.state_dict()}, tmp_path / "prior.pt")
    (tmp_path / "prior.json").write_text(json.dumps(to_dict(net.cfg)))
    blob = torch.load(tmp_path / "prior.pt", weights_only=True)
    cfg = from_dict(MotionDenoiserConfig, json.loads((tmp_path / "prior.json").read_text()))
    assert cfg == from_dict(MotionDenoiserConfig, blob["config"])
    loaded = MotionDenoiser(cfg).eval()
    loaded.load_state_dict(blob["state_dict"])
    assert torch.equal(loaded(**x), net(**x))


def test_paper_preset_on_meta_device():
    cfg = DENOISER_PRESETS["paper"]
    assert (cfg.num_layers, cfg.model_dim, cfg.ffn_dim, cfg.max_frames, cfg.nl_dim) == (6, 512, 1024, 128, 42)
    assert (cfg.audio_dim, cfg.num_heads, cfg.causal) == (512, 4, False)
    with torch.device("meta"):
        net = MotionDenoiser(cfg)
        out = net(torch.zeros(2, 128, 42), torch.zeros(2, dtype=torch.long), torch.zeros(2, 128, 512))
    assert len(net.blocks) == 6 and tuple(net.pos_emb.shape) == (128, 512)
    assert net.blocks[0].ffn[0].out_features == 1024
    assert out.shape == (2, 128, 42) and out.device.type == "meta"


def test_rejects_too_long_sequences():
    x = inputs(T=TINY.max_frames + 1)
    with pytest.raises(ValueError, match="max_frames"):
        build()(**x)


def _first_frames_change(cfg: MotionDenoiserConfig, cut: int) -> bool:
    """Change inputs after frame ``cut`` and report whether outputs up to ``cut`` change."""
    net, x = build(cfg), inputs()
    x["t"] = None if not cfg.use_timestep else x["t"]
    y = {k: (v.clone() if v is not None else None) for k, v in x.items()}
    y["x_t"][:, cut + 1 :] += 1.0
    y["audio"][:, cut + 1 :] += 1.0
    return not torch.allclose(net(**x)[:, : cut + 1], net(**y)[:, : cut + 1], atol=1e-6)


def test_causal_prior_ignores_future_frames():
    assert not _first_frames_change(TINY_AR, cut=7)
    assert not _first_frames_change(dataclasses.replace(TINY, causal=True), cut=7)


def test_bidirectional_prior_sees_future_frames():
    assert _first_frames_change(TINY, cut=7)


def test_padding_frames_do_not_affect_real_frames():
    net, x = build(), inputs()
    valid = torch.ones(2, 16, dtype=torch.bool)
    valid[:, 12:] = False
    y = dict(x, audio=x["audio"].clone(), x_t=x["x_t"].clone())
    y["audio"][:, 12:] = 5.0
    y["x_t"][:, 12:] = -5.0
    a, b = net(**x, valid=valid), net(**y, valid=valid)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert torch.isfinite(b).all()


def test_condition_dropout_uses_null_audio():
    net, x = build(), inputs()
    drop = torch.tensor([True, False])
    other = dict(x, audio=torch.randn_like(x["audio"]))
    a, b = net(**x, drop_cond=drop), net(**other, drop_cond=drop)
    assert torch.equal(a[0], b[0])  # dropped: the audio is not seen
    assert not torch.allclose(a[1], b[1])  # kept: it is
    assert torch.equal(net(**x, drop_cond=torch.tensor([False, False])), net(**x))


def test_known_frames_are_an_input():
    net, x = build(), inputs()
    y = dict(x, known=x["known"] + 1.0)
    assert not torch.allclose(net(**x), net(**y))
    with pytest.raises(ValueError, match="known"):
        net(x["x_t"], x["t"], x["audio"], known_mask=x["known_mask"])


def test_timestep_switch():
    x = inputs()
    with pytest.raises(ValueError, match="use_timestep"):
        build(TINY_AR)(**x)
    assert not torch.allclose(build()(**x), build()(**dict(x, t=x["t"] + 100)))


def test_shift_right():
    x = torch.arange(6.0).view(1, 3, 2)
    assert torch.equal(shift_right(x), torch.tensor([[[0.0, 0.0], [0.0, 1.0], [2.0, 3.0]]]))


def test_ar_training_loss():
    net = build(TINY_AR).train()
    x0, audio = torch.randn(2, 16, N), torch.randn(2, 16, A)
    valid = torch.ones(2, 16, dtype=torch.bool)
    valid[1, 10:] = False
    terms = ar_training_loss(net, AutoregressiveConfig(), x0, audio, valid)
    assert set(terms) == {"loss", "mse", "vel"} and torch.equal(terms["loss"], terms["mse"])
    terms["loss"].backward()
    assert torch.isfinite(net.input_proj.weight.grad).all()
    assert all(p.grad is not None for p in net.parameters())  # no unused parameters under DDP
    with pytest.raises(ValueError, match="causal"):
        ar_training_loss(build(), AutoregressiveConfig(), x0, audio)


def test_ar_sample_matches_teacher_forcing_and_keeps_known():
    net = build(TINY_AR)
    audio = torch.randn(2, 12, A)
    known_mask = torch.zeros(2, 12, dtype=torch.bool)
    known_mask[:, [0, 7]] = True
    known = torch.randn(2, 12, N)
    out = ar_sample(net, audio, known_mask, known)
    assert_shape(out, (2, 12, N), "ar sample")
    assert torch.equal(out[known_mask], known[known_mask])
    # Fed its own outputs with teacher forcing, the model reproduces them at every unknown frame.
    with torch.no_grad():
        again = net(shift_right(out), None, audio)
    assert torch.allclose(again[~known_mask], out[~known_mask], atol=1e-5)


def test_ar_long_sample_is_continuous():
    net, audio = build(TINY_AR), torch.randn(1, 100, A)
    chunks = list(iter_chained_chunks(lambda a, m, k: ar_sample(net, a, m, k), audio, N, window=40))
    assert [c.shape[1] for c in chunks] == [40, 40, 22]
    for prev, nxt in zip(chunks[:-1], chunks[1:], strict=True):
        assert torch.equal(nxt[:, 0], prev[:, -1])
    out = ar_sample_long(net, audio, window=40)
    assert_shape(out, (1, 100, N), "ar long sample")
    assert torch.equal(out, stitch_chunks(chunks))
