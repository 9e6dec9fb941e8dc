"""Shared helpers of the inference verbs: strict argument parser, size parsing, terminal progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any, NoReturn


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors raise ValueError, so the dispatcher prints one `error:` line."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{self.prog}: {message} (see --help)")


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    """'32x32' (HEIGHTxWIDTH) -> (32, 32); None -> (None, None)."""
    if size is None:
        return None, None
    parts = size.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--size must look like 32x32 (HEIGHTxWIDTH in pixels), got {size!r}")
    return int(parts[0]), int(parts[1])


def check_png_path(path: str | None) -> None:
    """Outputs carry their recipe in PNG text chunks, so they must be .png files."""
    if path is not None and not path.lower().endswith(".png"):
        raise ValueError(f"output {path} must be a .png file (the recipe is stored in PNG text chunks)")


def parse_pair(text: str, what: str) -> tuple[int, int]:
    """'8,4' -> (8, 4)."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise ValueError(f"{what} must be two integers like 8,4, got {text!r}")
    return int(parts[0]), int(parts[1])


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (quiet otherwise)."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self.drawn = False

    def __call__(self, done: int, total_items: int, info: dict[str, Any]) -> None:
        """Progress of image `done + 1` of `total_items`, at AR step info['step'] of info['total']."""
        if not self.enabled:
            return
        frac = info["step"] / max(info["total"], 1)
        filled = int(round(self.width * frac))
        bar = "#" * filled + "-" * (self.width - filled)
        items = f"image {min(done + 1, total_items)}/{total_items} " if total_items > 1 else ""
        line = f"\r{items}[{bar}] step {info['step']}/{info['total']} ETA {info['eta']:.1f}s "
        self.stream.write(line)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def sampling_kwargs(args: Any) -> dict[str, Any]:
    """Pipeline keyword arguments of the sampling/post-processing flags shared by `generate` and `edit`."""
    return {
        "num_sampling_steps": args.steps,
        "guidance_scale": args.cfg,
        "guidance_schedule": args.cfg_schedule,
        "parallel_num": args.parallel,
        "upscale": args.upscale,
        "upscale_method": args.upscale_method,
        "color": args.color,
    }
