"""Wall time of the full evaluation (``scripts/eval_default_model.sh``) from the timings of a smoke run
(``SMOKE=1``: every job at a tiny size, same machine, same number of workers).

A job's time is its start-up (wall time minus the time its report says it spent working) plus its work
scaled by the ratio of full to smoke images, except for the FID intervals, whose cost grows faster than
linearly with n: those are timed again here at the full n on random features of each feature size. The
parallel jobs are then scheduled as the driver schedules them (list order, the next free worker takes the
next job); the jobs that time the machine run alone afterwards.

    bitdance docs estimate runs/eval-smoke [--workers 2]
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

ALONE = ("bench", "quant", "versus")


def read_timings(run: str | Path) -> list[tuple[str, float, int]]:
    """(job, wall seconds, full-run units) per finished job of ``run/timings.tsv``, in finishing order."""
    path = Path(run) / "timings.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run `SMOKE=1 bash scripts/eval_default_model.sh` first")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise ValueError(f"{path}:{i}: expected 'job<TAB>seconds<TAB>full units', got {line!r}")
        rows.append((parts[0], float(parts[1]), int(parts[2])))
    return rows


def _report(run: Path, job: str) -> dict[str, Any] | None:
    if job.startswith("adh-"):
        path = run / "adh" / job[4:] / "report.json"
    elif job == "quant":
        path = run / "quant.json"
    else:
        path = run / job / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def work_split(rep: dict[str, Any] | None) -> tuple[int | None, float | None, dict[int, float]]:
    """(smoke units, in-process working seconds, FID interval reps by feature dim) of one raw report."""
    if rep is None or "results" not in rep:
        return None, None, {}
    r, rec = rep["results"], rep.get("recipe", {})
    units = rec.get("samples") or r.get("images")
    if "seconds" in r and isinstance(r["seconds"], (int, float)):
        return units, float(r["seconds"]), {}
    feats = r.get("features") or {}
    if feats:
        busy = float(r.get("generation_seconds") or 0.0)
        busy += sum(float(v.get("seconds", 0)) for v in feats.values())
        reps = {int(v["dim"]): int(v["fid_ci95"]["reps"]) for v in feats.values() if v.get("fid_ci95")}
        return units, busy, reps
    return units, None, {}


def interval_seconds(n: int, dim: int, reps: int, probe_reps: int = 4) -> float:
    """Seconds of ``fid_half_sample_interval`` for n items of ``dim`` features and ``reps`` half-samples,
    timed on random features with ``probe_reps`` half-samples and scaled."""
    import torch

    from .metrics import fid_half_sample_interval

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=g)
    y = torch.randn(n, dim, generator=g) + 0.1
    t0 = time.perf_counter()
    fid_half_sample_interval(x, y, reps=probe_reps)
    return (time.perf_counter() - t0) * reps / probe_reps


def estimate(run: str | Path, workers: int = 2) -> dict[str, Any]:
    """Per job (smoke seconds, estimated full seconds) and the schedule's wall time."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    run = Path(run)
    jobs = []
    probes: dict[tuple[int, int, int], float] = {}

    def probe(n: int, dim: int, reps: int) -> float:
        if (n, dim, reps) not in probes:
            probes[n, dim, reps] = interval_seconds(n, dim, reps)
        return probes[n, dim, reps]

    for job, wall, full in read_timings(run):
        units, busy, reps = work_split(_report(run, job))
        if units and busy is not None and busy <= wall:
            smoke_iv = sum(probe(units, d, k) for d, k in reps.items())
            full_iv = sum(probe(full, d, k) for d, k in reps.items())
            scaled = max(busy - smoke_iv, 0.0) * full / units + full_iv
            est = wall - busy + scaled
        else:  # no breakdown: scale the whole job
            est = wall * full / units if units else wall
        jobs.append({"job": job, "smoke_seconds": wall, "smoke_units": units, "full_units": full, "est": est})
    par = [j for j in jobs if j["job"] not in ALONE]
    order = _driver_order(run, [j["job"] for j in par])
    free = [0.0] * workers
    for name in order:
        k = free.index(min(free))
        free[k] += next(j["est"] for j in par if j["job"] == name)
    alone = sum(j["est"] for j in jobs if j["job"] in ALONE)
    return {
        "jobs": jobs,
        "workers": workers,
        "parallel_seconds": max(free),
        "alone_seconds": alone,
        "total_seconds": max(free) + alone,
        "cpu_seconds": sum(j["est"] for j in jobs),
        "longest_first": [j["job"] for j in sorted(par, key=lambda j: -j["est"])],
    }


def _driver_order(run: Path, names: list[str]) -> list[str]:
    """The driver's job order when it wrote it ($EVAL/jobs.txt), else the order given."""
    path = run / "jobs.txt"
    listed = path.read_text().split() if path.is_file() else []
    return [n for n in listed if n in names] + [n for n in names if n not in listed]


def estimate_markdown(run: str | Path, workers: int = 2) -> str:
    e = estimate(run, workers)
    lines = [
        "| job | smoke s | smoke images | full images | estimated full s |",
        "|---|---|---|---|---|",
    ]
    for j in e["jobs"]:
        lines.append(
            f"| {j['job']} | {j['smoke_seconds']:.0f} | {j['smoke_units'] or '-'} | {j['full_units']} | "
            f"{j['est']:.0f} |"
        )
    lines += [
        "",
        f"parallel jobs on {e['workers']} worker(s): {e['parallel_seconds'] / 60:.1f} min; "
        f"jobs run alone (speed, int8 report): {e['alone_seconds'] / 60:.1f} min; "
        f"total about {e['total_seconds'] / 60:.0f} min ({e['cpu_seconds'] / 3600:.2f} CPU-hours).",
        "Longest first: " + " ".join(e["longest_first"]),
        "Timed on this machine under its load at the time; another load scales every line.",
    ]
    return "\n".join(lines)
