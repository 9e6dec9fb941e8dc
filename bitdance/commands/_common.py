"""Shared helpers of the inference verbs: strict argument parser, size parsing, terminal progress bar."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, NoReturn


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors raise ValueError, so the dispatcher prints one `error:` line."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{self.prog}: {message} (see --help)")


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    """'32x48' (HEIGHTxWIDTH, the old CLI order; `bitdance export` still uses it) -> (32, 48)."""
    if size is None:
        return None, None
    parts = size.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--size must look like 32x32 (HEIGHTxWIDTH in pixels), got {size!r}")
    return int(parts[0]), int(parts[1])


def parse_wh(text: str | None, flag: str = "--size") -> tuple[int | None, int | None]:
    """'48x32' (WIDTHxHEIGHT, as the server, A1111 and OpenAI write it) -> (height 32, width 48)."""
    if text is None:
        return None, None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{flag} must look like 48x32 (WIDTHxHEIGHT in pixels), got {text!r}")
    return int(parts[1]), int(parts[0])


def size_option(args: Any, name: str = "size") -> tuple[int | None, int | None]:
    """(height, width) from `--<name> WxH` or the deprecated `--<name>-hw HxW` (at most one of them)."""
    flag, wh, hw = f"--{name}", getattr(args, name), getattr(args, f"{name}_hw")
    if wh is not None and hw is not None:
        raise ValueError(f"give {flag} WIDTHxHEIGHT or the deprecated {flag}-hw HEIGHTxWIDTH, not both")
    return parse_size(hw) if hw is not None else parse_wh(wh, flag)


def size_notes(args: Any, name: str = "size") -> None:
    """Once the size is accepted: the deprecation warning for `--<name>-hw`, and how a non-square
    `--<name>` is read (the order changed from HEIGHTxWIDTH), so that no value is reinterpreted silently."""
    flag, wh, hw = f"--{name}", getattr(args, name), getattr(args, f"{name}_hw")
    if hw is not None:
        h, w = parse_size(hw)
        print(f"warning: {flag}-hw is deprecated; write {flag} {w}x{h} (WIDTHxHEIGHT)", file=sys.stderr)
    elif wh is not None:
        h, w = parse_wh(wh, flag)
        if h != w:
            print(
                f"note: {flag} is WIDTHxHEIGHT: {wh} means width {w}, height {h} "
                f"(the old HEIGHTxWIDTH order is {flag}-hw)",
                file=sys.stderr,
            )


def check_size_supported(pipe: Any, height: int | None, width: int | None, what: str = "size") -> None:
    """Refuse a size the model cannot make, in WIDTHxHEIGHT terms (before any work)."""
    if height is None and width is None:
        return
    sizes = pipe.supported_sizes
    if (height, width) not in sizes:
        shown = ", ".join(f"{w}x{h}" for h, w in sizes[:12]) + (" ..." if len(sizes) > 12 else "")
        raise ValueError(f"unsupported {what} {width}x{height} (WIDTHxHEIGHT); this model supports: {shown}")


def check_png_path(path: str | None) -> None:
    """Outputs carry their recipe in PNG text chunks, so they must be .png files."""
    if path is not None and not path.lower().endswith(".png"):
        raise ValueError(f"output {path} must be a .png file (the recipe is stored in PNG text chunks)")


def check_output(path: str | None, out_dir: str | None = None) -> None:
    """Fail before the model loads when the output file (or else `out_dir`) cannot be written.

    Missing folders are allowed (they are created when writing) as long as the nearest existing one
    is a folder we can create files in; the probe file is removed at once.
    """
    from ..pipeline.marking import check_signing  # noqa: PLC0415

    check_png_path(path)
    check_signing()  # a bad C2PA setting fails now, not after generating
    target = Path(path) if path is not None else None
    given = path if path is not None else out_dir
    folder = target.parent if target is not None else Path(out_dir or ".")
    what = "output" if path is not None else "output folder"
    if target is not None and (target.is_dir() or (target.exists() and not target.is_file())):
        raise ValueError(f"cannot write {what} {given}: it exists and is not a regular file")
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"cannot write {what} {given}: {probe} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".bitdance-probe-", suffix=".tmp")
    except OSError as e:
        raise ValueError(f"cannot write {what} {given}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


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
