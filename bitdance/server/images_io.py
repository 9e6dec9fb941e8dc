"""Images in and out of the HTTP API: uploads (files, base64), masks in two conventions, output formats.

Masks: OpenAI marks the area to edit with fully transparent pixels (alpha 0) of a PNG; AUTOMATIC1111
marks it white (>= 128 grey). Both become an (H, W) bool "regenerate" mask for `bitdance.pipeline.editing`.
Outputs: PNG carries the recipe (text chunks, `provenance.png_bytes`); JPEG and WebP are encoded with
`quality = output_compression` (default 100) and carry no recipe.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import APIError

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def open_upload(data: bytes, param: str) -> Image.Image:
    """Bytes of an uploaded PNG / JPEG / WebP -> a loaded PIL image; 400 naming `param` otherwise."""
    if not data:
        raise APIError(400, f"{param} is empty; upload a PNG, JPEG or WebP image", param)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("PNG", "JPEG", "WEBP"):
                raise APIError(
                    400, f"{param} is a {im.format} image; allowed: PNG, JPEG, WebP", param, "invalid_image"
                )
            im.load()
            return im.copy()
    except APIError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise APIError(
            400, f"{param} is not a readable PNG, JPEG or WebP image", param, "invalid_image"
        ) from None


def decode_base64_image(text: Any, param: str) -> Image.Image:
    """A base64 image (optionally a data URL, as A1111 clients send it) -> PIL image; 400 otherwise."""
    if not isinstance(text, str) or not text:
        raise APIError(400, f"{param} must be a base64-encoded PNG, JPEG or WebP image", param)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{param} is not valid base64", param, "invalid_image") from None
    return open_upload(data, param)


def check_size(image: Image.Image, supported: list[tuple[int, int]], param: str) -> tuple[int, int]:
    """(height, width) of `image` if the model supports it; 400 listing the sizes otherwise."""
    h, w = image.height, image.width
    if (h, w) not in supported:
        shown = ", ".join(f"{b}x{a}" for a, b in supported[:16])
        raise APIError(
            400,
            f"{param} is {w}x{h}; this model edits images of a supported size (WIDTHxHEIGHT): {shown}",
            param,
            "unsupported_size",
        )
    return h, w


def transparent_mask(mask: Image.Image, size: tuple[int, int], param: str) -> np.ndarray:
    """OpenAI convention: fully transparent pixels (alpha 0) = edit. -> (H, W) bool regenerate."""
    if (mask.height, mask.width) != size:
        raise APIError(
            400,
            f"{param} is {mask.width}x{mask.height} but the image is {size[1]}x{size[0]}; they must match",
            param,
        )
    if "A" not in mask.getbands() and "transparency" not in mask.info:
        raise APIError(
            400,
            f"{param} has no alpha channel; OpenAI masks mark the area to edit with fully transparent pixels",
            param,
            "invalid_mask",
        )
    alpha = np.asarray(mask.convert("RGBA"))[:, :, 3]
    regen = alpha == 0
    if not regen.any():
        raise APIError(400, f"{param} has no fully transparent pixel: nothing to edit", param, "invalid_mask")
    return regen


def white_mask(mask: Image.Image, size: tuple[int, int], param: str, invert: bool = False) -> np.ndarray:
    """AUTOMATIC1111 convention: white (>= 128 grey) = repaint; `invert` swaps. -> (H, W) bool."""
    if (mask.height, mask.width) != size:
        raise APIError(
            400,
            f"{param} is {mask.width}x{mask.height} but the image is {size[1]}x{size[0]}; they must match",
            param,
        )
    if mask.mode in ("RGBA", "LA"):  # transparent pixels count as black (kept)
        bg = Image.new("RGBA", mask.size, (0, 0, 0, 255))
        mask = Image.alpha_composite(bg, mask.convert("RGBA"))
    regen = np.asarray(mask.convert("L")) >= 128
    regen = ~regen if invert else regen
    if not regen.any():
        raise APIError(400, f"{param} marks no pixel to repaint (white = repaint)", param, "invalid_mask")
    return regen


def image_alpha_mask(image: Image.Image) -> np.ndarray | None:
    """An image's own fully transparent pixels (OpenAI edits without a mask), or None if it has none."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return None
    regen = np.asarray(image.convert("RGBA"))[:, :, 3] == 0
    return regen if regen.any() else None


def recipe_of(image: Image.Image) -> dict[str, Any] | None:
    """The bitdance recipe in an uploaded PNG's text chunks, or None."""
    from ..pipeline.provenance import RECIPE_FORMAT, RECIPE_KEY  # noqa: PLC0415

    text = getattr(image, "text", None) or image.info
    raw = text.get(RECIPE_KEY) if isinstance(text, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        recipe = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return recipe if isinstance(recipe, dict) and recipe.get("format") == RECIPE_FORMAT else None


def encode_image(image: Image.Image, recipe: dict[str, Any], fmt: str, compression: int | None) -> bytes:
    """PNG with the recipe, or JPEG / WebP at quality `compression` (default 100); all marked as
    AI-generated (XMP digital source type, C2PA when configured: `bitdance.pipeline.marking`)."""
    from ..pipeline.provenance import image_bytes  # noqa: PLC0415

    return image_bytes(image, recipe, fmt, 100 if compression is None else compression)


def sniff_format(data: bytes) -> str | None:
    """'png' / 'jpeg' / 'webp' from the magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def reencode_data_url(url: str, fmt: str) -> str:
    """A preview data URL (PNG) -> base64 of the same image in `fmt` (no recipe: it is a partial image)."""
    data = base64.b64decode(url.partition(",")[2])
    if fmt == "png":
        return base64.b64encode(data).decode("ascii")
    with Image.open(io.BytesIO(data)) as im:
        return base64.b64encode(encode_image(im.convert("RGB"), {}, fmt, None)).decode("ascii")
