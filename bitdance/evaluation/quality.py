"""Generative quality: FID / KID against a held-out reference sample, in several feature spaces, plus an
Inception-Score-style score and class accuracy from the project classifier.

    bitdance eval fid --model M --data fashion_mnist --split test --n 1000 --features cls,effnet

Generated image i is conditioned on reference item i (its caption for text models, its label for
class-conditional ones) and uses seed ``seed + i``, so both sets have the same class (and colour) mix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from .features import CLASSIFIER_TASK, RealSet, build_feature_net, reference_features
from .metrics import fid, fid_half_sample_interval, inception_score, kid
from .report import figure_png, fmt, image_grid_png, md_table, new_figure, recipe_markdown

BOOTSTRAP_REPS = 200  # half-samples of the FID interval (well under 1 s each for 1280-d features, one thread)


def conditions_for(pipe: Any, real: RealSet) -> dict[str, Any]:
    """Pipeline keyword arguments that condition on the reference items (captions or labels)."""
    cfg = pipe.generator.config
    if cfg.cond_type == "text":
        return {"prompt": list(real.captions)}
    bad = sorted({lab for lab in real.labels if not 0 <= lab < cfg.num_classes})
    if bad:
        raise ValueError(
            f"reference labels {bad[:5]} do not fit this class-conditional model "
            f"({cfg.num_classes} classes); use a text model or a matching dataset"
        )
    return {"class_labels": list(real.labels)}


@torch.no_grad()
def generate_images(
    pipe: Any,
    conditions: dict[str, Any],
    seed: int = 0,
    batch_size: int = 16,
    sampling: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, float, dict[str, Any]]:
    """Images (N, 3, H, W) in [-1, 1] for every condition (item i uses seed + i), generation seconds and
    the pipeline's effective settings."""
    key, items = next(iter(conditions.items()))
    if not 1 <= batch_size <= 64:
        raise ValueError(f"batch_size must be in 1..64, got {batch_size}")
    out, seconds, settings = [], 0.0, {}
    for lo in range(0, len(items), batch_size):
        chunk = items[lo : lo + batch_size]
        t0 = time.perf_counter()
        res = pipe(
            **{key: chunk},
            seed=[seed + lo + j for j in range(len(chunk))],
            output_type="pt",
            **(sampling or {}),
        )
        seconds += time.perf_counter() - t0
        out.append(res.images.float().clamp(-1, 1).cpu())
        settings = res.settings
    return torch.cat(out), seconds, settings


def evaluate_quality(
    fake: torch.Tensor,
    real: RealSet,
    feature_kinds: Sequence[str],
    inception_weights: Any = None,
    cache: Any = None,
    use_cache: bool = True,
    kid_subsets: int = 100,
    fake_labels: Sequence[int] | None = None,
    bootstrap_reps: int = BOOTSTRAP_REPS,
) -> dict[str, Any]:
    """FID/KID per feature network with a 95% interval of FID from paired half-samples of the items
    (``metrics.fid_half_sample_interval``; equal set sizes, ``bootstrap_reps`` > 0); IS + class accuracy
    when the dataset has a project classifier."""
    if fake.shape[1:] != real.images.shape[1:]:
        raise ValueError(
            f"generated images {tuple(fake.shape[1:])} and reference images "
            f"{tuple(real.images.shape[1:])} differ in shape; evaluate at the model's size"
        )
    dataset = real.key["dataset"]
    res: dict[str, Any] = {"features": {}, "n_fake": len(fake), "n_real": len(real.images)}
    for kind in feature_kinds:
        net = build_feature_net(kind, dataset, inception_weights)
        t0 = time.perf_counter()
        real_f, info = reference_features(net, real, cache, use_cache)
        fake_f = net(fake)
        k_mean, k_std, k_size = kid(real_f, fake_f, subsets=kid_subsets)
        res["features"][kind] = {
            "network": net.name,
            "dim": net.dim,
            "weights_hash": net.version,
            "fid": fid(real_f, fake_f),
            "kid": k_mean,
            "kid_std": k_std,
            "kid_subset_size": k_size,
            "reference_cache": info,
        }
        if bootstrap_reps and len(real_f) == len(fake_f):
            res["features"][kind]["fid_ci95"] = fid_half_sample_interval(real_f, fake_f, bootstrap_reps)
        res["features"][kind]["seconds"] = time.perf_counter() - t0
    task = CLASSIFIER_TASK.get(dataset)
    if task is not None:
        try:
            model = build_feature_net("cls", dataset).module
        except FileNotFoundError as e:
            res["classifier"] = {"task": task, "skipped": str(e)}
            return res
        with torch.no_grad():
            logits_fake = torch.cat([model(fake[i : i + 256]) for i in range(0, len(fake), 256)])
            logits_real = torch.cat(
                [model(real.images[i : i + 256]) for i in range(0, len(real.images), 256)]
            )
        is_fake, is_fake_std = inception_score(logits_fake)
        is_real, is_real_std = inception_score(logits_real)
        res["classifier"] = {
            "task": task,
            "is_fake": is_fake,
            "is_fake_std": is_fake_std,
            "is_real": is_real,
            "is_real_std": is_real_std,
        }
        real_labels = torch.tensor(list(real.labels))
        fake_labels_t = torch.tensor(list(fake_labels)) if fake_labels is not None else real_labels
        if len(fake_labels_t) == len(fake) and bool((fake_labels_t >= 0).all()):
            hit = logits_fake.argmax(-1) == fake_labels_t
            res["classifier"]["class_accuracy_fake"] = float(hit.float().mean())
        if bool((real_labels >= 0).all()):
            hit = logits_real.argmax(-1) == real_labels
            res["classifier"]["class_accuracy_real"] = float(hit.float().mean())
    return res


FID_LABELS = {"cls": "FID_cls", "effnet": "FID_effnet", "inception": "FID (Inception)"}


def quality_markdown(res: dict[str, Any], rec: dict[str, Any]) -> str:
    rows = [
        [
            FID_LABELS[k],
            v["network"],
            v["fid"],
            _interval(v.get("fid_ci95")),
            v["kid"],
            v["kid_std"],
            v["kid_subset_size"],
        ]
        for k, v in res["features"].items()
    ]
    parts = [
        "# Generative quality",
        f"{res['n_fake']} generated vs {res['n_real']} reference images"
        + (
            f"; generation {fmt(res.get('generation_seconds'), 3)} s "
            f"({fmt(res.get('images_per_second'), 3)} images/s)"
            if res.get("generation_seconds")
            else ""
        )
        + ".",
        md_table(["metric", "feature network", "FID", "FID 95% CI", "KID", "KID std", "KID subset"], rows),
    ]
    c = res.get("classifier")
    if c and c.get("skipped"):
        parts.append(f"Classifier metrics skipped: {c['skipped']}")
    elif c:
        parts.append(
            md_table(
                ["classifier metric", "generated", "reference"],
                [
                    ["IS-style score (project classifier)", c["is_fake"], c["is_real"]],
                    [
                        "class accuracy vs conditioning label",
                        c.get("class_accuracy_fake"),
                        c.get("class_accuracy_real"),
                    ],
                ],
            )
        )
    parts.append(
        "FID_cls and FID_effnet are NOT comparable to published (Inception, 299 px, ImageNet-scale) "
        "FID numbers; compare them only with numbers from this suite on the same data, size and n."
    )
    parts.append("Plots: `fid.png`, `samples.png` (generated, first rows) and `reference.png`.")
    parts.append(recipe_markdown(rec))
    return "\n\n".join(parts)


def _interval(ci: dict[str, Any] | None) -> str:
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "-"


def quality_plots(
    res: dict[str, Any], fake: torch.Tensor, real: torch.Tensor, captions: Sequence[str]
) -> dict[str, bytes]:
    fig, ax = new_figure(5, 3)
    names = [FID_LABELS[k] for k in res["features"]]
    ax.bar(names, [v["fid"] for v in res["features"].values()], color="tab:orange")
    ax.set(ylabel="FID (lower is better)", title="FID per feature network")
    n = min(32, len(fake))
    titles = [c[:18] for c in captions[:n]]
    return {
        "fid.png": figure_png(fig),
        "samples.png": image_grid_png(list(fake[:n]), titles),
        "reference.png": image_grid_png(list(real[:n]), titles),
    }
