"""Tokenizer evaluation on a held-out split: reconstruction quality (PSNR, SSIM) and code statistics
(bits per pixel, per-bit balance, per-group code entropy).

    bitdance eval tokenizer --tokenizer FOLDER --data fashion_mnist --split test --n 1000
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .metrics import bit_statistics, mean_bootstrap, psnr_per_image, ssim_per_image
from .report import figure_png, fmt, image_grid_png, md_table, new_figure, recipe_markdown


@torch.no_grad()
def evaluate_tokenizer(
    tokenizer: torch.nn.Module, images_B3HW: torch.Tensor, batch_size: int = 64
) -> dict[str, Any]:
    """Encode -> decode every image; returns per-image PSNR/SSIM summaries, bit statistics and a few
    (original, reconstruction) pairs under ``"examples"``."""
    tokenizer.eval()
    f = tokenizer.downsample
    h, w = images_B3HW.shape[-2:]
    if h % f or w % f:
        raise ValueError(f"image size {h}x{w} is not a multiple of the tokenizer's downsampling factor {f}")
    device = next(tokenizer.parameters()).device
    psnr, ssim, bits, recon_keep = [], [], [], []
    start = time.perf_counter()
    for i in range(0, len(images_B3HW), batch_size):
        x = images_B3HW[i : i + batch_size].to(device)
        gen = torch.Generator(device=device).manual_seed(i) if tokenizer.config.gan_decoder else None
        b = tokenizer.encode(x)
        r = tokenizer.decode(b, generator=gen)
        psnr.append(psnr_per_image(r.cpu(), x.cpu()))
        ssim.append(ssim_per_image(r.cpu(), x.cpu()))
        bits.append(b.cpu())
        if len(recon_keep) < 16:
            recon_keep.extend(zip(x.cpu()[: 16 - len(recon_keep)], r.cpu()))
    seconds = time.perf_counter() - start
    p, s = torch.cat(psnr), torch.cat(ssim)
    stats = bit_statistics(torch.cat(bits), tokenizer.config.entropy_group_size, (h, w))
    return {
        "psnr_db": float(p.mean()),
        "psnr_db_std": float(p.std()) if len(p) > 1 else 0.0,
        "psnr_db_ci95": mean_bootstrap(p) if len(p) > 1 else None,
        "ssim": float(s.mean()),
        "ssim_std": float(s.std()) if len(s) > 1 else 0.0,
        "ssim_ci95": mean_bootstrap(s) if len(s) > 1 else None,
        "images": len(p),
        "image_size": [h, w],
        "seconds": seconds,
        **stats,
        "examples": recon_keep,
    }


def tokenizer_markdown(res: dict[str, Any], rec: dict[str, Any]) -> str:
    rows = [
        ["PSNR (dB, [0,1] scale)", res["psnr_db"], res["psnr_db_std"]],
        ["SSIM", res["ssim"], res["ssim_std"]],
        ["bits per pixel", res["bits_per_pixel"], None],
        ["bits per image", res["bits_per_image"], None],
        ["bit balance: mean abs(p_on - 0.5)", res["balance_mean_abs_deviation"], None],
        ["bit balance: worst bit deviation", res["balance_worst_deviation"], None],
        [f"code entropy per {res['group_size']}-bit group (mean, bits)", res["group_entropy_mean"], None],
    ]
    groups = [
        [g["group"], g["entropy_bits"], g["perplexity"], f"{g['codes_used']}/{g['codes_possible']}"]
        for g in res["groups"]
    ]
    return "\n\n".join(
        [
            "# Tokenizer evaluation",
            f"{res['images']} images at {res['image_size'][0]}x{res['image_size'][1]} px, "
            f"{res['tokens']} tokens; {fmt(res['seconds'], 3)} s.",
            md_table(["metric", "mean", "std"], rows),
            "Per-group code entropy (plug-in estimate; at most log2(tokens) = "
            f"{fmt(res['group_entropy_max'], 3)} bits with this sample):",
            md_table(["group", "entropy (bits)", "perplexity", "codes used"], groups),
            "Plots: `bit_balance.png`, `group_entropy.png`, `reconstructions.png` (top: input, "
            "bottom: output).",
            recipe_markdown(rec),
        ]
    )


def tokenizer_plots(res: dict[str, Any]) -> dict[str, bytes]:
    fig, ax = new_figure()
    p = np.asarray(res["bit_on_fraction"])
    ax.bar(np.arange(len(p)), p, color="tab:blue")
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set(xlabel="bit (channel)", ylabel="fraction of +1", title="Bit balance", ylim=(0, 1))
    balance = figure_png(fig)
    fig, ax = new_figure()
    ent = [g["entropy_bits"] for g in res["groups"]]
    ax.bar(np.arange(len(ent)), ent, color="tab:green")
    ax.axhline(res["group_entropy_max"], color="k", lw=0.8, ls="--", label="max for this sample")
    ax.set(xlabel="group", ylabel="entropy (bits)", title=f"Code entropy per {res['group_size']}-bit group")
    ax.legend(fontsize=7)
    entropy = figure_png(fig)
    ex = res["examples"]
    grid = image_grid_png([a for a, _ in ex] + [b for _, b in ex], cols=max(len(ex), 1))
    return {"bit_balance.png": balance, "group_entropy.png": entropy, "reconstructions.png": grid}
