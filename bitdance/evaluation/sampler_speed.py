"""Sampler-speed benchmark: named sampler settings against the reference, measured in one run.

    bitdance bench --sampler-speed --model bitdance-mini

Sections (all on this machine, one process, `torch.set_num_threads` as given):
- official `BitDance-B-16x` shape with random weights, batch 1, class-conditional, CFG 6.1, the official
  100 head steps (token sampling only; the tokenizer decode is not part of it), one image per setting;
- the model (`--model`) at its default P, batch 1 and batch 16, full pipeline calls (text encoder, sampling,
  decode), best of `repeats` rounds with the settings interleaved inside every round;
- wall time of the README command (`bitdance generate "a red sneaker" -o ...` in fresh one-thread
  processes, startup included; median of 3, `readme_speed`);
- token sampling with the preallocated KV cache against the concatenating one (the model, reference
  setting, the same batch sizes; the samples must agree bit for bit);
- generator training samples/s at the `mini` preset (`bitdance.training.throughput`);
- achieved GFLOP/s of every timed call as a fraction of an fp32 matmul peak measured in the same run.

FLOPs per call are counted (FlopCounterMode) at 1 and 2 head steps and extended linearly in the step count,
which is exact for these samplers (every head step is one evaluation of the same shape).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..core.configs import get_preset
from ..core.random import PerItemSource
from ..generator.transformer import BitDanceTransformer
from ..sampling.decode import SamplingOptions, generate_bits
from ..sampling.presets import SAMPLER_PRESETS, sampler_settings
from .report import fmt, md_table
from .speed import BENCH_PROMPTS, count_flops, matmul_peak_gflops

OFFICIAL_SHAPE = "BitDance-B-16x"
OFFICIAL_STEPS = 100
OFFICIAL_CFG = 6.1


def _best(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _linear_flops(call_at: Callable[[int], Any], steps: int) -> int:
    """FLOPs of call_at(steps) from counted calls at 1 and 2 head steps (linear in the step count), in the
    steady state: one uncounted call first fills the memos a first call fills (the null prefix)."""
    call_at(1)
    f1, f2 = count_flops(lambda: call_at(1)), count_flops(lambda: call_at(2))
    return f1 + (f2 - f1) * (steps - 1)


def _rows(
    calls: dict[str, Callable[[], Any]], images: int, repeats: int, flops: dict[str, int], peak: float
) -> list[dict[str, Any]]:
    """Best-of-`repeats` time of every call, the calls interleaved inside each round."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k, fn in calls.items():
            times[k].append(_best(fn))
    ref = min(times["reference"])
    rows = []
    for k, ts in times.items():
        t = min(ts)
        rows.append(
            {
                "setting": k,
                "seconds_per_call": t,
                "seconds_all": ts,
                "images_per_second": images / t,
                "speedup_vs_reference": ref / t,
                "gflop_per_image": flops[k] / images / 1e9,
                "achieved_gflops": flops[k] / t / 1e9,
                "fraction_of_matmul_peak": flops[k] / t / 1e9 / peak,
            }
        )
    return rows


def bench_official_shape(
    settings: Sequence[str], peak: float, shape: str = OFFICIAL_SHAPE, seed: int = 0, repeats: int = 1
) -> dict[str, Any]:
    """Token sampling of one image at the official shape (random weights, label 0, CFG 6.1, 100 steps)."""
    torch.manual_seed(seed)
    model = BitDanceTransformer(get_preset("generator", shape)).eval()
    with torch.no_grad():  # the zero-initialised head outputs would make every head step trivial
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    cond = torch.tensor([0])

    def call_at(name: str, steps: int | None = None) -> Callable[[], Any]:
        kw = sampler_settings(name, OFFICIAL_STEPS)
        opts = SamplingOptions(
            parallel_num=model.config.parallel_num,
            num_sampling_steps=steps or kw["num_sampling_steps"],
            guidance_scale=OFFICIAL_CFG,
            solver=kw["solver"],
        )
        return lambda: generate_bits(model, cond, opts, PerItemSource([torch.Generator().manual_seed(seed)]))

    flops = {
        s: _linear_flops(
            lambda k, s=s: call_at(s, k)(), sampler_settings(s, OFFICIAL_STEPS)["num_sampling_steps"]
        )
        for s in settings
    }
    rows = _rows({s: call_at(s) for s in settings}, 1, repeats, flops, peak)
    for r in rows:
        r["num_sampling_steps"] = sampler_settings(r["setting"], OFFICIAL_STEPS)["num_sampling_steps"]
    params = sum(p.numel() for p in model.parameters())
    return {"shape": shape, "params": params, "guidance_scale": OFFICIAL_CFG, "batch_size": 1, "rows": rows}


def bench_pipeline(
    pipe: Any, settings: Sequence[str], batch: int, peak: float, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Full pipeline calls at the model's default P and CFG, batch `batch`, for every setting."""
    cfg = pipe.generator.config
    if cfg.cond_type == "text":
        cond: dict[str, Any] = {"prompt": [BENCH_PROMPTS[i % len(BENCH_PROMPTS)] for i in range(batch)]}
    else:
        cond = {"class_labels": [i % cfg.num_classes for i in range(batch)]}
    default_steps = pipe.defaults["num_sampling_steps"]

    def call_at(name: str, steps: int | None = None) -> Callable[[], Any]:
        kw = sampler_settings(name, default_steps)
        if steps is not None:
            kw["num_sampling_steps"] = steps
        return lambda: pipe(**cond, seed=seed, output_type="pt", **kw)

    for s in settings:  # warm-up
        call_at(s)()
    flops = {
        s: _linear_flops(
            lambda k, s=s: call_at(s, k)(), sampler_settings(s, default_steps)["num_sampling_steps"]
        )
        for s in settings
    }
    rows = _rows({s: call_at(s) for s in settings}, batch, repeats, flops, peak)
    for r in rows:
        r["num_sampling_steps"] = sampler_settings(r["setting"], default_steps)["num_sampling_steps"]
    return {
        "model": pipe.name,
        "parallel_num": pipe.defaults["parallel_num"],
        "batch_size": batch,
        "rows": rows,
    }


def readme_command_seconds(repeats: int = 3) -> dict[str, Any]:
    """Wall time of `bitdance generate "a red sneaker" -o <tmp>/sneaker.png` in fresh one-thread processes
    (median of `repeats`; `readme_speed` has the full benchmark with the `import torch` floor)."""
    from .readme_speed import README_PROMPT, bench_readme

    res = bench_readme(repeats)
    return {
        "command": f'bitdance generate "{README_PROMPT}" -o sneaker.png',
        "seconds": res["readme"]["median_s"],
        "all": res["readme"]["all_s"],
        "import_torch_seconds": res["import_torch"]["median_s"],
    }


def bench_kv_cache(pipe: Any, batch_sizes: Sequence[int], repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Token sampling (reference setting, the model's P and CFG) with the preallocated KV cache against the
    concatenating one (`SamplingOptions.kv_cache`), 2 x `repeats` interleaved rounds (best and median); the
    bits must agree."""
    cfg, d = pipe.generator.config, pipe.defaults
    rows = []
    for batch in batch_sizes:
        if cfg.cond_type == "text":
            cond: Any = pipe.encode_prompt([BENCH_PROMPTS[i % len(BENCH_PROMPTS)] for i in range(batch)])
        else:
            cond = torch.tensor([i % cfg.num_classes for i in range(batch)])

        def call(kv: str, cond: Any = cond, batch: int = batch) -> torch.Tensor:
            opts = SamplingOptions(
                parallel_num=d["parallel_num"],
                num_sampling_steps=d["num_sampling_steps"],
                guidance_scale=d["guidance_scale"],
                guidance_schedule=d["guidance_schedule"],
                kv_cache=kv,
            )
            gens = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
            return generate_bits(pipe.generator, cond, opts, PerItemSource(gens))

        if not torch.equal(call("preallocated"), call("concat")):  # also the warm-up
            raise RuntimeError("the preallocated and concatenating KV caches gave different samples")
        times: dict[str, list[float]] = {"preallocated": [], "concat": []}
        for r in range(2 * repeats):  # the order alternates: neither cache always runs first
            for kv in sorted(times, reverse=bool(r % 2)):
                times[kv].append(_best(lambda kv=kv: call(kv)))
        base, base_med = min(times["concat"]), statistics.median(times["concat"])
        for kv, ts in times.items():
            rows.append(
                {
                    "batch_size": batch,
                    "kv_cache": kv,
                    "seconds_per_call": min(ts),
                    "seconds_median": statistics.median(ts),
                    "seconds_all": ts,
                    "speedup_vs_concat": base / min(ts),
                    "speedup_vs_concat_median": base_med / statistics.median(ts),
                }
            )
    return {"model": pipe.name, "parallel_num": d["parallel_num"], "rows": rows}


def training_samples_per_second(preset: str = "mini", batch: int = 32, rounds: int = 5) -> dict[str, Any]:
    """`training_speed.bench_training_speed` (fast vs reference steps, interleaved); `samples_per_s` is the
    default (fast) step's."""
    from .training_speed import bench_training_speed

    res = bench_training_speed(preset, batch, rounds)
    fast = next(r for r in res["rows"] if r["impl"] == "fast")
    return {**res, "model": f"generator {preset}", "samples_per_s": fast["samples_per_s"]}


def bench_sampler_speed(
    pipe: Any,
    settings: Sequence[str] = ("reference", "fast-exact", "fast", "fast4"),
    official_settings: Sequence[str] = ("reference", "fast-exact", "fast4"),
    batch_sizes: Sequence[int] = (1, 16),
    repeats: int = 3,
    seed: int = 0,
    peak_size: int = 2048,
    official: bool = True,
    readme: bool = True,
    training: bool = True,
    kv_cache: bool = True,
) -> dict[str, Any]:
    """Every section of the module docstring; returns plain JSON-able results."""
    for s in [*settings, *official_settings]:
        sampler_settings(s, 1)  # validates the names
    for name, chosen in (("settings", settings), ("official settings", official_settings)):
        if "reference" not in chosen:
            raise ValueError(f"{name} must include 'reference' (speed-ups are measured against it)")
    peak = matmul_peak_gflops(peak_size)
    out: dict[str, Any] = {
        "peak_gflops": peak,
        "peak_matmul_size": peak_size,
        "threads": torch.get_num_threads(),
    }
    out["settings"] = {k: vars(v) for k, v in SAMPLER_PRESETS.items()}
    out["model"] = [bench_pipeline(pipe, settings, b, peak, repeats, seed) for b in batch_sizes]
    if official:
        out["official_shape"] = bench_official_shape(official_settings, peak, seed=seed)
    if readme:
        out["readme_command"] = readme_command_seconds()
    if training:
        out["training"] = training_samples_per_second()
    if kv_cache:
        out["kv_cache"] = bench_kv_cache(pipe, batch_sizes, repeats, seed)
    return out


def sampler_speed_table(res: dict[str, Any]) -> dict[str, Any]:
    """The shared-format table: one row per (section, setting)."""
    cols = ["section", "setting", "head steps", "s/call", "images/s", "speed-up", "GFLOP/s", "of peak (%)"]
    rows = []
    sections = [(f"{m['model']} P={m['parallel_num']} batch {m['batch_size']}", m) for m in res["model"]]
    if "official_shape" in res:
        o = res["official_shape"]
        sections.insert(0, (f"{o['shape']} random weights, batch 1 (tokens only)", o))
    for title, sec in sections:
        for r in sec["rows"]:
            rows.append(
                [
                    title,
                    r["setting"],
                    r["num_sampling_steps"],
                    fmt(r["seconds_per_call"], 3),
                    fmt(r["images_per_second"], 3),
                    f"{r['speedup_vs_reference']:.2f}x",
                    fmt(r["achieved_gflops"], 3),
                    f"{100 * r['fraction_of_matmul_peak']:.1f}",
                ]
            )
    return {"columns": cols, "rows": rows}


def kv_cache_table(res: dict[str, Any]) -> dict[str, Any]:
    """The KV-cache comparison as a shared-format table (empty rows without that section)."""
    cols = ["batch", "KV cache", "best s/call", "median s/call", "speed-up (best)", "speed-up (median)"]
    rows = [
        [
            r["batch_size"],
            r["kv_cache"],
            fmt(r["seconds_per_call"], 3),
            fmt(r["seconds_median"], 3),
            f"{r['speedup_vs_concat']:.2f}x",
            f"{r['speedup_vs_concat_median']:.2f}x",
        ]
        for r in res.get("kv_cache", {}).get("rows", [])
    ]
    return {"columns": cols, "rows": rows}


def sampler_speed_markdown(res: dict[str, Any]) -> str:
    t = sampler_speed_table(res)
    parts = [
        "# Sampler speed",
        f"fp32 matmul peak measured in this run: {fmt(res['peak_gflops'], 4)} GFLOP/s "
        f"({res['peak_matmul_size']}^2, {res['threads']} thread(s)).",
        md_table(t["columns"], t["rows"]),
    ]
    if "readme_command" in res:
        r = res["readme_command"]
        parts.append(f"README command `{r['command']}`: {r['seconds']:.2f} s wall (startup included).")
    if "kv_cache" in res:
        kv = res["kv_cache"]
        parts.append(
            "KV cache (tokens only, reference setting): "
            + "; ".join(
                f"batch {r['batch_size']} {r['kv_cache']} best {r['seconds_per_call']:.3f} s "
                f"({r['speedup_vs_concat']:.2f}x), median {r['seconds_median']:.3f} s "
                f"({r['speedup_vs_concat_median']:.2f}x)"
                for r in kv["rows"]
            )
        )
    if "training" in res:
        tr = res["training"]
        parts.append(
            f"Training ({tr['model']}, batch {tr['batch']}): "
            + "; ".join(
                f"{r['impl']} {r['samples_per_s']:.2f} samples/s ({r['speedup_vs_reference']:.2f}x)"
                for r in tr["rows"]
            )
            + "."
        )
    return "\n\n".join(parts)


def _speedups(res: dict[str, Any]) -> dict[str, Any]:
    m: dict[str, Any] = {}
    for sec in res["model"]:
        m[f"batch_{sec['batch_size']}"] = {r["setting"]: r["speedup_vs_reference"] for r in sec["rows"]}
    if "official_shape" in res:
        m["official_shape"] = {r["setting"]: r["speedup_vs_reference"] for r in res["official_shape"]["rows"]}
    return m


def shared_report(res: dict[str, Any], rec: dict[str, Any]) -> str:
    """The committed-report format of docs/results/speed_sampler.json (name, recipe, metrics, tables)."""
    import json

    from .report import _clean

    recipe = {k: v for k, v in rec.items() if k not in ("machine", "utc")}
    metrics: dict[str, Any] = {
        "peak_gflops": res["peak_gflops"],
        "speedup": _speedups(res),
        "readme_command_seconds": res.get("readme_command", {}).get("seconds"),
        "training_samples_per_s": res.get("training", {}).get("samples_per_s"),
        "kv_cache_speedup": {
            f"batch_{r['batch_size']}": r["speedup_vs_concat"]
            for r in res.get("kv_cache", {}).get("rows", [])
            if r["kv_cache"] == "preallocated"
        },
        "sections": {k: v for k, v in res.items() if k not in ("peak_gflops",)},
    }
    doc = {
        "name": "speed_sampler",
        "recipe": recipe,
        "machine": rec.get("machine"),
        "created": rec.get("utc"),
        "metrics": metrics,
        "tables": {"sampler_speed": sampler_speed_table(res), "kv_cache": kv_cache_table(res)},
    }
    return json.dumps(_clean(doc), indent=1) + "\n"
