"""Loading every trained network from its snapshot and sampling from a prior need nothing from ``thpad.pipelines``
(generation, evaluation and the registry's model load them outside training). Run in a fresh interpreter, so that
``sys.modules`` shows exactly what these steps import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import dataclasses, json, sys
import numpy as np
import torch
from thpad.models.autoregressive import AutoregressiveConfig
from thpad.models.contrastive_net import build_net
from thpad.models.diffusion.process import DiffusionConfig
from thpad.models.diffusion.sampling import SamplerConfig
from thpad.models.feature_encoders import build_encoders
from thpad.models.motion_prior import NormStats, build_prior, denoiser_config, generate_nl, prior_snapshot_config
from thpad.models.talking_head import TALKING_HEAD_PRESETS, build_talking_head, talking_head_snapshot_config
from thpad.codec import to_dict
from thpad.storage.checkpoint import load_snapshot, read_snapshot, save_snapshot

folder = sys.argv[1]
tiny = TALKING_HEAD_PRESETS["tiny"]
head_config = talking_head_snapshot_config(tiny)
save_snapshot(f"{folder}/head.pt", head_config, build_talking_head(head_config))
head = load_snapshot(f"{folder}/head.pt", build_talking_head)
_, state = read_snapshot(open(f"{folder}/head.pt", "rb").read())
keep = {k: v for k, v in state.items() if k.startswith(("visual_encoder.", "audio_encoder."))}
encoders = build_encoders(to_dict(tiny), keep)
stage_one = {"audio": to_dict(tiny.audio), "visual": to_dict(tiny.visual), "init_temperature": 0.07}
save_snapshot(f"{folder}/contrastive.pt", stage_one, build_net(stage_one))
load_snapshot(f"{folder}/contrastive.pt", build_net)
N, A, L = 6, 4, 40
norm = NormStats(np.zeros(N, np.float32), np.ones(N, np.float32), np.zeros(A, np.float32), np.ones(A, np.float32))
out = {}
for name, process, sampler in (("diffusion", DiffusionConfig(num_steps=10), SamplerConfig(sampler="ddim", num_steps=3)),
                               ("autoregressive", AutoregressiveConfig(), None)):
    config = prior_snapshot_config(denoiser_config("tiny", N, A, causal=name == "autoregressive"), norm, 16,
                                   **{name: process})
    save_snapshot(f"{folder}/{name}.pt", config, build_prior(config))
    net = load_snapshot(f"{folder}/{name}.pt", build_prior).eval()
    config, _ = read_snapshot(f"{folder}/{name}.pt")
    f_nl = generate_nl(net, config, np.zeros((1, L, A), np.float32), sampler, torch.Generator().manual_seed(0))
    out[name] = list(f_nl.shape)
out["pipelines"] = sorted(m for m in sys.modules if m.startswith("thpad.pipelines"))
print(json.dumps(out))
'''


def test_loading_networks_and_sampling_a_prior_import_no_pipelines(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["diffusion"] == out["autoregressive"] == [1, 40, 6]  # chained windows of 16 over 40 frames
    assert out["pipelines"] == []


def test_the_generation_model_imports_nothing_of_training() -> None:
    code = ("import sys, json, thpad.pipelines.generate.model; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('thpad.pipelines.train'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
