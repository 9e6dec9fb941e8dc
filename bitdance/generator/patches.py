"""Patch (generation) order of a token grid: p x p patches in raster order, raster inside a patch."""

from __future__ import annotations

import torch

from ..core.configs import validate_parallel_num


def patch_order(h: int, w: int, p: int) -> torch.Tensor:
    """perm (N,) int64: sequence position k holds the token with raster index perm[k]."""
    if h % p or w % p:
        raise ValueError(f"patch side {p} does not tile the {h}x{w} token grid")
    idx = torch.arange(h * w).view(h // p, p, w // p, p)  # (hb, p1, wb, p2)
    return idx.permute(0, 2, 1, 3).reshape(-1)


def order_for(grid: tuple[int, int], parallel_num: int) -> torch.Tensor:
    """Generation order of a (h, w) grid for P = parallel_num tokens per step."""
    side = validate_parallel_num(parallel_num, grid)
    return patch_order(grid[0], grid[1], side)


def to_sequence(bits_BdHW: torch.Tensor, parallel_num: int) -> torch.Tensor:
    """(B, d, h, w) bits -> (B, N, d) in generation order."""
    b, d, h, w = bits_BdHW.shape
    perm = order_for((h, w), parallel_num).to(bits_BdHW.device)
    return bits_BdHW.flatten(2).transpose(1, 2)[:, perm]


def from_sequence(bits_BNd: torch.Tensor, grid: tuple[int, int], parallel_num: int) -> torch.Tensor:
    """(B, N, d) in generation order -> (B, d, h, w)."""
    b, n, d = bits_BNd.shape
    h, w = grid
    if n != h * w:
        raise ValueError(f"sequence of {n} tokens does not fill a {h}x{w} grid")
    perm = order_for(grid, parallel_num).to(bits_BNd.device)
    raster = torch.empty_like(bits_BNd)
    raster[:, perm] = bits_BNd
    return raster.transpose(1, 2).reshape(b, d, h, w)


def token_xy(grid: tuple[int, int], order: torch.Tensor) -> torch.Tensor:
    """(N, 2) float (x, y) = (column + 0.5, row + 0.5) of each token in the given order."""
    h, w = grid
    rows = (order // w).float() + 0.5
    cols = (order % w).float() + 0.5
    return torch.stack([cols, rows], dim=-1)
