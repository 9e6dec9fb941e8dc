"""Post-processing after decoding: colour correction and upscaling, as a recorded list of steps.

A post-processing recipe is a list of canonical step strings, applied in order and written into the PNG
metadata so a replay applies exactly the same operations:

    ["color:auto", "upscale:2:lanczos"]

Colour looks ("auto", "white-balance", "contrast", "warm", "cool", "vivid", "mono") run first on the
decoded uint8 pixels, then the image is upscaled (2x or 4x; Lanczos, bicubic or nearest). Every step is a
pure numpy / Pillow function of the pixels, so the same input gives the same bytes on the same machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

UPSCALE_FACTORS = (2, 4)
UPSCALE_METHODS: dict[str, Image.Resampling] = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}
LOOKS: dict[str, str] = {
    "auto": "white balance + auto contrast",
    "white-balance": "grey-world white balance (channel means equalised, gains clipped to 0.5..2)",
    "contrast": "auto contrast: stretch the 1st..99th percentile of all channels to 0..255",
    "warm": "warmer: red up 8%, blue down 8%",
    "cool": "cooler: blue up 8%, red down 8%",
    "vivid": "saturation x1.35 around the pixel's luminance",
    "mono": "greyscale (Rec. 601 luma) in three channels",
}
_LUMA = np.array([0.299, 0.587, 0.114])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def white_balance(rgb: np.ndarray) -> np.ndarray:
    """Grey-world white balance of (H, W, 3) uint8 pixels."""
    x = rgb.astype(np.float64)
    means = x.reshape(-1, 3).mean(axis=0)
    if float(means.min()) < 1.0:  # a channel is (almost) empty: nothing sensible to balance
        return rgb.copy()
    gains = np.clip(means.mean() / means, 0.5, 2.0)
    return _to_uint8(x * gains)


def auto_contrast(rgb: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch the [low, high] percentile range of all channel values to 0..255 (hue preserved)."""
    x = rgb.astype(np.float64)
    lo, hi = np.percentile(x, [low, high])
    if hi - lo < 8.0:  # flat image: stretching would only amplify noise
        return rgb.copy()
    return _to_uint8((x - lo) * (255.0 / (hi - lo)))


def _scale_channels(rgb: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    return _to_uint8(rgb.astype(np.float64) * np.array(gains))


def _saturate(rgb: np.ndarray, amount: float) -> np.ndarray:
    x = rgb.astype(np.float64)
    luma = (x @ _LUMA)[..., None]
    return _to_uint8(luma + (x - luma) * amount)


def _mono(rgb: np.ndarray) -> np.ndarray:
    luma = _to_uint8(rgb.astype(np.float64) @ _LUMA)
    return np.repeat(luma[..., None], 3, axis=-1)


def apply_look(rgb: np.ndarray, look: str) -> np.ndarray:
    """Apply one named colour look to (H, W, 3) uint8 pixels; returns a new uint8 array."""
    if look == "auto":
        return auto_contrast(white_balance(rgb))
    if look == "white-balance":
        return white_balance(rgb)
    if look == "contrast":
        return auto_contrast(rgb)
    if look == "warm":
        return _scale_channels(rgb, (1.08, 1.0, 0.92))
    if look == "cool":
        return _scale_channels(rgb, (0.92, 1.0, 1.08))
    if look == "vivid":
        return _saturate(rgb, 1.35)
    if look == "mono":
        return _mono(rgb)
    raise ValueError(f"unknown colour look {look!r}; allowed: {', '.join(LOOKS)}")


def upscale(image: Image.Image, factor: int, method: str = "lanczos") -> Image.Image:
    """Resize a PIL image by 2x or 4x with a classical filter."""
    check_upscale(factor, method)
    return image.resize((image.width * factor, image.height * factor), UPSCALE_METHODS[method])


def check_upscale(factor: object, method: object) -> None:
    if isinstance(factor, bool) or factor not in UPSCALE_FACTORS:
        raise ValueError(f"upscale factor must be one of {list(UPSCALE_FACTORS)}, got {factor!r}")
    if method not in UPSCALE_METHODS:
        raise ValueError(f"upscale method must be one of {list(UPSCALE_METHODS)}, got {method!r}")


def parse_looks(color: str | Sequence[str] | None) -> list[str]:
    """'auto,warm' or ['auto', 'warm'] -> validated list of looks (empty for None)."""
    if color is None:
        return []
    parts = color.split(",") if isinstance(color, str) else list(color)
    looks = [p.strip() if isinstance(p, str) else p for p in parts]
    if not looks or any(not isinstance(lk, str) or lk not in LOOKS for lk in looks):
        raise ValueError(f"unknown colour look in {color!r}; allowed: {', '.join(LOOKS)} (comma-separated)")
    return looks


def build_steps(
    upscale: int | None = None, upscale_method: str = "lanczos", color: str | Sequence[str] | None = None
) -> list[str]:
    """Canonical step list for the given options: colour looks first, then the upscale."""
    steps = [f"color:{look}" for look in parse_looks(color)]
    if upscale is not None:
        check_upscale(upscale, upscale_method)
        steps.append(f"upscale:{upscale}:{upscale_method}")
    return steps


def parse_steps(steps: Sequence[str]) -> list[tuple[str, ...]]:
    """Validate a recorded step list; returns parsed tuples ('color', look) / ('upscale', factor, method)."""
    if isinstance(steps, str) or not isinstance(steps, (list, tuple)):
        raise ValueError(f"post-processing must be a list of steps like 'color:warm', got {steps!r}")
    out: list[tuple[str, ...]] = []
    for s in steps:
        parts = s.split(":") if isinstance(s, str) else []
        if len(parts) == 2 and parts[0] == "color" and parts[1] in LOOKS:
            out.append(("color", parts[1]))
        elif len(parts) == 3 and parts[0] == "upscale" and parts[1].isdigit():
            check_upscale(int(parts[1]), parts[2])
            out.append(("upscale", parts[1], parts[2]))
        else:
            raise ValueError(
                f"unknown post-processing step {s!r}; allowed: 'color:<look>' with look in {list(LOOKS)} or "
                f"'upscale:<{'|'.join(map(str, UPSCALE_FACTORS))}>:<{'|'.join(UPSCALE_METHODS)}>'"
            )
    return out


def steps_to_options(steps: Sequence[str]) -> dict[str, object]:
    """Inverse of `build_steps` (for replay): {'upscale': ..., 'upscale_method': ..., 'color': ...}."""
    parsed = parse_steps(steps)
    looks = [p[1] for p in parsed if p[0] == "color"]
    ups = [p for p in parsed if p[0] == "upscale"]
    opts = {
        "upscale": int(ups[0][1]) if ups else None,
        "upscale_method": ups[0][2] if ups else "lanczos",
        "color": ",".join(looks) if looks else None,
    }
    if build_steps(**opts) != list(steps):  # type: ignore[arg-type]
        raise ValueError(
            f"post-processing steps {list(steps)} are not in canonical order (colour looks, then one upscale)"
        )
    return opts


def apply_steps(image: Image.Image, steps: Sequence[str]) -> Image.Image:
    """Apply a step list to one RGB PIL image; returns a new image."""
    out = image.convert("RGB")
    for step in parse_steps(steps):
        if step[0] == "color":
            out = Image.fromarray(apply_look(np.asarray(out), step[1]))
        else:
            out = upscale(out, int(step[1]), step[2])
    return out
