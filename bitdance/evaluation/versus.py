"""BitDance vs the diffusion baseline, in one run: the quality/speed frontier of both systems on the same
reference conditions, and the speed ratio at matched FID_cls.

    bitdance bench --vs-diffusion --model M --baseline runs/baseline-v2 --split test-heldout --n 500 \
        --results docs/results/vs_diffusion.json --images-dir docs/images

Every setting generates the same n images (image i conditioned on reference item i: its caption for our
text model, its class x tint label for the baseline; seed + i), scored by FID_cls against the same
reference sample with a 95 % paired half-sample interval (`metrics.fid_half_sample_interval`); images/s
is measured while generating them (batch ``--vs-batch-size``), FLOPs per image are counted with torch's
FlopCounterMode (ours: one extra untimed pipeline call, text encoder and decoder included; baseline:
one UNet call x steps x 2 with guidance).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .baseline import DiffusionBaseline, labels_for_items
from .features import RealSet, build_feature_net, reference_features
from .metrics import fid, fid_half_sample_interval
from .quality import conditions_for, generate_images
from .report import image_grid_png, md_table, recipe_markdown
from .versus_frontier import frontier, frontier_plot_png, matched_quality

SAMPLER_TITLES = {"dpmpp": "DPM++", "ddim": "DDIM", "euler": "Euler"}


def dev_guidance(meta: dict[str, Any]) -> float:
    """The baseline's guidance scale by the fixed rule: the scale with the lowest dev FID_cls at the last dev
    evaluation of its training run (dev items, never the comparison's); 1.0 when the run had no monitor."""
    hist = meta.get("dev_history") or []
    if not hist:
        return 1.0
    last = {k: v for k, v in hist[-1].items() if k.startswith("dev_fid_cls_cfg")}
    if not last:
        return 1.0
    best = min(last, key=last.get)
    return float(best.removeprefix("dev_fid_cls_cfg"))


def check_pair(baseline: DiffusionBaseline, real: RealSet) -> None:
    """The baseline must have been trained on the reference data's dataset, size and tinting."""
    size = tuple(real.images.shape[-2:])
    if baseline.config.size != size[0] or size[0] != size[1]:
        raise ValueError(
            f"baseline trained at {baseline.config.size} px but the reference images are "
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


def _our_flops(pipe: Any, conditions: dict[str, Any], sampling: dict[str, Any], seed: int) -> int:
    from .speed import count_flops

    key, items = next(iter(conditions.items()))
    b = min(2, len(items))
    call = lambda: pipe(**{key: items[:b]}, seed=[seed + j for j in range(b)], output_type="pt", **sampling)  # noqa: E731
    with torch.no_grad():
        return count_flops(call) // b


def compare(
    pipe: Any,
    baseline: DiffusionBaseline,
    real: RealSet,
    ours: Sequence[tuple[int, int]] = ((1, 20), (4, 20), (16, 20)),
    baseline_steps: Sequence[int] = (5, 10, 20, 50),
    baseline_samplers: Sequence[str] = ("dpmpp",),
    baseline_cfg: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
    cache: Any = None,
    bootstrap_reps: int = 200,
    flops: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Score every (P, head steps) setting of ours and every (sampler, steps) of the baseline on ``real``'s
    conditions; returns {"points": [...], "frontier": {...}, "matched": {...}, ...}."""
    check_pair(baseline, real)
    supported = tuple(pipe.generator.config.supported_parallel)
    bad = sorted({p for p, _ in ours if p not in supported})
    if bad:
        raise ValueError(f"this model supports P in {supported}, not {bad}")
    cfg = dev_guidance(baseline.meta) if baseline_cfg is None else float(baseline_cfg)
    net = build_feature_net("cls", real.key["dataset"])
    real_f, cache_info = reference_features(net, real, cache)
    n = len(real.images)
    points: list[dict[str, Any]] = []

    def score(system: str, setting: str, images: torch.Tensor, seconds: float, extra: dict[str, Any]) -> None:
        fake_f = net(images)
        p = {
            "system": system,
            "setting": setting,
            "fid_cls": fid(real_f, fake_f),
            "ci": fid_half_sample_interval(real_f, fake_f, bootstrap_reps) if bootstrap_reps else None,
            "images_per_second": n / seconds,
            "seconds": seconds,
            **extra,
            "samples": images[:40],
        }
        points.append(p)
        log(f"{system} {setting}: FID_cls {p['fid_cls']:.3f}, {p['images_per_second']:.3g} images/s")

    conditions = conditions_for(pipe, real)
    for pnum, steps in ours:
        sampling = {"parallel_num": pnum, "num_sampling_steps": steps}
        images, seconds, settings = generate_images(pipe, conditions, seed, batch_size, sampling)
        f = _our_flops(pipe, conditions, sampling, seed) if flops else None
        score(
            "BitDance",
            f"P={pnum} head-{steps}",
            images,
            seconds,
            {"settings": settings, "gflop_per_image": f / 1e9 if f else None},
        )
    labels = labels_for_items(real.metas, real.labels, baseline.meta["tinted"])
    per_call = baseline.flops_per_call() if flops else None
    for sampler in baseline_samplers:
        for steps in baseline_steps:
            chunks, t0 = [], time.perf_counter()
            for lo in range(0, n, batch_size):
                seeds = [seed + lo + j for j in range(min(batch_size, n - lo))]
                chunks.append(baseline.sample(labels[lo : lo + batch_size], steps, seeds, cfg, sampler))
            calls = steps * (2 if cfg != 1.0 else 1)
            score(
                "diffusion",
                f"{SAMPLER_TITLES[sampler]}-{steps}",
                torch.cat(chunks),
                time.perf_counter() - t0,
                {
                    "settings": {"sampler": sampler, "steps": steps, "guidance_scale": cfg},
                    "gflop_per_image": per_call * calls / 1e9 if per_call else None,
                },
            )
    a = [p for p in points if p["system"] == "BitDance"]
    b = [p for p in points if p["system"] == "diffusion"]
    front_a, front_b = frontier(a), frontier(b)
    for p in points:
        p["on_frontier"] = any(p is q for q in front_a + front_b)
    return {
        "points": points,
        "matched": matched_quality(a, b),
        "n": n,
        "batch_size": batch_size,
        "feature_network": net.name,
        "reference_cache": cache_info,
        "baseline_guidance_scale": cfg,
        "baseline_guidance_rule": "lowest dev FID_cls at the last dev evaluation of training"
        if baseline_cfg is None
        else "given (--baseline-cfg)",
        "baseline_meta": baseline.meta,
        "baseline_params": baseline.params,
        "baseline_weights_hash": baseline.weights_hash,
        "ours_params": sum(p.numel() for p in pipe.generator.parameters()),
        "ours_model_hash": pipe.model_hash,
    }


def _ci(p: dict[str, Any]) -> str:
    return f"[{p['ci']['low']:.2f}, {p['ci']['high']:.2f}]" if p.get("ci") else "-"


def frontier_rows(res: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            "BitDance" if p["system"] == "BitDance" else "diffusion UNet",
            p["setting"],
            f"{p['fid_cls']:.2f}",
            _ci(p),
            f"{p['images_per_second']:.2f}",
            f"{p['gflop_per_image']:.3f}" if p.get("gflop_per_image") else "-",
            "yes" if p["on_frontier"] else "no",
        ]
        for p in res["points"]
    ]


FRONTIER_COLUMNS = ["system", "setting", "FID_cls", "95% CI", "images/s", "GFLOP/image", "on frontier"]
MATCHED_COLUMNS = [
    "target FID_cls",
    "BitDance setting",
    "its FID_cls",
    "its images/s",
    "diffusion setting",
    "its FID_cls",
    "its images/s",
    "speed ratio (BitDance / diffusion)",
    "FLOP ratio",
]


def matched_row(m: dict[str, Any]) -> list[Any]:
    return [
        f"{m['target_fid_cls']:.2f}",
        m["ours"],
        f"{m['ours_fid_cls']:.2f}",
        f"{m['ours_images_per_second']:.2f}",
        m["theirs"],
        f"{m['theirs_fid_cls']:.2f}",
        f"{m['theirs_images_per_second']:.2f}",
        f"{m['speed_ratio']:.2f}",
        f"{m['flop_ratio']:.2f}" if m.get("flop_ratio") else "-",
    ]


def comparison_table(res: dict[str, Any]) -> str:
    return (
        md_table(FRONTIER_COLUMNS, frontier_rows(res))
        + "\n\n"
        + md_table(MATCHED_COLUMNS, [matched_row(res["matched"])])
    )


def baseline_summary(res: dict[str, Any]) -> str:
    meta = res["baseline_meta"]
    c = meta["config"]
    return (
        f"diffusers UNet2DModel, channels {tuple(c['block_out_channels'])}, "
        f"{c['layers_per_block']} res block(s) per level, attention at level(s) "
        f"{tuple(c['attention_levels'])}, {res['baseline_params'] / 1e6:.2f}M params, "
        f"{meta.get('steps')} updates ({meta.get('train_samples')} samples), conditioning "
        f"{meta.get('conditioning')}, guidance {res['baseline_guidance_scale']:g} "
        f"({res['baseline_guidance_rule']})"
    )


def versus_markdown(res: dict[str, Any], rec: dict[str, Any]) -> str:
    return "\n\n".join(
        [
            "# BitDance vs diffusion baseline: quality/speed frontier",
            f"{res['n']} images per setting, batch {res['batch_size']}, FID_cls ({res['feature_network']}) "
            "against the same reference sample with 95 % paired half-sample intervals (without replacement); "
            "images/s measured while generating them (same run).",
            comparison_table(res),
            "Baseline: " + baseline_summary(res) + ".",
            "Plots: `frontier.png`, `baseline_samples.png`, `samples.png`.",
            recipe_markdown(rec),
        ]
    )


def versus_plots(res: dict[str, Any], captions: Sequence[str]) -> dict[str, bytes]:
    a = [p for p in res["points"] if p["system"] == "BitDance"]
    b = [p for p in res["points"] if p["system"] == "diffusion"]
    m = res["matched"]
    title = (
        f"FID_cls vs speed (n={res['n']}); matched at FID {m['target_fid_cls']:.2f}: {m['speed_ratio']:.2f}x"
    )
    best_b = min(b, key=lambda p: p["fid_cls"])
    k = len(best_b["samples"])
    imgs, titles = [], []
    for p in res["points"]:
        j = min(8, len(p["samples"]))
        imgs += list(p["samples"][:j])
        titles += [f"{p['system'][:9]} {p['setting']}"] * j
    return {
        "frontier.png": frontier_plot_png(a, b, ("BitDance", "diffusion UNet"), title),
        "baseline_samples.png": image_grid_png(
            list(best_b["samples"]), [c[:20] for c in captions[:k]], cols=10
        ),
        "samples.png": image_grid_png(imgs, titles, cols=8),
    }


def results_report(res: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """The committed report (docs/results/vs_diffusion.json; shared format of ``results_docs``)."""
    rec = dict(rec)
    machine, versions = rec.pop("machine", None), rec.pop("versions", None)
    created = rec.pop("utc", None) or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    points = [{k: v for k, v in p.items() if k != "samples"} for p in res["points"]]
    meta = {k: v for k, v in res["baseline_meta"].items()}
    m = res["matched"]
    return {
        "name": "vs_diffusion",
        "recipe": {**rec, "baseline": baseline_summary(res)},
        "machine": machine,
        "versions": versions,
        "created": created,
        "metrics": {
            "points": points,
            "matched": m,
            "n": res["n"],
            "baseline_meta": meta,
            "baseline_guidance_scale": res["baseline_guidance_scale"],
            "display": {
                "speed_ratio": f"{m['speed_ratio']:.2f}",
                "target_fid": f"{m['target_fid_cls']:.2f}",
                "best_fid_ours": f"{m['best_fid_ours']:.2f}",
                "best_fid_theirs": f"{m['best_fid_theirs']:.2f}",
                "baseline_params_m": f"{res['baseline_params'] / 1e6:.2f}",
                "baseline_steps": str(meta.get("steps")),
            },
        },
        "tables": {
            "frontier": {"columns": FRONTIER_COLUMNS, "rows": frontier_rows(res)},
            "matched": {"columns": MATCHED_COLUMNS, "rows": [matched_row(m)]},
            "dev": {
                "columns": ["training step", *[k.removeprefix("dev_fid_cls_") for k in _dev_keys(meta)]],
                "rows": [
                    [h["step"], *[f"{h[k]:.2f}" for k in _dev_keys(meta)]]
                    for h in meta.get("dev_history", [])
                ],
            },
        },
    }


def _dev_keys(meta: dict[str, Any]) -> list[str]:
    hist = meta.get("dev_history") or [{}]
    return sorted(k for k in hist[-1] if k.startswith("dev_fid_cls_"))


def write_results(path: str | Path, res: dict[str, Any], rec: dict[str, Any]) -> Path:
    from ..core.atomic import atomic_write_bytes
    from .report import _clean

    path = Path(path)
    text = json.dumps(_clean(results_report(res, rec)), indent=1, default=str) + "\n"
    atomic_write_bytes(path, text.encode())
    return path
