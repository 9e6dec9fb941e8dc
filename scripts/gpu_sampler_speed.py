"""GPU sampler speed (prepared, NOT yet run: no GPU was available when it was written; see docs/speed.md).

    python scripts/gpu_sampler_speed.py --out gpu_speed.json            # ~5 min on one H100/H200-class GPU

1. `BitDance-B-16x` shape, random weights, 256 px (16x16 tokens, P = 16), CFG 6.1, 100 head steps, bf16
   autocast, batch 64: images/s of token sampling for the `reference` and `fast-exact` / `fast4` settings
   (official figure ~90 images/s; the tokenizer decode is not included).
2. 14B-64x shape, random weights, 1024x1024 (64x64 tokens, P = 64 -> 64 AR steps), batch 1: seconds per
   image with `--layers` of the 48 backbone layers, scaled to 48 by the measured per-layer time
   (t(48) = t(L) + (48 - L) * (t(L) - t(L/2)) / (L/2)). The backbone is our decoder at the LLM's width
   (5120, 40 heads), not Qwen itself; the head width follows `--head-dim` (an assumption, given below).

Prints one JSON document and writes it to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from bitdance.core.configs import GeneratorConfig, get_preset
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.sampling.decode import SamplingOptions, generate_bits
from bitdance.sampling.presets import sampler_settings


def _model(cfg: GeneratorConfig, device: str) -> BitDanceTransformer:
    torch.manual_seed(0)
    m = BitDanceTransformer(cfg).eval()
    with torch.no_grad():
        for p in m.head.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return m.to(device)


def _time(fn, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def b16x(batch: int, settings: list[str], repeats: int) -> dict:
    m = _model(get_preset("generator", "BitDance-B-16x"), "cuda")
    cond = torch.arange(batch, device="cuda") % 1000
    rows = {}
    for s in settings:
        kw = sampler_settings(s, 100)
        opts = SamplingOptions(16, kw["num_sampling_steps"], 6.1, solver=kw["solver"], autocast="bf16")
        gens = [torch.Generator(device="cuda").manual_seed(i) for i in range(batch)]
        t = _time(lambda opts=opts, gens=gens: generate_bits(m, cond, opts, gens), repeats)
        rows[s] = {"seconds_per_batch": t, "images_per_second": batch / t, **kw}
    return {"shape": "BitDance-B-16x", "batch": batch, "dtype": "bf16 autocast", "rows": rows}


def t2i_64x(layers: int, head_dim: int, settings: list[str]) -> dict:
    base = GeneratorConfig(
        latent_bits=32,
        grid_size=(64, 64),
        dim=5120,
        n_layer=layers,
        n_head=40,
        cond_type="class",
        num_classes=1,
        cls_token_num=16,
        parallel_num=64,
        head_type="attention",
        head_dim=head_dim,
        head_depth=2,
        head_pos="sincos",
        head_bounded=True,
    )
    out = {}
    cond = torch.zeros(1, dtype=torch.long, device="cuda")
    for s in settings:
        kw = sampler_settings(s, 50)
        per = {}
        for n in (layers // 2, layers):
            m = _model(dataclasses.replace(base, n_layer=n), "cuda").to(torch.bfloat16)
            opts = SamplingOptions(64, kw["num_sampling_steps"], 7.5, solver=kw["solver"], autocast="bf16")
            per[n] = _time(lambda m=m, opts=opts: generate_bits(m, cond, opts, None), 1)
            del m
            torch.cuda.empty_cache()
        half, full = per[layers // 2], per[layers]
        scaled = full + (48 - layers) * (full - half) / (layers - layers // 2)
        out[s] = {"seconds_measured": per, "seconds_per_image_scaled_to_48_layers": scaled, **kw}
    return {"shape": "14B-64x (backbone width 5120)", "image": "1024x1024", "layers_run": layers, "rows": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_speed.json")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--layers", type=int, default=8, help="14B-64x backbone layers actually run (default 8)")
    ap.add_argument("--head-dim", type=int, default=1536, help="14B-64x head width (assumed; default 1536)")
    ap.add_argument("--settings", default="reference,fast-exact,fast4")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: this script needs a CUDA GPU")
    settings = a.settings.split(",")
    res = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "b16x": b16x(a.batch, settings, a.repeats),
        "t2i_64x": t2i_64x(a.layers, a.head_dim, settings),
    }
    text = json.dumps(res, indent=1)
    print(text)
    with open(a.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
