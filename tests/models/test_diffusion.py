"""Tests of the diffusion process (models/diffusion): schedule golden values, training loss, guidance,
samplers (contract tests run every sampler against every denoiser), mask editing and chaining."""

from __future__ import annotations

import json
import math

import pytest
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.diffusion import (
    DiffusionConfig,
    NoiseSchedule,
    SamplerConfig,
    chunk_spans,
    ddim_timesteps,
    guided_x0,
    iter_chained_chunks,
    q_sample,
    rescale_guided,
    sample,
    sample_known_mask,
    sample_long,
    stitch_chunks,
    training_loss,
)
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser
from thpad.models.shapes import assert_shape

N = 42
TINY = DENOISER_PRESETS["tiny"]
A = TINY.audio_dim


class ToyDenoiser:
    """A fixed analytic denoiser with the Denoiser signature: shrinks x_t and adds an audio term."""

    def __call__(self, x_t, t, audio, known_mask=None, known=None, valid=None, drop_cond=None):
        cond = audio[..., :1].expand_as(x_t)  # (B, T, N)
        if drop_cond is not None:
            cond = torch.where(drop_cond[:, None, None], torch.zeros_like(cond), cond)
        return 0.5 * x_t + cond


class CountingDenoiser:
    """Wraps a denoiser and counts calls and batch sizes."""

    def __init__(self, inner) -> None:
        self.inner, self.batch_sizes = inner, []

    def __call__(self, x_t, *args):
        self.batch_sizes.append(x_t.shape[0])
        return self.inner(x_t, *args)


def tiny_net(seed: int = 0) -> MotionDenoiser:
    torch.manual_seed(seed)
    return MotionDenoiser(TINY).eval()


DENOISERS = {"motion_denoiser": tiny_net, "toy": ToyDenoiser}
SAMPLER_CFGS = {
    "ddpm": SamplerConfig(sampler="ddpm", guidance=2.5),
    "ddim": SamplerConfig(sampler="ddim", num_steps=4, guidance=2.5),
    "ddim_eta1": SamplerConfig(sampler="ddim", num_steps=3, eta=1.0, guidance=1.0),
    "ddim_rescaled": SamplerConfig(sampler="ddim", num_steps=3, guidance=2.5, guidance_rescale=1.0),
}
SMALL = NoiseSchedule(DiffusionConfig(num_steps=8))


def test_cosine_schedule_golden_values():
    sched = NoiseSchedule(DiffusionConfig())
    ac = sched.alphas_cumprod
    # By hand: alpha_bar(t) = f(t + 1) / f(0), f(u) = cos^2(((u / T) + s) / (1 + s) * pi / 2), while no beta
    # is clipped; the last beta (= 1 - f(1000) / f(999) = 1) is clipped to 0.999.
    f = lambda u: math.cos((u / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert ac[0].item() == pytest.approx(f(1) / f(0), rel=1e-12)
    assert ac[499].item() == pytest.approx(f(500) / f(0), rel=1e-12)
    assert ac[999].item() == pytest.approx(f(999) / f(0) * (1 - 0.999), rel=1e-9)
    # Literals computed once, independently, with plain Python math (cumulative product of clipped betas).
    assert ac[0].item() == pytest.approx(0.999958715775178, rel=1e-12)
    assert ac[1].item() == pytest.approx(0.9999125759273678, rel=1e-12)
    assert ac[499].item() == pytest.approx(0.4938435904406382, rel=1e-12)
    assert ac[999].item() == pytest.approx(2.4287669070348567e-09, rel=1e-9)
    assert sched.betas.max().item() == pytest.approx(0.999)
    assert torch.all(ac[1:] < ac[:-1])


def test_posterior_coefficients_at_t0_return_x0():
    sched = NoiseSchedule(DiffusionConfig())
    assert sched.posterior_mean_coef1[0].item() == pytest.approx(1.0, abs=1e-9)
    assert sched.posterior_mean_coef2[0].item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(sched.sampling_log_variance).all()


def test_q_sample_endpoints():
    sched = NoiseSchedule(DiffusionConfig())
    x0, noise = torch.randn(2, 5, N), torch.randn(2, 5, N)
    near_clean = q_sample(sched, x0, torch.tensor([0, 0]), noise)
    near_noise = q_sample(sched, x0, torch.tensor([999, 999]), noise)
    assert_shape(near_clean, (2, 5, N))
    ac0 = 0.999958715775178
    assert torch.allclose(near_clean, math.sqrt(ac0) * x0 + math.sqrt(1 - ac0) * noise, atol=1e-6)
    assert torch.allclose(near_noise, noise, atol=1e-3)


def test_config_round_trip():
    for cfg in (DiffusionConfig(), DiffusionConfig(num_steps=8, schedule="linear"), SamplerConfig(num_steps=7)):
        data = json.loads(json.dumps(to_dict(cfg)))
        assert from_dict(type(cfg), data) == cfg


def test_paper_defaults():
    cfg = DiffusionConfig()
    assert (cfg.num_steps, cfg.schedule, cfg.posterior_variance) == (1000, "cosine", "small")
    assert (cfg.cond_dropout, cfg.mask_frac, cfg.lambda_x0, cfg.lambda_vel) == (0.1, 0.1, 1.0, 1.0)
    assert SamplerConfig().guidance == 2.5 and SamplerConfig().window == TINY.max_frames == 128


def test_known_mask_fraction_and_padding():
    valid = torch.ones(64, 128, dtype=torch.bool)
    valid[:, 100:] = False
    mask = sample_known_mask(DiffusionConfig(), valid, torch.Generator().manual_seed(0))
    assert not mask[:, 100:].any()
    assert mask[:, :100].float().mean().item() == pytest.approx(0.1, abs=0.02)


def test_training_loss_counts_only_unknown_real_frames():
    x0, audio = torch.randn(3, 16, N), torch.randn(3, 16, A)
    valid = torch.ones(3, 16, dtype=torch.bool)
    valid[1, 10:] = False

    def perfect_on_predicted(x_t, t, audio, known_mask, known, valid, drop_cond):
        wrong = known_mask | ~valid  # frames the loss must ignore
        return torch.where(wrong[..., None], x0 + 100.0, x0)

    cfg = DiffusionConfig(num_steps=8, mask_frac=0.3)
    terms = training_loss(perfect_on_predicted, SMALL, cfg, x0, audio, valid, torch.Generator().manual_seed(0))
    assert terms["x0"].item() == 0.0 and terms["vel"].item() == 0.0


def test_training_loss_backward_and_seeded():
    net = tiny_net()
    net.train()
    x0, audio = torch.randn(2, 12, N), torch.randn(2, 12, A)
    cfg = DiffusionConfig(num_steps=8)
    a = training_loss(net, SMALL, cfg, x0, audio, generator=torch.Generator().manual_seed(3))
    b = training_loss(net, SMALL, cfg, x0, audio, generator=torch.Generator().manual_seed(3))
    assert set(a) == {"loss", "x0", "vel"} and torch.equal(a["loss"], b["loss"])
    a["loss"].backward()
    assert net.input_proj.weight.grad is not None and torch.isfinite(net.input_proj.weight.grad).all()
    assert all(p.grad is not None for p in net.parameters())  # no unused parameters under DDP


@pytest.mark.parametrize("make", DENOISERS.values(), ids=DENOISERS.keys())
def test_cfg_scale_0_and_1_are_exact(make):
    den = CountingDenoiser(make())
    x_t, audio, t = torch.randn(2, 10, N), torch.randn(2, 10, A), torch.tensor([3, 5])
    drop, keep = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        uncond = den.inner(x_t, t, audio, None, None, None, drop)
        cond = den.inner(x_t, t, audio, None, None, None, keep)
        assert torch.equal(guided_x0(den, x_t, t, audio, 0.0), uncond)
        assert torch.equal(guided_x0(den, x_t, t, audio, 1.0), cond)
        assert den.batch_sizes == [2, 2]  # one pass each, no second pass
        mixed = guided_x0(den, x_t, t, audio, 2.5)
    assert den.batch_sizes[-1] == 4  # both passes in one batch
    assert torch.allclose(mixed, uncond + 2.5 * (cond - uncond), atol=1e-5)
    assert not torch.allclose(cond, uncond)


@pytest.mark.parametrize("sampler", SAMPLER_CFGS.values(), ids=SAMPLER_CFGS.keys())
@pytest.mark.parametrize("make", DENOISERS.values(), ids=DENOISERS.keys())
def test_sampler_contract(make, sampler):
    """Every sampler with every denoiser: shape, finiteness, seeded determinism, exact mask editing."""
    den = make()
    audio = torch.randn(2, 20, A)
    known_mask = torch.rand(2, 20, generator=torch.Generator().manual_seed(1)) < 0.3
    known = torch.randn(2, 20, N)

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample(den, SMALL, sampler, audio, N, known_mask, known, generator=gen)

    out, again, other = run(0), run(0), run(1)
    assert_shape(out, (2, 20, N), "sample")
    assert torch.isfinite(out).all()
    assert torch.equal(out, again)
    assert not torch.equal(out, other)
    assert torch.equal(out[known_mask], known[known_mask])


def test_ddpm_rejects_fewer_steps():
    with pytest.raises(ValueError, match="DDPM"):
        sample(ToyDenoiser(), SMALL, SamplerConfig(sampler="ddpm", num_steps=3), torch.randn(1, 4, A), N)


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 1000) == list(range(999, -1, -1))
    steps = ddim_timesteps(1000, 50)
    assert len(steps) == 50 and steps[0] == 999 and steps[-1] == 0
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def test_chunk_spans():
    assert chunk_spans(300, 128) == [(0, 128), (127, 255), (254, 300)]
    assert chunk_spans(128, 128) == [(0, 128)]
    assert chunk_spans(5, 128) == [(0, 5)]


def test_chained_long_sample_is_continuous_at_joints():
    den = tiny_net()
    audio = torch.randn(1, 300, A)
    cfg = SamplerConfig(sampler="ddim", num_steps=2, window=128)

    def one_window(a, m, k):
        return sample(den, SMALL, cfg, a, N, m, k, generator=gen)

    gen = torch.Generator().manual_seed(0)
    chunks = list(iter_chained_chunks(one_window, audio, N, cfg.window))
    assert [c.shape[1] for c in chunks] == [128, 128, 46]
    for prev, nxt in zip(chunks[:-1], chunks[1:], strict=True):
        assert torch.equal(nxt[:, 0], prev[:, -1])
    stitched = stitch_chunks(chunks)
    assert_shape(stitched, (1, 300, N))
    assert torch.equal(stitched[:, 127], chunks[0][:, -1]) and torch.equal(stitched[:, 254:], chunks[2])
    long = sample_long(den, SMALL, cfg, audio, N, generator=torch.Generator().manual_seed(0))
    assert torch.equal(long, stitched)


def test_long_sample_keeps_user_known_frames():
    audio = torch.randn(1, 200, A)
    known_mask = torch.zeros(1, 200, dtype=torch.bool)
    known_mask[0, [0, 77, 150]] = True
    known = torch.randn(1, 200, N)
    cfg = SamplerConfig(sampler="ddim", num_steps=2, window=64)
    out = sample_long(ToyDenoiser(), SMALL, cfg, audio, N, known_mask, known, torch.Generator().manual_seed(0))
    assert torch.equal(out[known_mask], known[known_mask])


def test_guidance_rescale_matches_the_conditional_spread_on_valid_frames():
    guided, cond = 3.0 * torch.randn(2, 10, N) + 1.0, torch.randn(2, 10, N)  # guided ~3x wider
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, 6:] = False
    guided[1, 6:], cond[1, 6:] = 100.0, -100.0  # padding: must not count
    assert torch.equal(rescale_guided(guided, cond, 0.0, valid), guided)
    full = rescale_guided(guided, cond, 1.0, valid)
    for b, n in ((0, 10), (1, 6)):
        assert torch.allclose(full[b, :n].std(unbiased=False), cond[b, :n].std(unbiased=False), rtol=1e-4)
        ratio = full[b, :n] / guided[b, :n]  # one scale per sample: the guidance direction is kept
        assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio), rtol=1e-4) and float(ratio[0, 0]) < 0.6
    half = rescale_guided(guided, cond, 0.5, valid)
    assert torch.allclose(half, 0.5 * (full + guided), atol=1e-5)


def test_guidance_rescale_applies_only_when_both_passes_run():
    den = ToyDenoiser()
    x_t, audio, t = torch.randn(2, 10, N), torch.randn(2, 10, A), torch.tensor([3, 5])
    with torch.no_grad():
        cond = den(x_t, t, audio, None, None, None, torch.zeros(2, dtype=torch.bool))
        assert torch.equal(guided_x0(den, x_t, t, audio, 1.0, rescale=1.0), cond)
        plain, rescaled = guided_x0(den, x_t, t, audio, 2.5), guided_x0(den, x_t, t, audio, 2.5, rescale=1.0)
    assert torch.allclose(rescaled.std(dim=(1, 2)), cond.std(dim=(1, 2)), rtol=1e-4)
    assert not torch.allclose(rescaled, plain)
    with pytest.raises(ValueError, match="guidance_rescale"):
        rescale_guided(plain, cond, 1.5)
