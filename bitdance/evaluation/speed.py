"""Speed and cost of generation: throughput and latency per batch size and per ``parallel_num`` P on the same
weights, AR steps and head evaluations per image, peak RSS, and achieved GFLOP/s against the machine's
fp32 matmul peak measured in the same run.

    bitdance bench --model M --batch-sizes 1,16 --parallel 1,4,16

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one extra (untimed) call per
configuration (matmuls, convolutions and attention; element-wise ops are not counted, so achieved GFLOP/s
is a lower bound). Absolute times on shared machines are noisy; compare ratios measured in one run.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

import torch

from .report import figure_png, fmt, md_table, new_figure, recipe_markdown

BENCH_PROMPTS: tuple[str, ...] = (
    "a red sneaker",
    "a small green triangle in the top left",
    "three yellow squares",
    "a maple leaf",
    "a blue circle left of a white square",
    "a pair of pink trousers",
)


def matmul_peak_gflops(n: int = 2048, repeats: int = 3, device: str | torch.device = "cpu") -> float:
    """Best-of-``repeats`` fp32 GFLOP/s of an n x n @ n x n matmul (2 n^3 FLOPs) on ``device``."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Context manager: samples this process's resident set size every ``interval`` seconds in a thread
    (stopped and joined on exit) and keeps the peak (bytes)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self.start = interval, 0, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = current_rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())


def count_flops(fn) -> int:  # noqa: ANN001
    """FLOPs of one call of ``fn()`` as counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _conditions(pipe: Any, batch: int) -> dict[str, Any]:
    cfg = pipe.generator.config
    if cfg.cond_type == "text":
        return {"prompt": [BENCH_PROMPTS[i % len(BENCH_PROMPTS)] for i in range(batch)]}
    return {"class_labels": [i % cfg.num_classes for i in range(batch)]}


def bench_generation(
    pipe: Any,
    batch_sizes: Sequence[int] = (1, 16),
    parallel_nums: Sequence[int] = (1, 4, 16),
    num_sampling_steps: int | None = None,
    guidance_scale: float | None = None,
    repeats: int = 3,
    warmup: int = 1,
    seed: int = 0,
    flops: bool = True,
    peak_size: int = 2048,
) -> dict[str, Any]:
    """Time ``pipe`` for every (P, batch) pair; returns {"rows": [...], "peak_gflops": ...}."""
    if not batch_sizes or not parallel_nums:
        raise ValueError("give at least one batch size and one parallel_num")
    supported = pipe.generator.config.supported_parallel
    bad = [p for p in parallel_nums if p not in supported]
    if bad:
        raise ValueError(f"parallel_num {bad} not supported by this model; allowed: {list(supported)}")
    for b in batch_sizes:
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 64:
            raise ValueError(f"batch sizes must be integers in 1..64, got {b!r}")
    if repeats < 1 or warmup < 0 or peak_size < 64:
        raise ValueError("repeats must be >= 1, warmup >= 0 and the peak matmul size >= 64")
    device = pipe.device
    peak = matmul_peak_gflops(peak_size, device=device)
    steps = num_sampling_steps if num_sampling_steps is not None else pipe.defaults["num_sampling_steps"]
    cfg_scale = guidance_scale if guidance_scale is not None else pipe.defaults["guidance_scale"]
    tokens = pipe.generator.config.num_tokens
    rows = []
    for p in parallel_nums:
        for b in batch_sizes:
            cond = _conditions(pipe, b)

            def call(cond=cond, p=p) -> Any:  # noqa: ANN401
                return pipe(
                    **cond,
                    parallel_num=p,
                    num_sampling_steps=steps,
                    guidance_scale=cfg_scale,
                    seed=seed,
                    output_type="pt",
                )

            for _ in range(warmup):
                call()
            times = []
            with PeakRSS() as rss:
                for _ in range(repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    out = call()
                    _sync(device)
                    times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            guided = out.settings["guidance_scale"] != 1.0
            ar_steps = tokens // p
            head_evals = ar_steps * (steps + 1)
            row = {
                "parallel_num": p,
                "batch_size": b,
                "call_seconds": t,
                "call_seconds_all": times,
                "images_per_second": b / t,
                "seconds_per_image": t / b,
                "ar_steps_per_image": ar_steps,
                "head_evaluations_per_image": head_evals,
                "head_network_rows_per_image": head_evals * p * (2 if guided else 1),
                "guided": guided,
                "peak_rss_mib": rss.peak / 2**20,
                "rss_before_mib": rss.start / 2**20,
            }
            if flops:
                f = count_flops(call)
                row.update(
                    {
                        "gflop_per_image": f / b / 1e9,
                        "achieved_gflops": f / t / 1e9,
                        "fraction_of_matmul_peak": f / t / 1e9 / peak,
                    }
                )
            rows.append(row)
    for r in rows:  # speed-up of each P over P = 1 (or the smallest P) at the same batch size
        base = min((q for q in rows if q["batch_size"] == r["batch_size"]), key=lambda q: q["parallel_num"])
        r["speedup_vs_smallest_p"] = r["images_per_second"] / base["images_per_second"]
    return {
        "rows": rows,
        "peak_gflops": peak,
        "peak_matmul_size": peak_size,
        "num_sampling_steps": steps,
        "guidance_scale": cfg_scale,
        "tokens_per_image": tokens,
        "image_size": list(out.images.shape[-2:]),
        "settings": out.settings,
    }


def speed_markdown(res: dict[str, Any], rec: dict[str, Any]) -> str:
    rows = [
        [
            r["parallel_num"],
            r["batch_size"],
            r["images_per_second"],
            r["seconds_per_image"],
            r["call_seconds"],
            r["speedup_vs_smallest_p"],
            r["ar_steps_per_image"],
            r["head_evaluations_per_image"],
            r.get("gflop_per_image"),
            r.get("achieved_gflops"),
            r.get("fraction_of_matmul_peak"),
            r["peak_rss_mib"],
        ]
        for r in res["rows"]
    ]
    head = [
        "P",
        "batch",
        "images/s",
        "s/image",
        "s/call",
        "speed-up vs smallest P",
        "AR steps/img",
        "head evals/img",
        "GFLOP/img",
        "GFLOP/s",
        "of peak",
        "peak RSS MiB",
    ]
    return "\n\n".join(
        [
            "# Speed benchmark",
            f"{res['tokens_per_image']} tokens per image ({res['image_size'][0]}x{res['image_size'][1]} px), "
            f"{res['num_sampling_steps']} head steps per AR step, CFG "
            f"{fmt(res['guidance_scale'])}; measured fp32 "
            f"matmul peak {fmt(res['peak_gflops'], 4)} GFLOP/s.",
            md_table(head, rows),
            "s/image = call time / batch size; 'head evals/img' = AR steps x (head steps + 1) "
            "(each a batch of P "
            "tokens, doubled rows with CFG). Achieved GFLOP/s counts matmul/conv/attention FLOPs only.",
            "Plot: `speed.png`.",
            recipe_markdown(rec),
        ]
    )


def speed_plots(res: dict[str, Any]) -> dict[str, bytes]:
    fig, ax = new_figure()
    for b in sorted({r["batch_size"] for r in res["rows"]}):
        rs = [r for r in res["rows"] if r["batch_size"] == b]
        ax.plot(
            [str(r["parallel_num"]) for r in rs],
            [r["images_per_second"] for r in rs],
            marker="o",
            label=f"batch {b}",
        )
    ax.set(xlabel="parallel_num P (tokens per AR step)", ylabel="images / s", title="Throughput")
    ax.legend(fontsize=7)
    return {"speed.png": figure_png(fig)}
