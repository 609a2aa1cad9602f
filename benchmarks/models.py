"""Benchmark of models/: forward and forward+backward time per network at the tiny and paper presets
(batch 1, this CPU), and the prior's sampling time for 128 frames, DDPM-1000 against DDIM-50 and
DDIM-25, measured in one run. Prints one JSON object.

Usage: .venv/bin/python -m benchmarks.models [--repeats N] [--presets tiny,paper]
(run as a module: run as a script, this file would shadow the `models` package)
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from thpad.models.diffusion import DiffusionConfig, NoiseSchedule, SamplerConfig, sample
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser
from thpad.models.summary import build_cases


def _timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _scalar(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    values = out.values() if isinstance(out, dict) else out
    return sum(_scalar(v) for v in values)


def time_modules(preset: str, repeats: int) -> dict[str, dict[str, float]]:
    """Seconds per forward and per forward+backward, per network."""
    results = {}
    for name, case in build_cases(preset).items():
        case.module.train()

        def forward(case=case) -> None:
            with torch.no_grad():
                case.call(case.module, case.inputs)

        def forward_backward(case=case) -> None:
            case.module.zero_grad(set_to_none=True)
            _scalar(case.call(case.module, case.inputs)).backward()

        has_grad = any(p.requires_grad for p in case.module.parameters())
        results[name] = {"forward_s": round(_timed(forward, repeats), 4),
                         "forward_backward_s": round(_timed(forward_backward, repeats), 4) if has_grad else None}
    return results


def time_sampling(preset: str) -> dict[str, float]:
    """Seconds to sample 128 frames with DDPM (all 1000 steps) and DDIM-50/25, and their ratios."""
    net = MotionDenoiser(DENOISER_PRESETS[preset]).eval()
    schedule = NoiseSchedule(DiffusionConfig())
    audio = torch.randn(1, 128, net.cfg.audio_dim)  # (1, 128, A)
    out = {}
    for label, cfg in (("ddpm_1000", SamplerConfig(sampler="ddpm")),
                       ("ddim_50", SamplerConfig(sampler="ddim", num_steps=50)),
                       ("ddim_25", SamplerConfig(sampler="ddim", num_steps=25))):
        start = time.perf_counter()
        sample(net, schedule, cfg, audio, net.cfg.nl_dim, generator=torch.Generator().manual_seed(0))
        out[f"{label}_s"] = round(time.perf_counter() - start, 3)
    out["ratio_ddpm_vs_ddim_50"] = round(out["ddpm_1000_s"] / out["ddim_50_s"], 1)
    out["ratio_ddpm_vs_ddim_25"] = round(out["ddpm_1000_s"] / out["ddim_25_s"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", default="tiny,paper")
    args = parser.parse_args()
    torch.manual_seed(0)
    report = {"machine": {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                          "python": platform.python_version()}}
    for preset in args.presets.split(","):
        report[preset] = {"modules": time_modules(preset, args.repeats), "prior_sampling_128": time_sampling(preset)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
