"""Shared primitives: RMSNorm, SwiGLU, 2-D RoPE, timestep embedding, adaLN modulation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (no bias); computed in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class SwiGLU(nn.Module):
    """`w2(silu(a) * b)` with `[a, b] = w1(x)` fused into one projection (official layout)."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None, bias: bool = False) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, 2 * hidden, bias=bias)
        self.w2 = nn.Linear(hidden, out_dim or dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w1(x).chunk(2, dim=-1)
        return self.w2(F.silu(a) * b)


def ffn_hidden_size(dim: int, multiple_of: int = 256) -> int:
    """LLaMA-style FFN width: round_up(int(8*dim/3), multiple_of)."""
    hidden = int(8 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of 1000*t in [cos, sin] order. t: (B,) in [0, 1] -> (B, dim), fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (1000.0 * t.float())[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Sinusoidal time features -> MLP (keys `mlp.0`, `mlp.2` as in the official head)."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        feats = timestep_features(t, self.freq_dim)
        return self.mlp(feats.to(self.mlp[0].bias.dtype))


# ----------------------------------------------------------------------------- 2-D RoPE


def rope_2d_angles(pos_xy: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles for 2-D RoPE. pos_xy: (L, 2) float (x, y) -> (L, head_dim/2) angles.

    The first head_dim/4 channel pairs rotate with x, the last head_dim/4 with y, frequencies
    base^(-2k/(head_dim/2)) for k < head_dim/4 (official BitDance layout).
    """
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs head_dim divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    freqs = base ** (-2.0 * torch.arange(quarter, dtype=torch.float32) / (head_dim // 2))
    freqs = freqs.to(pos_xy.device)
    ax = pos_xy[:, :1].float() * freqs[None]
    ay = pos_xy[:, 1:2].float() * freqs[None]
    return torch.cat([ax, ay], dim=-1)


def rope_table(angles: torch.Tensor) -> torch.Tensor:
    """(L, head_dim/2) angles -> (L, head_dim/2, 2) table of (cos, sin)."""
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rope(x_BHLd: torch.Tensor, table_Lk2: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs (2i, 2i+1) of each head. x: (B, H, L, d); table: (L, d/2, 2)."""
    xf = x_BHLd.float().reshape(*x_BHLd.shape[:-1], -1, 2)
    cos, sin = table_Lk2[..., 0], table_Lk2[..., 1]
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.flatten(-2).type_as(x_BHLd)


def apply_rope_complex(x_BHLd: torch.Tensor, table_Lk2: torch.Tensor) -> torch.Tensor:
    """`apply_rope` as one complex multiply per channel pair (x0 + i x1)(cos + i sin): the same products
    and sums, ~10x fewer kernel launches and no stacking copy (forward and backward); training uses it."""
    xf = x_BHLd.float().reshape(*x_BHLd.shape[:-1], -1, 2)
    if xf.storage_offset() % 2 or any(st % 2 for st in xf.stride()[:-1]):
        xf = xf.contiguous()  # view_as_complex needs whole complex numbers
    rot = torch.view_as_complex(table_Lk2.float().contiguous())
    return torch.view_as_real(torch.view_as_complex(xf) * rot).flatten(-2).type_as(x_BHLd)


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(p*w_k), cos(p*w_k)] with w_k = 10000^(-k/(dim/2)). pos: (L,) -> (L, dim)."""
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float32, device=pos.device) / half)
    out = pos.float()[:, None] * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=-1)


def sincos_2d(rows: torch.Tensor, cols: torch.Tensor, dim: int) -> torch.Tensor:
    """2-D sin-cos embedding: first dim/2 channels encode the column, last dim/2 the row. -> (L, dim)."""
    return torch.cat([sincos_1d(cols, dim // 2), sincos_1d(rows, dim // 2)], dim=-1)
