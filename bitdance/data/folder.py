"""Your own images: a folder plus an optional JSONL or CSV manifest (``file``, ``caption``, optional
``label`` and ``split``; extra columns land in ``meta``). Without a manifest every image in the folder is
used, captioned by a ``<stem>.txt`` sidecar or else by its file name ("red_car.png" -> "red car").

Bad data never stops training silently and never crashes it midway: missing files and unreadable images
are skipped, counted and reported in one warning each; a manifest with nothing usable is a ValueError.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from .items import IMAGE_EXTENSIONS, Item, check_size, check_split, load_image, make_item, summarize_names

MANIFEST_FORMATS: tuple[str, ...] = (".jsonl", ".csv")
_RESERVED = {"file", "caption", "label", "split"}


def _parse_label(value: Any, where: str) -> int:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return -1
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: label must be an integer, got {value!r}") from None


def is_readable_image(path: str | os.PathLike) -> bool:
    """True when PIL can fully decode ``path`` (headers alone miss truncated files)."""
    try:
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
        return False


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` or ``.csv`` manifest as dicts with ``file``, ``caption``, ``label`` (int, -1 if
    absent) and any extra keys. Malformed rows raise ValueError naming the line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_FORMATS:
        raise ValueError(f"manifest {path} must be one of: {', '.join(MANIFEST_FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    raw: list[tuple[int, dict[str, Any]]] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        if suffix == ".csv":
            reader = csv.DictReader(f)
            missing = {"file", "caption"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(
                    f"{path}: CSV header lacks column(s) {sorted(missing)} (has {reader.fieldnames})"
                )
            raw = [(i + 2, dict(row)) for i, row in enumerate(reader)]
        else:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{lineno}: each line must be a JSON object")
                raw.append((lineno, row))
    rows = []
    for lineno, row in raw:
        where = f"{path}:{lineno}"
        if not row.get("file") or row.get("caption") is None:
            raise ValueError(
                f"{where}: every row needs non-empty 'file' and 'caption' (got keys {sorted(row)})"
            )
        out = {k: v for k, v in row.items() if k not in _RESERVED and k is not None}
        label = _parse_label(row.get("label"), where)
        out.update(file=str(row["file"]), caption=str(row["caption"]), label=label)
        if row.get("split") not in (None, ""):
            out["split"] = str(row["split"])
        rows.append(out)
    return rows


def scan_folder(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows for every image under ``root`` (recursive, sorted): caption from ``<stem>.txt`` if present,
    else the file stem with ``_``/``-`` turned into spaces; label -1."""
    root = Path(root)
    rows = []
    for p in sorted(q for q in root.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS):
        sidecar = p.with_suffix(".txt")
        if sidecar.is_file():
            caption = sidecar.read_text(encoding="utf-8").strip()
        else:
            caption = p.stem.replace("_", " ").replace("-", " ").strip()
        rows.append({"file": p.relative_to(root).as_posix(), "caption": caption, "label": -1})
    return rows


class FolderDataset(Dataset):
    """Items: image (3, size, size) in [-1, 1] (EXIF-rotated, RGB on white, centre-cropped, resized),
    caption, label (-1 if none), meta {"file", extra manifest columns}.

    ``split`` filters on a manifest ``split`` column when there is one; otherwise the folder is the split.
    ``verify=True`` decodes every image once at construction so bad files are known up front; with
    ``verify=False`` a file that fails later is skipped (next item served) and reported the same way.
    Attributes ``missing`` and ``skipped`` list the files left out."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        manifest: str | os.PathLike | None = None,
        split: str = "train",
        size: int = 32,
        verify: bool = True,
    ) -> None:
        self.split, self.size = check_split(split), check_size(size)
        if root is None and manifest is None:
            raise ValueError(
                "the folder dataset needs root= (a folder of images) and/or manifest= (.jsonl/.csv)"
            )
        self.root = Path(root) if root is not None else Path(manifest).parent
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        source = str(manifest) if manifest is not None else str(self.root)
        rows = read_manifest(manifest) if manifest is not None else scan_folder(self.root)
        if any("split" in r for r in rows):
            rows = [r for r in rows if r.get("split") == split]
            if not rows:
                raise ValueError(f"{source}: no rows with split={split!r}")
        if not rows:
            raise ValueError(f"{source}: no images found (extensions: {', '.join(IMAGE_EXTENSIONS)})")

        self.missing = [r["file"] for r in rows if not (self.root / r["file"]).is_file()]
        rows = [r for r in rows if (self.root / r["file"]).is_file()]
        if not rows:
            raise ValueError(
                f"{source}: none of the {len(self.missing)} listed files exist under "
                f"{self.root} (missing: {summarize_names(self.missing)})"
            )
        if self.missing:
            warnings.warn(
                f"{source}: {len(self.missing)} listed file(s) missing under {self.root}, skipped: "
                f"{summarize_names(self.missing)}",
                stacklevel=2,
            )

        self.skipped: list[str] = []
        self._warned_late = False
        if verify:
            good = []
            for r in rows:
                if is_readable_image(self.root / r["file"]):
                    good.append(r)
                else:
                    self.skipped.append(r["file"])
            rows = good
            if not rows:
                raise ValueError(
                    f"{source}: no readable images ({len(self.skipped)} unreadable: "
                    f"{summarize_names(self.skipped)})"
                )
            if self.skipped:
                warnings.warn(
                    f"{source}: skipped {len(self.skipped)} unreadable image(s): "
                    f"{summarize_names(self.skipped)}",
                    stacklevel=2,
                )
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} items")
        for attempt in range(len(self.rows)):
            row = self.rows[(index + attempt) % len(self.rows)]
            try:
                img = load_image(self.root / row["file"], self.size)
            except Exception:  # decode failures of files that changed after verification, or verify=False
                self._record_late_failure(row["file"])
                continue
            meta = {k: v for k, v in row.items() if k not in ("caption", "label")}
            return make_item(img, row["caption"], row["label"], meta)
        raise RuntimeError(f"{self.root}: every image failed to load ({summarize_names(self.skipped)})")

    def _record_late_failure(self, name: str) -> None:
        if name not in self.skipped:
            self.skipped.append(name)
        if not self._warned_late:
            self._warned_late = True
            warnings.warn(
                f"{self.root}: unreadable image {name} skipped (serving the next item); "
                "see dataset.skipped for the full list",
                stacklevel=3,
            )
