"""Resumable training state: one ``state-<step>.pt`` file per checkpoint, written atomically.

- Written to a temp file in the same folder, fsync'd, then renamed: a crash (even kill -9) mid-save
  leaves only a ``.state-*.tmp`` file, which is ignored and cleaned up by the next save.
- Contains only tensors and plain containers (``torch.save``); loaded with ``weights_only=True``.
- ``latest()`` skips files that fail to load (truncated by a full disk, say) with a warning.
- The newest ``keep_last`` files are kept; inference weights live elsewhere (``export/``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_write_with

_STATE = re.compile(r"^state-(\d{6,})\.pt$")


def state_name(step: int) -> str:
    return f"state-{step:06d}.pt"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write_with(path, write)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load a state file with ``weights_only=True``; a corrupt file raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training state {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle opcode, ...
        raise ValueError(f"training state {path} is truncated or corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"{path} is not a BitDance training state (no 'step')")
    return state


class CheckpointManager:
    """Save/find/prune ``state-<step>.pt`` files in ``folder``."""

    def __init__(self, folder: str | os.PathLike, keep_last: int = 3) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.folder = Path(folder)
        self.keep_last = keep_last

    def list(self) -> list[tuple[int, Path]]:
        """(step, path) of complete state files, oldest first (temp files never match)."""
        if not self.folder.is_dir():
            return []
        found = []
        for p in self.folder.iterdir():
            m = _STATE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def save(self, state: dict[str, Any], step: int) -> Path:
        path = self.folder / state_name(step)
        _atomic_torch_save({**state, "step": step}, path)
        self._cleanup()
        return path

    def _cleanup(self) -> None:
        for _, p in self.list()[: -self.keep_last]:
            p.unlink(missing_ok=True)
        for p in self.folder.glob(".state-*.tmp"):  # left by a killed save
            p.unlink(missing_ok=True)

    def latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest state that loads, or None; unreadable newer files are reported and skipped."""
        for _, path in reversed(self.list()):
            try:
                return load_state(path), path
            except ValueError as e:
                warnings.warn(f"skipping unreadable checkpoint: {e}", stacklevel=2)
        return None

    def latest_path(self) -> Path | None:
        items = self.list()
        return items[-1][1] if items else None
