"""The motion prior network P_a2nl: a transformer encoder over per-frame audio and non-lip features.

TH-PAD supplement §I.2: a 6-layer transformer encoder with 512-d tokens, 1024-d feed-forward layers,
learnable positional embeddings and at most 128 tokens. The diffusion prior uses bidirectional attention,
the auto-regressive baseline causal attention; both are this one class, switched by ``causal``.
Like MDM, the network predicts the clean sequence x0 (docs/paper-notes.md §1.6); the process lives in diffusion.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class MotionDenoiserConfig:
    """Sizes and switches of the motion prior transformer."""

    nl_dim: int = 42  # non-lip feature width (MLP_nl output)
    audio_dim: int = 512  # audio feature width f_a (E_a output)
    model_dim: int = 512  # token width
    num_layers: int = 6
    num_heads: int = 4  # [U] in the paper
    ffn_dim: int = 1024
    dropout: float = 0.1  # MDM's default; [U] in the paper
    max_frames: int = 128
    causal: bool = False  # True for the auto-regressive prior
    use_timestep: bool = True  # False for the auto-regressive prior (no diffusion time)


DENOISER_PRESETS: dict[str, MotionDenoiserConfig] = {
    "paper": MotionDenoiserConfig(),
    "tiny": MotionDenoiserConfig(
        nl_dim=42, audio_dim=32, model_dim=64, num_layers=2, num_heads=2, ffn_dim=128, dropout=0.0
    ),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) diffusion timesteps.

    Args:
        t: (B,) timesteps.
        dim: embedding width (even).
    Returns:
        (B, dim) embedding, cosines then sines.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, dim)


class SelfAttention(nn.Module):
    """Multi-head self-attention with an explicit boolean "may attend" mask."""

    def __init__(self, cfg: MotionDenoiserConfig) -> None:
        super().__init__()
        if cfg.model_dim % cfg.num_heads != 0:
            raise ValueError(f"model_dim {cfg.model_dim} is not divisible by num_heads {cfg.num_heads}")
        self.num_heads = cfg.num_heads
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.model_dim, 3 * cfg.model_dim)
        self.proj = nn.Linear(cfg.model_dim, cfg.model_dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x (B, T, C)
        q, k, v = (z.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], dropout_p=p)  # (B, H, T, C/H)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class Block(nn.Module):
    """Pre-norm transformer block: attention then a GELU feed-forward layer, each residual."""

    def __init__(self, cfg: MotionDenoiserConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.model_dim)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.model_dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.model_dim, cfg.ffn_dim), nn.GELU(), nn.Linear(cfg.ffn_dim, cfg.model_dim)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), allowed))
        return x + self.drop(self.ffn(self.norm2(x)))


class MotionDenoiser(nn.Module):
    """Transformer that maps audio, a noisy non-lip sequence and known frames to the clean sequence x0."""

    def __init__(self, cfg: MotionDenoiserConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Per-frame input: audio | x_t | known-mask channel | known values (zero where unknown).
        in_dim = cfg.audio_dim + 2 * cfg.nl_dim + 1
        self.input_proj = nn.Linear(in_dim, cfg.model_dim)
        self.pos_emb = nn.Parameter(torch.randn(cfg.max_frames, cfg.model_dim) * 0.02)
        # Learned "no audio" embedding used by condition dropout (classifier-free guidance); it starts
        # at zero, i.e. MDM's zeroed condition, and may drift during training.
        self.null_audio = nn.Parameter(torch.zeros(cfg.audio_dim))
        self.time_mlp = None
        if cfg.use_timestep:
            self.time_mlp = nn.Sequential(
                nn.Linear(cfg.model_dim, cfg.model_dim), nn.SiLU(), nn.Linear(cfg.model_dim, cfg.model_dim)
            )
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.model_dim)
        self.out_proj = nn.Linear(cfg.model_dim, cfg.nl_dim)
        self.drop = nn.Dropout(cfg.dropout)

    def extra_repr(self) -> str:
        c = self.cfg
        return f"layers={c.num_layers}, dim={c.model_dim}, heads={c.num_heads}, causal={c.causal}"

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | None,
        audio: torch.Tensor,
        known_mask: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        drop_cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the clean non-lip sequence.

        Args:
            x_t: (B, T, nl_dim) noisy non-lip features (for the AR prior: previous frames, shifted).
            t: (B,) diffusion timesteps, or None (no timestep term, e.g. the AR prior).
            audio: (B, T, audio_dim) audio features f_a.
            known_mask: (B, T) bool, True where the clean frame is given (mask editing); None = none.
            known: (B, T, nl_dim) clean values of the known frames (ignored where known_mask is False).
            valid: (B, T) bool, True on real frames, False on padding (masked as attention keys).
            drop_cond: (B,) bool, True to replace the sample's audio by the learned null embedding.
        Returns:
            (B, T, nl_dim) prediction of x0.
        """
        B, T, _ = x_t.shape
        cfg = self.cfg
        if T > cfg.max_frames:
            raise ValueError(f"sequence of {T} frames is longer than max_frames={cfg.max_frames}")
        assert_shape(x_t, (B, T, cfg.nl_dim), "x_t")
        assert_shape(audio, (B, T, cfg.audio_dim), "audio")
        h = self.input_proj(self._frame_inputs(x_t, audio, known_mask, known, drop_cond))  # (B, T, D)
        h = h + self.pos_emb[:T][None]  # (B, T, D)
        if t is not None:
            h = h + self._time_embedding(t, B)[:, None]  # (B, T, D)
        allowed = self._attention_mask(B, T, valid, x_t.device)  # (B, T, T)
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, allowed)
        return self.out_proj(self.norm(h))  # (B, T, nl_dim)

    def _time_embedding(self, t: torch.Tensor, B: int) -> torch.Tensor:
        """Timestep embedding (B, D): sinusoids followed by an MLP (DiT/MDM style)."""
        if self.time_mlp is None:
            raise ValueError("this denoiser was built with use_timestep=False but got timesteps")
        assert_shape(t, (B,), "t")
        return self.time_mlp(timestep_embedding(t, self.cfg.model_dim))  # (B, D)

    def _frame_inputs(
        self,
        x_t: torch.Tensor,
        audio: torch.Tensor,
        known_mask: torch.Tensor | None,
        known: torch.Tensor | None,
        drop_cond: torch.Tensor | None,
    ) -> torch.Tensor:
        """Concatenate the per-frame inputs into (B, T, audio_dim + 2 * nl_dim + 1)."""
        B, T, _ = x_t.shape
        # The null embedding always enters the graph (with zero gradient when nothing is dropped), so every
        # rank has a gradient for it and the ranks' gradient averages cover the same parameters.
        if drop_cond is None:
            drop_cond = torch.zeros(B, dtype=torch.bool, device=x_t.device)
        assert_shape(drop_cond, (B,), "drop_cond")
        null = self.null_audio.to(audio.dtype).expand_as(audio)  # (B, T, A)
        audio = torch.where(drop_cond[:, None, None], null, audio)  # (B, T, A)
        if known_mask is None:
            mask = x_t.new_zeros(B, T, 1)  # (B, T, 1)
            values = torch.zeros_like(x_t)  # (B, T, N)
        else:
            assert_shape(known_mask, (B, T), "known_mask")
            if known is None:
                raise ValueError("known_mask was given without the known frames")
            assert_shape(known, tuple(x_t.shape), "known")
            mask = known_mask[..., None].to(x_t.dtype)  # (B, T, 1)
            values = known * mask  # (B, T, N)
        return torch.cat([audio, x_t, mask, values], dim=-1)  # (B, T, A + 2N + 1)

    def _attention_mask(self, B: int, T: int, valid: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """Boolean (B, T, T) mask, True where query i may attend to key j."""
        allowed = torch.ones(T, T, dtype=torch.bool, device=device)
        if self.cfg.causal:
            allowed = torch.tril(allowed)  # (T, T)
        allowed = allowed.expand(B, T, T)  # (B, T, T)
        if valid is not None:
            assert_shape(valid, (B, T), "valid")
            allowed = allowed & valid[:, None, :]  # (B, T, T)
        # Every token may see itself, so no row is empty (an empty row would give NaN on padding).
        return allowed | torch.eye(T, dtype=torch.bool, device=device)  # (B, T, T)
