"""Metric math: FID / KID / Inception-Score-style score through torchmetrics on precomputed features,
PSNR / SSIM for reconstructions, and bit statistics of binary codes.

Features come from our own feature networks (``features.py``); torchmetrics receives them through a
pass-through "feature network", so FID, KID and IS are torchmetrics' implementations (float64 FID with
eigenvalue matrix square root, polynomial-kernel KID over random subsets, IS over splits).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn


class PrecomputedFeatures(nn.Module):
    """The feature network handed to torchmetrics: rows of (N, D) features pass through unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, feats_ND: torch.Tensor) -> torch.Tensor:
        if feats_ND.dim() != 2 or feats_ND.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}) features, got {tuple(feats_ND.shape)}")
        return feats_ND


def _check_pair(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be (N, D) with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("FID/KID need at least 2 samples per set")


def fid(real_ND: torch.Tensor, fake_ND: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (torchmetrics, float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_pair(real_ND, fake_ND)
    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(real_ND.shape[1]), normalize=True)
    metric.update(real_ND.double(), real=True)
    metric.update(fake_ND.double(), real=False)
    return max(float(metric.compute()), 0.0)  # tiny negative values are round-off of a zero distance


def _frechet(real_ND: torch.Tensor, fake_ND: torch.Tensor) -> float:
    """Frechet distance of Gaussians fitted to two equal-size (N, D) sets, float64:
    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2). With A, B the centred sets, S1 S2 has the
    non-zero eigenvalues of (A B^T)(A B^T)^T / (N-1)^2, so the last trace is the nuclear norm of
    A B^T / (N-1): an N x N problem when N < D, else two D x D symmetric eigen-decompositions."""
    x, y = real_ND.double(), fake_ND.double()
    n, d = x.shape
    a, b = x - x.mean(0), y - y.mean(0)
    mean_term = (x.mean(0) - y.mean(0)).square().sum()
    traces = (a.square().sum() + b.square().sum()) / (n - 1)
    if n < d:
        cross = torch.linalg.svdvals(a @ b.T).sum() / (n - 1)
    else:
        s1, s2 = a.T @ a / (n - 1), b.T @ b / (n - 1)
        w, v = torch.linalg.eigh(s1)
        root1 = (v * w.clamp(min=0).sqrt()) @ v.T
        cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp(min=0).sqrt().sum()
    return max(float(mean_term + traces - 2 * cross), 0.0)


HALF_SAMPLE_METHOD = "half-samples"


def fid_half_sample_interval(
    real_ND: torch.Tensor, fake_ND: torch.Tensor, reps: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """95 % interval of FID at this sample size from paired half-samples drawn without replacement.

    Each of ``reps`` draws keeps m = N // 2 distinct items (the same indices in both sets: generated item i is
    conditioned on reference item i) and computes FID_m. Drawing half of the items without replacement gives
    a linear statistic exactly the variance it has over independent samples of size N, so the deviations
    FID_m - mean(FID_m) stand in for FID_N - E[FID_N]; the interval is the basic one around the full-sample
    value, [FID_N - q_hi, FID_N - q_lo]. It covers E[FID_N], the quantity comparable between runs of the same
    N; it is conservative (wider) where the small-sample term dominates (nearly equal sets, N ~ D).

    No item is duplicated, unlike a with-replacement bootstrap, whose resamples lose covariance rank and lie
    above FID_N. FID's small-sample bias is linear in 1/N, so mean(FID_m) - FID_N estimates the bias at N and
    ``fid_infinity`` = 2 FID_N - mean(FID_m) the bias-corrected value (same deviations for its interval)."""
    _check_pair(real_ND, fake_ND)
    n = len(real_ND)
    if n != len(fake_ND):
        raise ValueError(f"paired half-samples need equal set sizes, got {n} and {len(fake_ND)}")
    if n < 6 or reps < 2 or not 0 < level < 1:
        raise ValueError(f"need N >= 6, reps >= 2 and 0 < level < 1, got {n}, {reps} and {level}")
    full = _frechet(real_ND, fake_ND)
    gen = torch.Generator().manual_seed(seed)
    m = n // 2
    halves = []
    for _ in range(reps):
        idx = torch.randperm(n, generator=gen)[:m]
        halves.append(_frechet(real_ND[idx], fake_ND[idx]))
    h = torch.tensor(halves, dtype=torch.float64)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    q_lo, q_hi = (float(v) for v in torch.quantile(h - h.mean(), q))
    bias = float(h.mean()) - full
    return {
        "low": max(full - q_hi, 0.0),
        "high": full - q_lo,
        "level": level,
        "reps": reps,
        "seed": seed,
        "method": HALF_SAMPLE_METHOD,
        "half_size": m,
        "fid": full,
        "half_mean": float(h.mean()),
        "bias_estimate": bias,
        "fid_infinity": full - bias,
        "fid_infinity_ci95": [max(full - bias - q_hi, 0.0), full - bias - q_lo],
    }


def mean_bootstrap(
    values_N: torch.Tensor, reps: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Percentile bootstrap interval of the mean of per-item values (N,), resampling items."""
    if values_N.dim() != 1 or len(values_N) < 2:
        raise ValueError(f"expected (N >= 2,) values, got {tuple(values_N.shape)}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(values_N), (reps, len(values_N)), generator=gen)
    means = values_N.double()[idx].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return {"low": float(lo), "high": float(hi), "level": level, "reps": reps, "seed": seed}


def kid(
    real_ND: torch.Tensor, fake_ND: torch.Tensor, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float, int]:
    """Kernel (polynomial, degree 3) MMD over random subsets -> (mean, std, subset size used).

    Subset size is min(subset_size, N_real, N_fake); subsets are drawn from a fixed seed."""
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_pair(real_ND, fake_ND)
    size = min(subset_size, len(real_ND), len(fake_ND))
    with warnings.catch_warnings():  # "will save all extracted features": intended here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(
            feature=PrecomputedFeatures(real_ND.shape[1]), subsets=subsets, subset_size=size, normalize=True
        )
    metric.update(real_ND.double(), real=True)
    metric.update(fake_ND.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def inception_score(logits_NC: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E KL(p(y|x) || p(y))) from classifier logits (torchmetrics InceptionScore) -> (mean, std)."""
    from torchmetrics.image.inception import InceptionScore

    if logits_NC.dim() != 2 or len(logits_NC) < 2:
        raise ValueError(f"expected (N >= 2, C) logits, got {tuple(logits_NC.shape)}")
    splits = max(1, min(splits, len(logits_NC) // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # normalize=False: True would cast the logits to bytes
        metric = InceptionScore(
            feature=PrecomputedFeatures(logits_NC.shape[1]), splits=splits, normalize=False
        )
    metric.update(logits_NC.double())
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # std of a single split
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std) if splits > 1 else 0.0


# ----------------------------------------------------------------------------- reconstructions


def psnr_per_image(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B,) PSNR in dB on the [0, 1] scale (clamped to [0, 1] first)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _unit(recon), _unit(target)
    return peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim_per_image(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B,) SSIM (Gaussian window 11, sigma 1.5; smaller for tiny images)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    side = min(recon.shape[-2:])
    k = min(11, side - (1 - side % 2))  # odd window that fits
    sigma = 1.5 * k / 11
    return structural_similarity_index_measure(
        _unit(recon), _unit(target), data_range=1.0, kernel_size=k, sigma=sigma, reduction="none"
    )


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


# ----------------------------------------------------------------------------- bit statistics


def bit_statistics(bits_BdHW: torch.Tensor, group_size: int, image_hw: tuple[int, int]) -> dict[str, Any]:
    """Bits per pixel, per-bit balance and per-group code entropy of binary codes (B, d, h, w) in ±1.

    Group entropy is the plug-in estimate (bits) of the code distribution of each group of
    ``group_size`` consecutive bits over all tokens; it is biased low when tokens << 2^group_size."""
    from ..tokenizer.quantizer import group_indices

    b, d, h, w = bits_BdHW.shape
    if d % group_size:
        raise ValueError(f"group_size {group_size} must divide the {d} bits per token")
    on = (bits_BdHW > 0).float()
    p_bit = on.mean(dim=(0, 2, 3))  # (d,)
    codes = group_indices(bits_BdHW.float(), group_size)  # (G, tokens)
    groups = []
    for g in range(codes.shape[0]):
        counts = torch.bincount(codes[g], minlength=2**group_size).double()
        p = counts / counts.sum()
        nz = p[p > 0]
        ent = float(-(nz * nz.log2()).sum())
        groups.append(
            {
                "group": g,
                "entropy_bits": ent,
                "perplexity": 2**ent,
                "codes_used": int((counts > 0).sum()),
                "codes_possible": 2**group_size,
            }
        )
    tokens = b * h * w
    return {
        "bits_per_token": d,
        "tokens_per_image": h * w,
        "bits_per_image": d * h * w,
        "bits_per_pixel": d * h * w / (image_hw[0] * image_hw[1]),
        "bit_on_fraction": p_bit.tolist(),
        "balance_mean_abs_deviation": float((p_bit - 0.5).abs().mean()),
        "balance_worst_bit": int((p_bit - 0.5).abs().argmax()),
        "balance_worst_deviation": float((p_bit - 0.5).abs().max()),
        "group_size": group_size,
        "groups": groups,
        "group_entropy_mean": float(sum(g["entropy_bits"] for g in groups) / len(groups)),
        "group_entropy_max": min(group_size, math.log2(tokens)) if tokens else 0.0,
        "tokens": tokens,
    }


def psnr(x_B3HW: torch.Tensor, y_B3HW: torch.Tensor) -> torch.Tensor:
    """Batch-mean PSNR in dB (`psnr_per_image`, each image capped at 100 dB so equal images stay finite)."""
    return psnr_per_image(x_B3HW.float(), y_B3HW.float()).clamp_max(100.0).mean()


def ssim(x_B3HW: torch.Tensor, y_B3HW: torch.Tensor) -> torch.Tensor:
    """Batch-mean SSIM (`ssim_per_image`)."""
    return ssim_per_image(x_B3HW.float(), y_B3HW.float()).mean()


def bit_usage(bits_BdHW: torch.Tensor) -> dict[str, float]:
    """How well the binary code is used: mean per-bit entropy (1.0 = every bit balanced) and the fraction
    of distinct tokens in the batch (the training monitor; `bit_statistics` is the full report)."""
    on = (bits_BdHW > 0).float().mean(dim=(0, 2, 3)).clamp(1e-6, 1 - 1e-6)
    ent = -(on * on.log2() + (1 - on) * (1 - on).log2()).mean()
    tokens = (bits_BdHW > 0).permute(0, 2, 3, 1).reshape(-1, bits_BdHW.shape[1])
    distinct = torch.unique(tokens, dim=0).shape[0] / max(1, tokens.shape[0])
    return {"bit_entropy": float(ent), "distinct_tokens": float(distinct)}
