"""Reconstruction metrics on images in [-1, 1]: PSNR and SSIM (Gaussian window 11, sigma 1.5, per channel,
on the [0, 1] scale, constants K1 = 0.01, K2 = 0.03), both averaged over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x_B3HW: torch.Tensor, y_B3HW: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB on the [0, 1] scale (inputs in [-1, 1], clamped), averaged; 100 dB if equal."""
    x = (x_B3HW.float().clamp(-1, 1) + 1) / 2
    y = (y_B3HW.float().clamp(-1, 1) + 1) / 2
    mse = (x - y).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0).mean()


def _gaussian(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(c**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x_B3HW: torch.Tensor, y_B3HW: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (valid-region Gaussian filtering; the window shrinks for images smaller than it)."""
    x = (x_B3HW.float().clamp(-1, 1) + 1) / 2
    y = (y_B3HW.float().clamp(-1, 1) + 1) / 2
    c = x.shape[1]
    win = min(window, x.shape[-1], x.shape[-2])
    g = _gaussian(win, sigma, x.device)
    k = (g[:, None] * g[None, :]).expand(c, 1, win, win).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, k, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).mean()


def bit_usage(bits_BdHW: torch.Tensor) -> dict[str, float]:
    """How well the binary code is used: mean per-bit entropy (1.0 = every bit balanced) and the fraction
    of distinct tokens in the batch."""
    on = (bits_BdHW > 0).float().mean(dim=(0, 2, 3)).clamp(1e-6, 1 - 1e-6)
    ent = -(on * on.log2() + (1 - on) * (1 - on).log2()).mean()
    tokens = (bits_BdHW > 0).permute(0, 2, 3, 1).reshape(-1, bits_BdHW.shape[1])
    distinct = torch.unique(tokens, dim=0).shape[0] / max(1, tokens.shape[0])
    return {"bit_entropy": float(ent), "distinct_tokens": float(distinct)}
