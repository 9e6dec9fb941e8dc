"""`bitdance quantize --report`: fp32 vs int8 in one run.

Measures weights on disk, RSS while generating (each variant in a fresh subprocess), images/s at the
requested batch sizes (fp32 and int8 runs interleaved in one process, best of N, so machine noise hits
both alike), fp32-vs-int8 agreement (bits, head x-prediction), the tokenizer decoder's PSNR change and the
encoder's bit agreement under int8 weights, and the evaluation suite's adherence / FID_cls deltas when that
suite provides them.
Nothing is estimated: what cannot be measured is reported as "not measured: <why>".
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .model import (
    DECODER_PATTERNS,
    ENCODER_PATTERNS,
    folder_bytes,
    quantize_model,
    quantize_pipeline,
    save_quantized_pipeline,
)

TARGETS = {
    "weights_ratio_max": 0.30,
    "speedup_b1_min": 1.5,
    "adherence_drop_max": 2.0,
    "fid_increase_max": 0.10,
}


@dataclass
class ReportOptions:
    model: str = "bitdance-mini"
    scheme: str = "int8-dynamic"
    decoder: str = "int8"  # the CLI's defaults: the whole pipeline int8
    encoder: str = "int8"
    samples: int = 8  # images per variant for agreement / evaluation deltas
    batch_sizes: tuple[int, ...] = (1, 16)
    repeats: int = 3
    steps: int | None = None  # head sampling steps (None: the model's default)
    seed: int = 0
    probe_rss: bool = True
    patterns: tuple[str, ...] | None = None  # generator layers (None: GENERATOR_PATTERNS)


def _conditions(pipe: Any, n: int) -> dict[str, Any]:
    cfg = pipe.generator.config
    if cfg.cond_type == "class":
        return {"class_labels": [i % cfg.num_classes for i in range(n)]}
    from ..data import COLOURS, FASHION_CLASSES

    colours = list(COLOURS)
    return {
        "prompt": [
            f"a {colours[i % len(colours)]} {FASHION_CLASSES[i % len(FASHION_CLASSES)]}" for i in range(n)
        ]
    }


def measure_sizes(fp32_dir: Path, int8_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("generator", "tokenizer"):
        a, b = folder_bytes(fp32_dir / part), folder_bytes(int8_dir / part)
        out[part] = {"fp32_bytes": a, "int8_bytes": b, "ratio": round(b / a, 4)}
    a, b = folder_bytes(fp32_dir), folder_bytes(int8_dir)
    out["total"] = {"fp32_bytes": a, "int8_bytes": b, "ratio": round(b / a, 4)}
    return out


def probe_rss(folder: Path, batch: int, steps: int | None) -> dict[str, Any]:
    """Run the memory probe in a fresh interpreter; returns its JSON (or an error entry)."""
    cmd = [
        sys.executable,
        "-m",
        "bitdance.quantization.probe",
        str(folder),
        "--batch",
        str(batch),
        "--threads",
        str(torch.get_num_threads()),
    ]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe failed: {tail}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure_speed(
    pipes: dict[str, Any], batch_sizes: Sequence[int], repeats: int, steps: int | None, seed: int
) -> dict[str, Any]:
    """images/s per variant and batch size; variants alternate inside each repeat; best of `repeats`."""
    out: dict[str, Any] = {}
    for b in batch_sizes:
        cond = _conditions(next(iter(pipes.values())), b)
        best = {name: math.inf for name in pipes}
        for pipe in pipes.values():  # warm-up (allocator, kernel caches)
            pipe(**cond, num_sampling_steps=steps, seed=seed, output_type="np")
        for _ in range(repeats):
            for name, pipe in pipes.items():
                t = time.perf_counter()
                pipe(**cond, num_sampling_steps=steps, seed=seed, output_type="np")
                best[name] = min(best[name], time.perf_counter() - t)
        row = {f"{name}_images_per_s": round(b / s, 3) for name, s in best.items()}
        row["speedup"] = round(best["fp32"] / best["int8"], 3)
        out[f"batch_{b}"] = row
    return out


@torch.no_grad()
def measure_agreement(fp32: Any, int8: Any, samples: int, steps: int | None, seed: int) -> dict[str, Any]:
    """Same seeds through both: fraction of equal bits, image max/mean abs diff, head x-pred rel. error."""
    cond = _conditions(fp32, samples)
    a = fp32(**cond, num_sampling_steps=steps, seed=seed, output_type="pt")
    b = int8(**cond, num_sampling_steps=steps, seed=seed, output_type="pt")
    cfg = fp32.generator.config
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(64, cfg.parallel_num, cfg.latent_bits, generator=g)
    t = torch.rand(64, generator=g)
    c = torch.randn(64, cfg.parallel_num, cfg.dim, generator=g)
    xa, xb = fp32.generator.head.net(z, t, c), int8.generator.head.net(z, t, c)
    note = "untrained head (outputs zeros): agreement is trivially perfect" if bool((xa == 0).all()) else ""
    return {
        "note": note,
        "bits_equal": round((a.bits == b.bits).float().mean().item(), 4),
        "image_max_abs_diff": round((a.images - b.images).abs().max().item(), 4),
        "image_mean_abs_diff": round((a.images - b.images).abs().mean().item(), 5),
        "head_xpred_rel_error": round(((xa - xb).norm() / xa.norm().clamp_min(1e-12)).item(), 5),
        "samples": samples,
    }


def _shapes_images(tokenizer: Any, samples: int, seed: int) -> torch.Tensor:
    """(samples, 3, S, S) procedural `shapes` test images at the tokenizer's size, in [-1, 1]."""
    from ..data import build_dataset

    ds = build_dataset("shapes", "test", tokenizer.config.image_size, seed=seed)
    return torch.stack([ds[i]["image"] for i in range(samples)])


@torch.no_grad()
def measure_decoder_psnr(tokenizer: Any, samples: int, seed: int = 0) -> dict[str, Any]:
    """Reconstruct procedural `shapes` images through the fp32 and the int8-weight-only decoder."""
    from ..evaluation.metrics import psnr

    images = _shapes_images(tokenizer, samples, seed)
    bits = tokenizer.encode(images)
    rec32 = tokenizer.decode(bits)
    q = copy.deepcopy(tokenizer)
    quantize_model(q, "int8-weight-only", DECODER_PATTERNS)
    rec8 = q.decode(bits)
    p32, p8 = psnr(rec32, images).item(), psnr(rec8, images).item()
    return {
        "psnr_fp32_db": round(p32, 3),
        "psnr_int8_db": round(p8, 3),
        "psnr_change_db": round(p8 - p32, 3),
        "psnr_int8_vs_fp32_db": round(psnr(rec8, rec32).item(), 2),
        "images": samples,
        "data": "shapes (test)",
    }


@torch.no_grad()
def measure_encoder_bits(tokenizer: Any, samples: int, seed: int = 0) -> dict[str, Any]:
    """Encode procedural `shapes` images with the fp32 and the int8-weight-only encoder (the editing path):
    share of equal bits, and the round-trip PSNR through the fp32 decoder with each encoder's bits."""
    from ..evaluation.metrics import psnr

    images = _shapes_images(tokenizer, samples, seed)
    bits32 = tokenizer.encode(images)
    q = copy.deepcopy(tokenizer)
    quantize_model(q, "int8-weight-only", ENCODER_PATTERNS)
    bits8 = q.encode(images)
    p32 = psnr(tokenizer.decode(bits32), images).item()
    p8 = psnr(tokenizer.decode(bits8), images).item()
    return {
        "bits_equal": round((bits32 == bits8).float().mean().item(), 5),
        "psnr_fp32_db": round(p32, 3),
        "psnr_int8_db": round(p8, 3),
        "psnr_change_db": round(p8 - p32, 3),
        "images": samples,
        "data": "shapes (test)",
    }


def _not_measured(e: BaseException) -> dict[str, str]:
    if isinstance(e, ModuleNotFoundError):
        return {"status": f"not measured: evaluation suite or its dependency missing ({e.name})"}
    return {"status": f"not measured: {e}"}


@torch.no_grad()
def fid_cls_delta(fp32: Any, int8: Any, samples: int, seed: int, steps: int | None) -> dict[str, Any]:
    """FID_cls (project classifier features) of fp32 and int8 images against the same Fashion-MNIST
    held-out items (`test-heldout`: no training or selection used them), through `bitdance.evaluation`
    (image i conditioned on item i, seed + i)."""
    try:
        from ..evaluation.features import load_real_set
        from ..evaluation.quality import conditions_for, evaluate_quality, generate_images

        text = fp32.generator.config.cond_type == "text"
        size = fp32.generator.config.grid_size[0] * fp32.tokenizer.downsample
        real = load_real_set(
            "fashion_mnist", "test-heldout", size, max(samples, 2), {"tint": True} if text else {}
        )
        cond = conditions_for(fp32, real)
        out: dict[str, Any] = {"data": real.key}
        for name, pipe in (("fp32", fp32), ("int8", int8)):
            fake, _, _ = generate_images(pipe, cond, seed, 16, {"num_sampling_steps": steps})
            out[name] = evaluate_quality(fake, real, ["cls"], use_cache=False)["features"]["cls"]["fid"]
    except (ImportError, FileNotFoundError, ValueError, RuntimeError) as e:
        return _not_measured(e)
    out["increase"] = (out["int8"] - out["fp32"]) / max(out["fp32"], 1e-12)
    return out


@torch.no_grad()
def adherence_delta(fp32: Any, int8: Any, samples: int, seed: int, steps: int | None) -> dict[str, Any]:
    """Prompt adherence (percent) of fp32 and int8 on the first `samples` prompts of the default suite."""
    if fp32.generator.config.cond_type != "text":
        return {"status": "not measured: adherence needs a text-to-image model"}
    try:
        from ..evaluation.adherence import evaluate_adherence
        from ..evaluation.prompts import load_suite

        specs = load_suite("default")[:samples]
        out: dict[str, Any] = {"prompts": len(specs), "seeds": [seed]}
        for name, pipe in (("fp32", fp32), ("int8", int8)):
            res = evaluate_adherence(pipe, specs, [seed], sampling={"num_sampling_steps": steps})
            out[name] = 100.0 * res["summary"]["overall"]
    except (ImportError, FileNotFoundError, ValueError, RuntimeError) as e:
        return _not_measured(e)
    out["drop_points"] = out["fp32"] - out["int8"]
    return out


def _verdict(met: bool, shown: str) -> str:
    return f"{'met' if met else 'MISSED'} ({shown})"


def _targets(rep: dict[str, Any]) -> dict[str, str]:
    out = {}
    for part in ("generator", "total"):
        r = rep["sizes"][part]["ratio"]
        name = "generator" if part == "generator" else "pipeline"
        out[f"{name} weights <= 30% of fp32"] = _verdict(r <= TARGETS["weights_ratio_max"], f"{r:.1%}")
    sp = rep["speed"].get("batch_1", {}).get("speedup")
    key = ">= 1.5x images/s at batch 1"
    out[key] = "not measured" if sp is None else _verdict(sp >= TARGETS["speedup_b1_min"], f"{sp:.2f}x")
    ad, fd = rep["adherence"], rep["fid_cls"]
    key = "adherence drop <= 2 points"
    out[key] = ad.get("status") or _verdict(
        ad["drop_points"] <= TARGETS["adherence_drop_max"], f"{ad['drop_points']:.2f}"
    )
    key = "FID_cls increase <= 10%"
    out[key] = fd.get("status") or _verdict(
        fd["increase"] <= TARGETS["fid_increase_max"], f"{fd['increase']:.1%}"
    )
    return out


def build_report(opts: ReportOptions, workdir: str | Path | None = None) -> dict[str, Any]:
    """Run every measurement; returns a JSON-able dict."""
    from ..pipeline import BitDancePipeline

    fp32 = BitDancePipeline.from_pretrained(opts.model)
    int8 = quantize_pipeline(
        copy.deepcopy(fp32), opts.scheme, decoder=opts.decoder, patterns=opts.patterns, encoder=opts.encoder
    )
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        d32, d8 = Path(tmp) / "fp32", Path(tmp) / "int8"
        fp32.save_pretrained(d32)
        save_quantized_pipeline(int8, d8)
        rep: dict[str, Any] = {
            "options": asdict(opts),
            "model": fp32.name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "quantization": int8.generator.quantization,
            "sizes": measure_sizes(d32, d8),
        }
        rep["rss"] = (
            {name: probe_rss(d, 1, opts.steps) for name, d in (("fp32", d32), ("int8", d8))}
            if opts.probe_rss
            else {"status": "skipped (--no-rss)"}
        )
    rep["speed"] = measure_speed(
        {"fp32": fp32, "int8": int8}, opts.batch_sizes, opts.repeats, opts.steps, opts.seed
    )
    rep["agreement"] = measure_agreement(fp32, int8, opts.samples, opts.steps, opts.seed)
    rep["decoder_int8"] = measure_decoder_psnr(fp32.tokenizer, opts.samples, opts.seed)
    rep["encoder_int8"] = measure_encoder_bits(fp32.tokenizer, opts.samples, opts.seed)
    rep["adherence"] = adherence_delta(fp32, int8, opts.samples, opts.seed, opts.steps)
    rep["fid_cls"] = fid_cls_delta(fp32, int8, opts.samples, opts.seed, opts.steps)
    rep["targets"] = _targets(rep)
    return rep


def _quality_line(name: str, res: dict[str, Any], a: str, b: str, delta: str, fmt: str) -> str:
    if "status" in res:
        return f"{name}: {res['status']}"
    return f"{name}: fp32 {res[a]:.3f}, int8 {res[b]:.3f}, change {fmt.format(res[delta])}"


def format_report(rep: dict[str, Any]) -> str:
    """Human-readable summary (markdown tables)."""
    mib = 1 / 2**20
    lines = [
        f"# int8 report: {rep['model']} ({rep['quantization']['scheme']}, torch {rep['torch']}, "
        f"{rep['threads']} threads)",
        "",
        "| weights on disk | fp32 MiB | int8 MiB | ratio |",
        "|---|---|---|---|",
    ]
    for part, s in rep["sizes"].items():
        lines.append(
            f"| {part} | {s['fp32_bytes'] * mib:.2f} | {s['int8_bytes'] * mib:.2f} | {s['ratio']:.1%} |"
        )
    lines += ["", "| RSS (MiB, batch 1, fresh process) | fp32 | int8 |", "|---|---|---|"]
    rss = rep["rss"]
    if "status" in rss or any("error" in v for v in rss.values()):
        lines.append(f"| {rss.get('status') or rss} | | |")
    else:
        for key in ("peak_load_mib", "rss_after_load_mib", "peak_generate_mib"):
            lines.append(f"| {key} | {rss['fp32'][key]} | {rss['int8'][key]} |")
    lines += ["", "| speed | fp32 images/s | int8 images/s | speedup |", "|---|---|---|---|"]
    for k, row in rep["speed"].items():
        lines.append(
            f"| {k} | {row['fp32_images_per_s']} | {row['int8_images_per_s']} | {row['speedup']:.2f}x |"
        )
    a, dq, eq = rep["agreement"], rep["decoder_int8"], rep.get("encoder_int8")
    lines += [
        "",
        f"agreement over {a['samples']} samples (same seeds): bits equal {a['bits_equal']:.1%}, "
        f"image max abs diff {a['image_max_abs_diff']}, head x-pred rel. error {a['head_xpred_rel_error']}"
        + (f" ({a['note']})" if a["note"] else ""),
        f"tokenizer decoder int8 (weight-only, {dq['images']} {dq['data']} images): "
        f"PSNR {dq['psnr_fp32_db']} -> {dq['psnr_int8_db']} dB (change {dq['psnr_change_db']}), "
        f"int8 vs fp32 {dq['psnr_int8_vs_fp32_db']} dB",
        *(
            [
                f"tokenizer encoder int8 (weight-only, editing only, {eq['images']} {eq['data']} images): "
                f"bits equal {eq['bits_equal']:.2%}, round-trip PSNR {eq['psnr_fp32_db']} -> "
                f"{eq['psnr_int8_db']} dB (change {eq['psnr_change_db']})"
            ]
            if eq
            else []
        ),
        _quality_line("FID_cls", rep["fid_cls"], "fp32", "int8", "increase", "{:.1%}"),
        _quality_line("adherence (%)", rep["adherence"], "fp32", "int8", "drop_points", "{:.2f} points"),
        "",
        "| target | result |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in rep["targets"].items()]
    return "\n".join(lines)
