"""Stage 2's validation (rank 0, EMA networks, no generator noise): reconstruction, f_nl's use and collapse, the linear
probes of the true motion, and the reconstruction grid.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from thpad.models.talking_head import TalkingHead
from thpad.pipelines.metrics.probe import partial_correlations, pearson, probe_predictions
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.disentangle.data import ValSet

VAL_CHUNK = 64  # frames per forward pass in validation


@torch.no_grad()
def reconstruct(ema: TalkingHead, identity: torch.Tensor, real: torch.Tensor,
                mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The EMA generator's reconstructions (no noise) of one chunk, with its true f_nl and with the f_nl of the
    next frame of the chunk (rolled by one): how much G relies on f_nl.

    Args:
        identity: (R, K, 3, S, S); real: (R, 3, S, S); mels: (R, 1, M, W), all on the networks' device.
    Returns:
        two (R, 3, S, S) images.
    """
    f_id, id_map = ema.encode_identity(identity)  # (R, id_dim), (R, C, 7, 7)
    f_nl, (_, f_l) = ema.visual_encoder(real).f_nl, ema.encode_audio(mels)  # (R, 42), (R, lip)
    photo_nl = ema.visual_encoder(identity[:, 0]).f_nl if ema.cfg.renderer == "warp" else None  # (R, 42): once
    own = ema.synthesize(identity, f_id, id_map, f_nl, f_l, noise_mode="none", source_nl=photo_nl)
    swapped = ema.synthesize(identity, f_id, id_map, f_nl.roll(1, dims=0), f_l, noise_mode="none", source_nl=photo_nl)
    return own, swapped


@torch.no_grad()
def validate(ema: TalkingHead, val: ValSet | None,
             cfg: DisentangleConfig) -> tuple[dict[str, float], torch.Tensor | None]:
    """Validation metrics of the EMA networks (``val/...``) and the grid's rows (identity frame, driving frame,
    reconstruction) as an (R', 3, 3, S, S) tensor; nothing without val data.

    Metrics: reconstruction L1 and PSNR; ``nl_reliance``, the L1 increase when each frame gets another frame's
    f_nl (about 0 while G ignores the non-lip code); ``nl_spread``, f_nl's mean per-dimension standard deviation
    over the val frames (near 0 when the code has collapsed to a constant); the motion probe.
    """
    if val is None:
        return {}, None
    device = next(ema.parameters()).device
    real, mels = val.images[val.recon_rows], val.mels[val.recon_rows]  # (R, 3, S, S), (R, 1, M, W)
    pairs = [reconstruct(ema, val.identity[rows].to(device), real[rows].to(device), mels[rows].to(device))
             for rows in torch.arange(len(real)).split(VAL_CHUNK)]
    recon, swapped = (torch.cat([pair[i].cpu() for pair in pairs]) for i in (0, 1))  # (R, 3, S, S) each
    mse = (recon - real).pow(2).mean(dim=(1, 2, 3))  # (R,)
    l1 = float((recon - real).abs().mean())
    f_nl = torch.cat([ema.visual_encoder(x.to(device)).f_nl.cpu() for x in val.images.split(VAL_CHUNK)])  # (N, 42)
    metrics = {"val/recon_l1": l1, "val/psnr": float((10 * torch.log10(4.0 / mse.clamp_min(1e-10))).mean()),
               "val/nl_reliance": float((swapped - real).abs().mean()) - l1,
               "val/nl_spread": float(f_nl.std(dim=0).mean())}  # PSNR: peak-to-peak 2
    if val.truth is not None:
        f_l = torch.cat([ema.encode_audio(m.to(device))[1].cpu() for m in val.mels.split(VAL_CHUNK)])  # (N, lip)
        for name, feats in (("nl", f_nl), ("lip", f_l)):
            pred, truth = probe_predictions(feats.double().numpy(), val.truth, val.groups, cfg.validation.probe_folds,
                                            cfg.validation.probe_ridge, within_groups=True)  # (N, T) each
            targets = list(val.truth)
            metrics |= {f"val/probe_{name}/{t}": pearson(pred[:, i], truth[:, i]) for i, t in enumerate(targets)}
            metrics |= {f"val/partial_{name}/{t}": r for t, r in partial_correlations(pred, truth, targets).items()}
    rows = np.unique(np.linspace(0, len(real) - 1, min(cfg.validation.grid_rows, len(real))).round().astype(int))
    grid = torch.stack([val.identity[rows, 0], real[rows], recon[rows]], dim=1)  # (R', 3, 3, S, S)
    return metrics, grid


def grid_figure(grid: torch.Tensor, title: str) -> Figure:
    """An image of (rows, columns, 3, S, S) frames in [-1, 1]: identity | driving | reconstruction per row."""
    rows, cols = grid.shape[:2]
    tiled = grid.permute(0, 3, 1, 4, 2).flatten(0, 1).flatten(1, 2)  # (rows*S, cols*S, 3)
    fig = Figure(figsize=(1.2 * cols + 0.6, 1.2 * rows + 0.6), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.imshow(((tiled.clamp(-1, 1) + 1) / 2).numpy())
    size = grid.shape[-1]
    ax.set_xticks([size * (i + 0.5) for i in range(cols)], ["identity", "driving", "reconstruction"][:cols])
    ax.set_yticks([])
    ax.set_title(title)
    return fig
