"""Generator training speed: the fast step (`--train-impl fast`) against the reference step, in one run.

    bitdance bench --training-speed --threads 1 --out runs/eval/training-speed

Two trainers of the same preset, batch, seed and synthetic token folder (`bitdance.training.throughput`)
differ only in `train_impl`; they take the same steps (same batches, same random draws) with the two
implementations interleaved inside every round and alternating which goes first. Reported per
implementation: seconds per optimizer step (best and median), samples/s, the speed-up over the reference,
FLOPs per step (FlopCounterMode over one step: matmuls and attention, so GFLOP/s is a lower bound) against
an fp32 matmul peak measured in the same run, the losses of both runs step by step (they must agree to
float rounding), and a `torch.profiler` breakdown of one step by phase.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..core.configs import get_preset
from .report import fmt, md_table
from .speed import count_flops, matmul_peak_gflops

IMPLS = ("reference", "fast")
PHASES = ("data", "forward", "backward", "clip", "optimizer", "ema")


def _phase_ms(trainer: Any, step: int) -> dict[str, float]:
    """Profiled wall ms of each `train/<phase>` scope of one step, plus the step and its matmul share."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        trainer.train_step(step)
        wall = time.perf_counter() - t0
    out = {k: 0.0 for k in PHASES}
    mm = total = 0.0
    for e in prof.key_averages():
        if e.key.startswith("train/") and e.key[6:] in out:
            out[e.key[6:]] += e.cpu_time_total / 1e3
        if e.key.startswith("aten::"):
            total += e.self_cpu_time_total / 1e3
            if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"):
                mm += e.self_cpu_time_total / 1e3
    out["step"] = wall * 1e3
    out["matmul_share_of_aten"] = mm / total if total else 0.0
    return out


def bench_training_speed(
    preset: str = "mini",
    batch: int = 32,
    rounds: int = 5,
    warmup: int = 1,
    parallel: int | None = None,
    peak_size: int = 2048,
    seed: int = 0,
) -> dict[str, Any]:
    """Every measurement of the module docstring; plain JSON-able results."""
    from ..training.dist import DistContext
    from ..training.generator_trainer import GeneratorTrainer, generator_config
    from ..training.optim import OptimConfig
    from ..training.throughput import synthetic_tokens
    from ..training.tokens import TokenStore

    if batch < 1 or rounds < 1 or warmup < 0:
        raise ValueError("training speed needs batch >= 1, rounds >= 1 and warmup >= 0")
    p = parallel or get_preset("generator", preset).parallel_num
    peak = matmul_peak_gflops(peak_size)
    n_steps = warmup + rounds + 2  # + one FLOP-counted and one profiled step
    with tempfile.TemporaryDirectory() as tmp:
        store = TokenStore(synthetic_tokens(Path(tmp) / "tokens", preset, count=max(64, 2 * batch)))
        cfg = generator_config(preset, store, [p])
        oc = OptimConfig(steps=n_steps, batch_size=batch, lr=1e-4, warmup=1, seed=seed)
        ctx = DistContext(device=torch.device("cpu"))
        trainers = {k: GeneratorTrainer(cfg, store, oc, ctx, train_impl=k) for k in IMPLS}
        losses: dict[str, list[float]] = {k: [] for k in IMPLS}
        times: dict[str, list[float]] = {k: [] for k in IMPLS}
        for tr in trainers.values():
            tr.start(0)
        step = 0
        for _ in range(warmup):
            for k, tr in trainers.items():
                losses[k].append(tr.train_step(step)["loss"])
            step += 1
        for r in range(rounds):
            for k in IMPLS if r % 2 == 0 else IMPLS[::-1]:
                t0 = time.perf_counter()
                losses[k].append(trainers[k].train_step(step)["loss"])
                times[k].append(time.perf_counter() - t0)
            step += 1
        flops = {k: count_flops(lambda tr=tr, s=step: tr.train_step(s)) for k, tr in trainers.items()}
        step += 1
        phases = {k: _phase_ms(tr, step) for k, tr in trainers.items()}
        params = sum(q.numel() for q in trainers["reference"].model.parameters())
    base_best, base_med = min(times["reference"]), statistics.median(times["reference"])
    rows = []
    for k in IMPLS:
        best, med = min(times[k]), statistics.median(times[k])
        rows.append(
            {
                "impl": k,
                "seconds_per_step": best,
                "seconds_median": med,
                "seconds_all": times[k],
                "samples_per_s": batch / best,
                "samples_per_s_median": batch / med,
                "speedup_vs_reference": base_best / best,
                "speedup_vs_reference_median": base_med / med,
                "gflop_per_step": flops[k] / 1e9,
                "achieved_gflops": flops[k] / 1e9 / best,
                "fraction_of_matmul_peak": flops[k] / 1e9 / best / peak,
            }
        )
    ref_l, fast_l = losses["reference"], losses["fast"]
    return {
        "preset": preset,
        "batch": batch,
        "parallel_num": p,
        "params_M": params / 1e6,
        "rounds": rounds,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "peak_gflops": peak,
        "peak_matmul_size": peak_size,
        "rows": rows,
        "losses": losses,
        "max_rel_loss_diff": max(abs(a - b) / abs(a) for a, b in zip(ref_l, fast_l)),
        "phases_ms": phases,
    }


def training_speed_table(res: dict[str, Any]) -> dict[str, Any]:
    cols = ["step", "s/step (best)", "s/step (median)", "samples/s", "speed-up (best)", "speed-up (median)"]
    cols += ["GFLOP/step", "GFLOP/s", "of peak (%)"]
    rows = [
        [
            r["impl"],
            fmt(r["seconds_per_step"], 3),
            fmt(r["seconds_median"], 3),
            fmt(r["samples_per_s"], 3),
            f"{r['speedup_vs_reference']:.2f}x",
            f"{r['speedup_vs_reference_median']:.2f}x",
            fmt(r["gflop_per_step"], 3),
            fmt(r["achieved_gflops"], 3),
            f"{100 * r['fraction_of_matmul_peak']:.1f}",
        ]
        for r in res["rows"]
    ]
    return {"columns": cols, "rows": rows}


def training_phase_table(res: dict[str, Any]) -> dict[str, Any]:
    """Profiled ms per phase of one step (profiler overhead included) for each implementation."""
    ph = res["phases_ms"]
    rows = [[k, *(f"{ph[i][k]:.1f}" for i in IMPLS)] for k in (*PHASES, "step")]
    rows.append(
        ["matmul share of aten time (%)", *(f"{100 * ph[i]['matmul_share_of_aten']:.0f}" for i in IMPLS)]
    )
    return {"columns": ["phase (ms, profiled)", *IMPLS], "rows": rows}


def training_speed_markdown(res: dict[str, Any]) -> str:
    t, ph = training_speed_table(res), training_phase_table(res)
    return "\n\n".join(
        [
            "# Generator training speed",
            f"preset {res['preset']} ({res['params_M']:.2f} M parameters), batch {res['batch']}, "
            f"P={res['parallel_num']}, {res['threads']} thread(s); fp32 matmul peak in this run "
            f"{fmt(res['peak_gflops'], 4)} GFLOP/s; largest relative loss difference between the two "
            f"runs over {len(res['losses']['fast'])} steps: {res['max_rel_loss_diff']:.2e}.",
            md_table(t["columns"], t["rows"]),
            md_table(ph["columns"], ph["rows"]),
        ]
    )


def shared_report(res: dict[str, Any], rec: dict[str, Any]) -> str:
    """docs/results/speed_training.json (name, recipe, metrics, tables)."""
    import json

    from .report import _clean

    fast = next(r for r in res["rows"] if r["impl"] == "fast")
    ref = next(r for r in res["rows"] if r["impl"] == "reference")
    metrics = {
        "speedup": fast["speedup_vs_reference"],
        "speedup_median": fast["speedup_vs_reference_median"],
        "samples_per_s": {"reference": ref["samples_per_s"], "fast": fast["samples_per_s"]},
        "fraction_of_matmul_peak": {
            "reference": ref["fraction_of_matmul_peak"],
            "fast": fast["fraction_of_matmul_peak"],
        },
        "gflop_per_step": {"reference": ref["gflop_per_step"], "fast": fast["gflop_per_step"]},
        "peak_gflops": res["peak_gflops"],
        "max_rel_loss_diff": res["max_rel_loss_diff"],
        "sections": res,
    }
    doc = {
        "name": "speed_training",
        "recipe": {k: v for k, v in rec.items() if k not in ("machine", "utc")},
        "machine": rec.get("machine"),
        "created": rec.get("utc"),
        "metrics": metrics,
        "tables": {"training_speed": training_speed_table(res), "training_phases": training_phase_table(res)},
    }
    return json.dumps(_clean(doc), indent=1) + "\n"
