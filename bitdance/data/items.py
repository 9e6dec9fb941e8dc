"""The common item format shared by every BitDance dataset, and the image conversions behind it.

Every dataset yields ``{"image": (3, H, W) float32 in [-1, 1], "caption": str, "label": int, "meta": dict}``.
``label`` is -1 when a dataset has no classes; ``meta`` holds a structured, JSON-friendly description.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image, ImageOps

SPLITS: tuple[str, ...] = ("train", "test")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class Item(TypedDict):
    """One training example. ``image`` is (3, H, W) float32 in [-1, 1]."""

    image: torch.Tensor
    caption: str
    label: int
    meta: dict[str, Any]


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ValueError saying what is allowed."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return split


def check_size(size: int) -> int:
    """Return ``size`` if it is a usable square side length (int >= 8), else raise ValueError."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8 (pixels per side), got {size!r}")
    return size


def index_rng(seed: int, index: int, stream: str = "") -> random.Random:
    """A ``random.Random`` fixed by (seed, index, stream); string seeding is stable across processes."""
    return random.Random(f"bitdance/{stream}/{seed}/{index}")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any PIL mode to RGB; transparent modes (RGBA, LA, P with transparency) are composited on
    ``background`` so that transparent pixels do not turn black."""
    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float greyscale: rescale to 8 bit instead of clipping everything above 255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square, then resize to ``size`` x ``size`` (LANCZOS down, BICUBIC up)."""
    w, h = img.size
    side = min(w, h)
    if w != h:
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if side == size:
        return img
    resample = Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC
    return img.resize((size, size), resample=resample)


def load_image(source: Any, size: int) -> Image.Image:
    """Open a path / file object, apply EXIF orientation, convert to RGB and crop-resize.

    Raises whatever PIL raises on an unreadable file (callers count and skip those)."""
    with Image.open(source) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        return center_crop_resize(to_rgb(img), size)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32 tensor in [-1, 1]."""
    arr = np.asarray(to_rgb(img), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def tensor_to_pil(image_3HW: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image."""
    if image_3HW.ndim != 3 or image_3HW.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(image_3HW.shape)}")
    arr = ((image_3HW.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), "RGB")


def make_item(img: Image.Image, caption: str, label: int = -1, meta: dict[str, Any] | None = None) -> Item:
    """Build the common item dict from an RGB PIL image (already at its final size)."""
    return {"image": pil_to_tensor(img), "caption": caption, "label": int(label), "meta": dict(meta or {})}


def collate_items(batch: Sequence[Item]) -> dict[str, Any]:
    """DataLoader ``collate_fn``: images stacked to (B, 3, H, W), labels to (B,) int64,
    captions and metas kept as lists (metas differ in structure, so default_collate would fail)."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    sizes = {tuple(it["image"].shape) for it in batch}
    if len(sizes) != 1:
        raise ValueError(f"all images in a batch must share one shape, got {sorted(sizes)}")
    return {
        "image": torch.stack([it["image"] for it in batch]),
        "caption": [it["caption"] for it in batch],
        "label": torch.tensor([int(it["label"]) for it in batch], dtype=torch.long),
        "meta": [it["meta"] for it in batch],
    }


def summarize_names(names: Sequence[str], limit: int = 5) -> str:
    """``"a.png, b.png, ... (+3 more)"`` for concise warnings and errors."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")
