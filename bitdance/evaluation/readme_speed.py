"""Wall time of the README's main command, cold, end to end: `bitdance generate "a red sneaker" -o PNG`.

    python scripts/bench_readme.py --runs 5 --baseline before=/path/to/old/checkout --out report.json

Every run is a fresh process with one thread (`OMP_NUM_THREADS=1`), so start-up (imports, weight loading,
content-filter construction, the MiniLM encoder) is included, as a user sees it. Measured in the same run:
- the README command: median, min and every wall time, and the process's CPU seconds (user + sys, less
  sensitive than wall time to other jobs on a shared machine);
- the floor no change to bitdance can remove: a fresh `python -c "import torch"`;
- where one cold process spends its time, stage by stage (`stage_breakdown`, the steps `generate` takes).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

README_PROMPT = "a red sneaker"
TARGET_SECONDS = 2.0


def _env(pythonpath: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def this_checkout() -> str:
    """The folder holding the `bitdance` package being measured (put first on PYTHONPATH)."""
    return str(Path(__file__).resolve().parents[2])


def _timed(cmd: Sequence[str], cwd: str, pythonpath: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + sys) of one child process; a failing command raises.

    `cwd` must not hold a bitdance package: `python -m` puts the working folder before PYTHONPATH.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(list(cmd), capture_output=True, text=True, env=_env(pythonpath), cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _summary(samples: list[tuple[float, float]]) -> dict[str, Any]:
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "all_s": walls,
        "cpu_median_s": statistics.median(cpus),
        "cpu_all_s": cpus,
    }


def readme_command() -> list[str]:
    """The README command's argv without its output path (`python -m bitdance.cli` is `bitdance`)."""
    return [sys.executable, "-m", "bitdance.cli", "generate", README_PROMPT, "-o"]


_STAGES = r"""
import json, sys, time
t = [time.perf_counter()]
def lap(): t.append(time.perf_counter())
import torch; lap()
from bitdance.pipeline import BitDancePipeline; lap()
pipe = BitDancePipeline.from_pretrained("bitdance-mini"); lap()
pipe.check_prompts_filter([PROMPT]); lap()
out = pipe(PROMPT, seed=0); lap()
out.save(sys.argv[1], 0); lap()
names = ["import torch", "import bitdance", "load model", "content filter", "generate + decode", "write PNG"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
"""


def stage_breakdown(tmp: Path) -> dict[str, float]:
    """Seconds per stage of one cold process doing what the README command does (fresh interpreter)."""
    code = _STAGES.replace("PROMPT", repr(README_PROMPT))
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp / "stages.png")],
        capture_output=True,
        text=True,
        env=_env(this_checkout()),
        cwd=tmp,
    )
    if out.returncode != 0:
        raise RuntimeError(f"stage breakdown failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_readme(runs: int = 5, baselines: dict[str, str] | None = None) -> dict[str, Any]:
    """README command of this checkout vs bare `import torch` (and vs other checkouts: `baselines`, name ->
    folder holding their `bitdance` package), interleaved run by run; plus one stage breakdown."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    checkouts = {"this checkout": this_checkout(), **(baselines or {})}
    for name, folder in checkouts.items():
        if not (Path(folder) / "bitdance" / "cli.py").is_file():
            raise ValueError(f"{name}: {folder} holds no bitdance package (bitdance/cli.py)")
    load0 = os.getloadavg()[0]
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in checkouts}
    floor: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):  # interleaved: every command sees the same machine load
            floor.append(_timed([sys.executable, "-c", "import torch"], tmp))
            for k, (name, folder) in enumerate(checkouts.items()):
                samples[name].append(_timed([*readme_command(), f"{tmp}/sneaker-{i}-{k}.png"], tmp, folder))
        stages = stage_breakdown(Path(tmp))
    r, f = _summary(samples["this checkout"]), _summary(floor)
    others = {
        name: {**_summary(s), "folder": checkouts[name], "speedup": _summary(s)["median_s"] / r["median_s"]}
        for name, s in samples.items()
        if name != "this checkout"
    }
    return {
        "command": f'bitdance generate "{README_PROMPT}" -o sneaker.png',
        "threads": 1,
        "runs": runs,
        "target_s": TARGET_SECONDS,
        "readme": r,
        "import_torch": f,
        "above_import_torch_s": r["median_s"] - f["median_s"],
        "baselines": others,
        "stages_s": stages,
        "load_average_1min": [load0, os.getloadavg()[0]],
    }


def readme_table(res: dict[str, Any]) -> dict[str, Any]:
    """The shared-format table: the two commands, then the stages of one cold process."""
    cols = ["measured", "wall s (median)", "wall s (min)", "CPU s (median)", "speed-up"]

    def row(name: str, x: dict[str, Any], speedup: str = "") -> list[str]:
        return [name, f"{x['median_s']:.2f}", f"{x['min_s']:.2f}", f"{x['cpu_median_s']:.2f}", speedup]

    rows = [row(res["command"], res["readme"], "1.00x" if res["baselines"] else "")]
    rows += [row(f"same, {n}", b, f"{1 / b['speedup']:.2f}x") for n, b in res["baselines"].items()]
    rows.append(row('python -c "import torch" (floor)', res["import_torch"]))
    rows += [[f"stage: {k}", f"{v:.3f}", "", "", ""] for k, v in res["stages_s"].items()]
    return {"columns": cols, "rows": rows}


def shared_report(res: dict[str, Any], rec: dict[str, Any]) -> str:
    """docs/results/speed_readme.json (name, recipe, machine, created, metrics, tables)."""
    from .report import _clean  # noqa: PLC0415

    doc = {
        "name": "speed_readme",
        "recipe": {k: v for k, v in rec.items() if k not in ("machine", "utc")},
        "machine": rec.get("machine"),
        "created": rec.get("utc"),
        "metrics": {
            "readme_median_s": res["readme"]["median_s"],
            "readme_cpu_median_s": res["readme"]["cpu_median_s"],
            "import_torch_median_s": res["import_torch"]["median_s"],
            "above_import_torch_s": res["above_import_torch_s"],
            "speedup_vs": {n: b["speedup"] for n, b in res["baselines"].items()},
            "target_s": res["target_s"],
            "met": res["readme"]["median_s"] <= res["target_s"],
            "sections": res,
        },
        "tables": {"readme": readme_table(res)},
    }
    return json.dumps(_clean(doc), indent=1) + "\n"
