"""Analytic detectors for the shapes domain (and the colour namer shared with fashion): no learned models.

Objects are bright shapes on black. Per image (any size, RGB uint8):
1. soft mask: brightness v = max(R, G, B) >= 0.2; 8-connected soft components;
2. inside each soft component, core pixels v >= 0.7 x its peak (90th percentile) brightness, split into
   4-connected cores.
   Antialiased seams between neighbours that almost touch never reach 70 % coverage on both sides, so
   separate objects keep separate cores; every soft pixel is then assigned to its nearest core;
3. per object, with coverage weights a = min(v / level, 1) (level = median core brightness): colour =
   nearest named colour (COLOURS) of the mean core RGB after scaling its largest channel to 255
   (brightness-invariant); from the column / row mass profiles (sums of a, robust to pixel noise):
   spread = widest column x tallest row / area (square 1, disc 4/pi, triangle 2) and the skewness of the
   row profile (upright triangle -0.57) give the shape; extent = the longest chord (size), the centroid
   gives the absolute position (nearest anchor of ``bitdance.data.shapes``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.vocabulary import COLOURS, POSITION_ANCHORS

SOFT_THRESHOLD = 0.2
CORE_FRACTION = 0.7
SQUARE_MAX_SPREAD = 1.135  # midway between a square (1) and a disc (4/pi)
TRIANGLE_MIN_SPREAD = 1.64  # midway between a disc and a triangle (2)
TRIANGLE_MIN_SKEW = 0.3  # |skewness| of the vertical mass profile: triangle 0.57, disc/square 0
SIZE_SPLIT = 0.375  # extents: small 0.25-0.31, large 0.44-0.53 of the canvas side
RELATION_MARGIN = 0.1  # centre offset (canvas sides) needed along the relation axis
_NAMES = list(COLOURS)
_NORMED = np.array([np.array(c, dtype=np.float64) * 255.0 / max(c) for c in COLOURS.values()])


@dataclass
class DetectedObject:
    """One detected object; coordinates are fractions of the canvas side (origin top left, y down)."""

    shape: str
    colour: str
    size: str
    position: str
    centre: tuple[float, float]
    extent: float
    spread: float
    skew: float
    area_px: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["centre"] = [round(c, 3) for c in self.centre]
        for k in ("extent", "spread", "skew", "area_px"):
            d[k] = round(d[k], 3)
        return d


def as_uint8_image(image: Any) -> np.ndarray:
    """PIL image, (H, W, 3) uint8 array, or (3, H, W) tensor in [-1, 1] -> (H, W, 3) uint8."""
    if hasattr(image, "detach"):
        t = image.detach().float().cpu()
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(t.shape)}")
        return ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {arr.shape} {arr.dtype}")
    return arr


def name_colour(rgb: np.ndarray) -> str:
    """Nearest named colour of a mean RGB (any brightness): scale the largest channel to 255, then
    nearest of the equally scaled COLOURS (Euclidean)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    peak = rgb.max()
    if peak <= 0:
        return "black"
    d = ((_NORMED - rgb * 255.0 / peak) ** 2).sum(1)
    return _NAMES[int(d.argmin())]


def foreground_colour(image: Any, threshold: float = 0.25) -> str | None:
    """Named colour of the non-black pixels (brightness-weighted mean); None when nothing is bright."""
    img = as_uint8_image(image).astype(np.float64) / 255.0
    v = img.max(2)
    mask = v >= threshold
    if not mask.any():
        return None
    w = v[mask]
    return name_colour((img[mask] * w[:, None]).sum(0) / w.sum())


def _classify_shape(spread: float, skew: float) -> str:
    if spread > TRIANGLE_MIN_SPREAD or abs(skew) > TRIANGLE_MIN_SKEW:
        return "triangle"
    return "square" if spread < SQUARE_MAX_SPREAD else "circle"


def _nearest_position(cx: float, cy: float) -> str:
    return min(
        POSITION_ANCHORS,
        key=lambda p: (POSITION_ANCHORS[p][0] - cx) ** 2 + (POSITION_ANCHORS[p][1] - cy) ** 2,
    )


def _measure(
    img: np.ndarray, v: np.ndarray, pix: np.ndarray, core: np.ndarray, level: float
) -> DetectedObject:
    """pix / core: (K, 2) / (Kc, 2) integer (row, col) coordinates of an object's soft / core pixels."""
    h, w = v.shape
    rows, cols = pix[:, 0], pix[:, 1]
    a = np.clip(v[rows, cols] / level, 0.0, 1.0)
    area = float(a.sum())
    cy = float(((rows + 0.5) * a).sum() / area)
    cx = float(((cols + 0.5) * a).sum() / area)
    col_mass = np.bincount(cols - cols.min(), weights=a)
    row_mass = np.bincount(rows - rows.min(), weights=a)
    # widest chord x tallest chord over the area: square 1, disc 4/pi, upright triangle 2
    spread = float(col_mass.max() * row_mass.max() / area)
    y = np.arange(len(row_mass)) + 0.5
    my = (row_mass * y).sum() / area
    var = (row_mass * (y - my) ** 2).sum() / area
    skew = float((row_mass * (y - my) ** 3).sum() / area / max(var, 1e-9) ** 1.5)  # triangle -0.57, others 0
    mean_rgb = img[core[:, 0], core[:, 1]].mean(0)
    extent = float(max(col_mass.max() / h, row_mass.max() / w))
    return DetectedObject(
        shape=_classify_shape(spread, skew),
        colour=name_colour(mean_rgb),
        size="small" if extent < SIZE_SPLIT else "large",
        position=_nearest_position(cx / w, cy / h),
        centre=(cx / w, cy / h),
        extent=extent,
        spread=spread,
        skew=skew,
        area_px=area,
    )


def detect_objects(image: Any, min_area_fraction: float = 0.004) -> list[DetectedObject]:
    """All objects in a shapes image (PIL, (H, W, 3) uint8 or (3, H, W) tensor in [-1, 1])."""
    from scipy import ndimage

    img = as_uint8_image(image).astype(np.float64) / 255.0
    v = img.max(2)
    h, w = v.shape
    min_area = max(2.0, min_area_fraction * h * w)
    soft_labels, n_soft = ndimage.label(v >= SOFT_THRESHOLD, structure=np.ones((3, 3)))
    objects: list[DetectedObject] = []
    four = ndimage.generate_binary_structure(2, 1)
    for s in range(1, n_soft + 1):
        comp = soft_labels == s
        vals = v[comp]
        if vals.size < min_area:
            continue
        peak = float(np.percentile(vals, 90)) if vals.size >= 10 else float(vals.max())
        core_mask = comp & (v >= CORE_FRACTION * peak)
        core_labels, n_core = ndimage.label(core_mask, structure=four)
        if n_core == 0:
            continue
        level = float(np.median(v[core_mask]))  # full-coverage brightness, robust to pixel noise
        # nearest core for every pixel of the soft component
        _, (ri, ci) = ndimage.distance_transform_edt(core_labels == 0, return_indices=True)
        owner = np.where(comp, core_labels[ri, ci], 0)
        for c in range(1, n_core + 1):
            pix = np.argwhere(owner == c)
            core = np.argwhere(core_labels == c)
            if float(np.clip(v[pix[:, 0], pix[:, 1]] / level, 0, 1).sum()) < min_area:
                continue
            objects.append(_measure(img, v, pix, core, level))
    return objects


def relation_holds(a: DetectedObject, b: DetectedObject, relation: str) -> bool:
    """Does ``a <relation> b`` hold? The offset along the relation axis must exceed RELATION_MARGIN and
    dominate the offset across it."""
    dx, dy = b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]  # > 0: a is left of / above b
    if relation == "left of":
        return dx > RELATION_MARGIN and dx > abs(dy)
    if relation == "right of":
        return -dx > RELATION_MARGIN and -dx > abs(dy)
    if relation == "above":
        return dy > RELATION_MARGIN and dy > abs(dx)
    if relation == "below":
        return -dy > RELATION_MARGIN and -dy > abs(dx)
    raise ValueError(f"unknown relation {relation!r}; allowed: left of, right of, above, below")
