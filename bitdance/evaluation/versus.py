"""BitDance vs the diffusion baseline, in one run: FID_cls (and KID_cls) against the same reference sample and
images/s measured while generating those samples, side by side with ratios.

    bitdance bench --vs-diffusion --model M --baseline runs/baseline --data fashion_mnist --n 500
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from .baseline import DiffusionBaseline, labels_for_items
from .features import RealSet, build_feature_net, reference_features
from .metrics import fid, kid
from .quality import conditions_for, generate_images
from .report import fmt, image_grid_png, md_table, recipe_markdown


def compare(
    pipe: Any,
    baseline: DiffusionBaseline,
    real: RealSet,
    seed: int = 0,
    batch_size: int = 16,
    sampling: dict[str, Any] | None = None,
    baseline_steps: Sequence[int] = (50, 20),
    baseline_cfg: float = 1.0,
    cache: Any = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Generate ``len(real)`` images with each system (same conditions, seeds seed + i) and score them."""
    size = tuple(real.images.shape[-2:])
    if baseline.meta["size"] != size[0] or size[0] != size[1]:
        raise ValueError(
            f"baseline trained at {baseline.meta['size']} px but the reference images are "
            f"{size[0]}x{size[1]}; evaluate both systems at the same size"
        )
    if real.key["dataset"] != baseline.meta["dataset"]:
        raise ValueError(
            f"baseline trained on {baseline.meta['dataset']}, reference data is {real.key['dataset']}"
        )
    tinted = bool(real.key["options"].get("tint", False))
    if tinted != baseline.meta["tinted"]:
        raise ValueError(
            f"baseline tinted={baseline.meta['tinted']} but the reference data has tint={tinted}"
        )
    net = build_feature_net("cls", real.key["dataset"])
    real_f, cache_info = reference_features(net, real, cache, use_cache)
    n = len(real.images)
    systems: list[dict[str, Any]] = []

    def score(name: str, images: torch.Tensor, seconds: float, extra: dict[str, Any]) -> None:
        fake_f = net(images)
        k, k_std, k_size = kid(real_f, fake_f)
        systems.append(
            {
                "system": name,
                "fid_cls": fid(real_f, fake_f),
                "kid_cls": k,
                "kid_cls_std": k_std,
                "kid_subset_size": k_size,
                "images_per_second": n / seconds,
                "seconds": seconds,
                **extra,
                "samples": images[:16],
            }
        )

    images, seconds, settings = generate_images(pipe, conditions_for(pipe, real), seed, batch_size, sampling)
    score(
        "BitDance",
        images,
        seconds,
        {
            "params": sum(p.numel() for p in pipe.generator.parameters()),
            "settings": settings,
            "model_hash": pipe.model_hash,
        },
    )
    labels = labels_for_items(real.metas, real.labels, tinted)
    for steps in baseline_steps:
        chunks, t0 = [], time.perf_counter()
        for lo in range(0, n, batch_size):
            chunks.append(
                baseline.sample(
                    labels[lo : lo + batch_size],
                    steps,
                    [seed + lo + j for j in range(min(batch_size, n - lo))],
                    baseline_cfg,
                )
            )
        score(
            f"UNet DDIM-{steps}",
            torch.cat(chunks),
            time.perf_counter() - t0,
            {
                "params": baseline.params,
                "weights_hash": baseline.weights_hash,
                "settings": {"ddim_steps": steps, "eta": 0.0, "guidance_scale": baseline_cfg},
            },
        )
    ours = systems[0]
    for s in systems:
        s["fid_ratio_vs_bitdance"] = s["fid_cls"] / ours["fid_cls"] if ours["fid_cls"] > 0 else float("nan")
        s["speed_ratio_bitdance_over_this"] = ours["images_per_second"] / s["images_per_second"]
    return {
        "systems": systems,
        "n": n,
        "batch_size": batch_size,
        "feature_network": net.name,
        "reference_cache": cache_info,
        "baseline_meta": baseline.meta,
    }


def comparison_table(res: dict[str, Any]) -> str:
    rows = [
        [
            s["system"],
            f"{s['params'] / 1e6:.1f}M",
            s["fid_cls"],
            s["kid_cls"],
            s["images_per_second"],
            s["fid_ratio_vs_bitdance"],
            s["speed_ratio_bitdance_over_this"],
        ]
        for s in res["systems"]
    ]
    return md_table(
        [
            "system",
            "params",
            "FID_cls",
            "KID_cls",
            "images/s",
            "FID / FID(BitDance)",
            "BitDance speed-up (x)",
        ],
        rows,
    )


def versus_markdown(res: dict[str, Any], rec: dict[str, Any]) -> str:
    meta = res["baseline_meta"]
    return "\n\n".join(
        [
            "# BitDance vs diffusion baseline",
            f"{res['n']} images per system, batch {res['batch_size']}, FID_cls in the "
            f"{res['feature_network']} "
            "feature space against the same reference sample; images/s measured while generating "
            "them (same run).",
            comparison_table(res),
            f"Baseline: diffusers UNet2DModel width {meta.get('width')}, "
            f"{meta.get('params', 0) / 1e6:.1f}M params, "
            f"{meta.get('steps')} steps in {fmt(meta.get('train_seconds'))} s of training (budget "
            f"{fmt(meta.get('budget_seconds'))} s), conditioning {meta.get('conditioning')}.",
            "Plot: `samples.png` (rows: BitDance, then each DDIM setting).",
            recipe_markdown(rec),
        ]
    )


def versus_plots(res: dict[str, Any]) -> dict[str, bytes]:
    imgs, titles = [], []
    for s in res["systems"]:
        k = min(8, len(s["samples"]))
        imgs += list(s["samples"][:k])
        titles += [s["system"]] * k
    return {"samples.png": image_grid_png(imgs, titles, cols=8)}
