"""Sign quantization to ±1 bits (lookup-free, no codebook), straight-through estimator, entropy loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def binarize(h: torch.Tensor) -> torch.Tensor:
    """+1 where h > 0, else -1 (so 0 maps to -1, as the official tokenizer does)."""
    return torch.where(h > 0, torch.ones_like(h), -torch.ones_like(h))


def binarize_ste(h: torch.Tensor) -> torch.Tensor:
    """Straight-through sign: forward = binarize(h), backward = identity."""
    return h + (binarize(h) - h).detach()


def check_bits(bits: torch.Tensor, name: str = "bits") -> None:
    """Raise ValueError unless every value is exactly -1 or +1."""
    if not torch.is_tensor(bits) or not bits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of ±1 values")
    ok = (bits == 1) | (bits == -1)
    if not bool(ok.all()):
        bad = bits[~ok].flatten()[:3].tolist()
        raise ValueError(f"{name} must contain only -1 and +1; found other values such as {bad}")


def bits_to_index(bits: torch.Tensor) -> torch.Tensor:
    """(..., d) ±1 bits -> (...,) int64 index; bit i has weight 2^i (little-endian). Needs d <= 63."""
    check_bits(bits)
    d = bits.shape[-1]
    if d > 63:
        raise ValueError(f"bits_to_index supports up to 63 bits per token (int64); got d={d}")
    weights = 2 ** torch.arange(d, device=bits.device, dtype=torch.int64)
    return ((bits > 0).to(torch.int64) * weights).sum(-1)


def index_to_bits(index: torch.Tensor, d: int) -> torch.Tensor:
    """(...,) int64 index -> (..., d) float ±1 bits (inverse of bits_to_index)."""
    if d > 63 or d < 1:
        raise ValueError(f"index_to_bits supports 1..63 bits per token; got d={d}")
    if index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"index must be an integer tensor, got {index.dtype}")
    if bool((index < 0).any()) or (d < 63 and bool((index >= 2**d).any())):
        raise ValueError(f"index values must be in [0, 2^{d})")
    weights = 2 ** torch.arange(d, device=index.device, dtype=torch.int64)
    on = (index.to(torch.int64)[..., None] & weights) != 0
    return on.float() * 2 - 1


def group_indices(bits_BdHW: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per-group integer codes (official GFQ logging layout). (B, d, H, W) -> (G, B*H*W)."""
    b, d, h, w = bits_BdHW.shape
    flat = bits_BdHW.permute(0, 2, 3, 1).reshape(-1, d // group_size, group_size)
    return bits_to_index(flat).T.contiguous()


@dataclass
class QuantizerLosses:
    per_sample_entropy: torch.Tensor
    codebook_entropy: torch.Tensor
    entropy: torch.Tensor  # per_sample - codebook (weights applied by the caller)
    commitment: torch.Tensor


def _sub_codebook(group_size: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(2**group_size, device=device)
    return index_to_bits(idx, group_size)  # (K, g)


def entropy_losses(
    h_BdHW: torch.Tensor,
    group_size: int = 8,
    temperature: float = 0.01,
    sample_weight: float = 1.0,
    codebook_weight: float = 1.0,
) -> QuantizerLosses:
    """Group-wise LFQ entropy penalty + commitment.

    logits_{n,g,k} = 2 <h_{n,g}, c_k> over the 2^g sub-codes; per-sample entropy (minimised) averaged
    over positions and groups; codebook entropy (maximised) of the mean distribution pooled over batch,
    positions and groups. Returns per-term values in fp32.
    """
    b, d, hh, ww = h_BdHW.shape
    if d % group_size:
        raise ValueError(f"bits per token {d} must be divisible by the entropy group size {group_size}")
    h = h_BdHW.float().permute(0, 2, 3, 1).reshape(-1, d // group_size, group_size)
    codes = _sub_codebook(group_size, h.device)
    logits = 2 * torch.einsum("ngc,kc->ngk", h, codes) / temperature
    logp = F.log_softmax(logits, dim=-1)
    p = logp.exp()
    per_sample = -(p * logp).sum(-1).mean()
    avg = p.reshape(-1, p.shape[-1]).mean(0)
    codebook = -(avg * torch.log(avg + 1e-5)).sum()
    commitment = F.mse_loss(h_BdHW.float(), binarize(h_BdHW).float())
    entropy = sample_weight * per_sample - codebook_weight * codebook
    return QuantizerLosses(per_sample, codebook, entropy, commitment)
