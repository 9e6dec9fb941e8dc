"""Training progress: a terminal bar (plain lines when not a TTY), a JSONL metrics log, image grids
and loss-curve plots (matplotlib, imported lazily).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import torch

from ..core.atomic import atomic_write_bytes, atomic_write_with


def format_seconds(s: float) -> str:
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class ProgressBar:
    """`update(step, metrics)` redraws one line on a TTY; otherwise prints a line every `every` steps."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        samples_per_step: int = 1,
        stream: TextIO | None = None,
        every: int = 10,
        enabled: bool = True,
        desc: str = "train",
        messages: bool | None = None,
    ) -> None:
        self.total, self.start = total, start
        self.samples_per_step = samples_per_step
        self.stream = stream or sys.stderr
        self.tty = (
            hasattr(self.stream, "isatty") and self.stream.isatty() and os.environ.get("TERM") != "dumb"
        )
        self.every = max(1, every)
        self.enabled = enabled
        self.messages = enabled if messages is None else messages  # status lines even without the bar
        self.desc = desc
        self.t0 = time.perf_counter()
        self._smooth: dict[str, float] = {}

    def rates(self, step: int) -> tuple[float, float]:
        """(samples/s, ETA seconds) since the bar started."""
        done = step - self.start
        el = time.perf_counter() - self.t0
        if done <= 0 or el <= 0:
            return 0.0, float("nan")
        per_step = el / done
        return self.samples_per_step / per_step, per_step * (self.total - step)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        """`step` = number of completed steps."""
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                old = self._smooth.get(k)
                self._smooth[k] = v if old is None else 0.9 * old + 0.1 * v
        if not self.enabled:
            return
        sps, eta = self.rates(step)
        loss = self._smooth.get("loss", float("nan"))
        frac = step / max(1, self.total)
        if self.tty:
            width = 24
            fill = int(width * frac)
            bar = "#" * fill + "-" * (width - fill)
            line = (
                f"\r{self.desc} [{bar}] {step}/{self.total} loss {loss:.4f} "
                f"{sps:.1f} samples/s ETA {format_seconds(eta)}"
            )
            self.stream.write(line + " " * 4)
            if step >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif step % self.every == 0 or step >= self.total or step == self.start + 1:
            self.stream.write(
                f"{self.desc} step {step}/{self.total} ({100 * frac:.0f}%) loss {loss:.4f} "
                f"{sps:.1f} samples/s ETA {format_seconds(eta)}\n"
            )
            self.stream.flush()

    def message(self, text: str) -> None:
        if not self.messages:
            return
        if self.tty and self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()


class MetricsLog:
    """Append-only JSONL: one ``{"step": .., "time": .., **metrics}`` object per line (flushed)."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, metrics: dict[str, Any], kind: str = "train") -> None:
        if not self.enabled:
            return
        rec = {"step": step, "kind": kind, "time": round(time.time(), 3)}
        rec.update(
            {
                k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                for k, v in metrics.items()
            }
        )
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume: drop records logged after the checkpoint we resume from (they will be redone)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        atomic_write_bytes(self.path, "".join(k + "\n" for k in keep).encode("utf-8"))


def read_metrics(path: str | os.PathLike, kind: str | None = "train") -> list[dict[str, Any]]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or rec.get("kind") == kind:
            out.append(rec)
    return out


def plot_metrics(
    log_path: str | os.PathLike, out_png: str | os.PathLike, keys: list[str] | None = None
) -> Path | None:
    """Loss curves (train + eval) to a PNG; returns None when matplotlib is missing or there is no data."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recs = read_metrics(log_path, kind=None)
    if not recs:
        return None
    keys = keys or sorted(
        {
            k
            for r in recs
            if r.get("kind") == "train"
            for k in r
            if k.startswith("loss") and isinstance(r[k], (int, float))
        }
    )
    evals = sorted(
        {
            k
            for r in recs
            if r.get("kind") == "eval"
            for k in r
            if k not in ("step", "kind", "time") and isinstance(r[k], (int, float))
        }
    )
    n = 1 + (1 if evals else 0)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), squeeze=False)
    ax = axes[0][0]
    for k in keys:
        pts = [
            (r["step"], r[k]) for r in recs if r.get("kind") == "train" and isinstance(r.get(k), (int, float))
        ]
        if pts:
            ax.plot(*zip(*pts), label=k, linewidth=1)
    ax.set_xlabel("step")
    ax.set_yscale("log" if all(r.get("loss", 1) > 0 for r in recs if r.get("kind") == "train") else "linear")
    ax.legend(fontsize=7)
    ax.set_title("training losses")
    if evals:
        ax2 = axes[0][1]
        for k in evals:
            pts = [
                (r["step"], r[k])
                for r in recs
                if r.get("kind") == "eval" and isinstance(r.get(k), (int, float))
            ]
            if pts:
                ax2.plot(*zip(*pts), marker="o", label=k)
        ax2.set_xlabel("step")
        ax2.legend(fontsize=7)
        ax2.set_title("held-out metrics")
    fig.tight_layout()
    out_png = Path(out_png)
    try:
        atomic_write_with(out_png, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    finally:
        plt.close(fig)
    return out_png


def save_grid(images_B3HW: torch.Tensor, path: str | os.PathLike, ncol: int = 8, scale: int = 2) -> Path:
    """Images in [-1, 1] -> one PNG grid (nearest-upscaled by `scale`), written atomically."""
    from PIL import Image

    imgs = images_B3HW.detach().float().cpu().clamp(-1, 1)
    b, _, h, w = imgs.shape
    ncol = max(1, min(ncol, b))
    nrow = math.ceil(b / ncol)
    grid = torch.full((3, nrow * (h + 1) + 1, ncol * (w + 1) + 1), 1.0)
    for i in range(b):
        r, c = divmod(i, ncol)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = imgs[i]
    arr = ((grid + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr, "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
