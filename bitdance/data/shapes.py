"""Procedural shapes scenes with exact captions: the compositional benchmark (colour, shape, size, position,
spatial relation, count) that works offline and renders at any resolution.

A scene is a JSON-friendly dict; every coordinate is a fraction of the canvas side (origin top left, y down):

    {"kind": "single" | "relation" | "count",
     "objects": [{"shape": "circle" | "square" | "triangle", "colour": name in COLOURS,
                  "size": "small" | "large" | None,       # None: size is not part of the caption
                  "extent": float,                          # side of the object's square bbox
                  "centre": [x, y], "bbox": [x0, y0, x1, y1],
                  "position": name in POSITIONS | None}],   # set for "single" scenes only
     "relation": name in RELATIONS | None,                  # objects[0] <relation> objects[1]
     "count": int, "background": "black"}

Geometry makes every caption unambiguous: relation pairs are separated along the relation axis by >= 0.4
canvas sides (centres) with an off-axis offset <= 0.06; counted objects sit in distinct cells of a 3x3 grid.
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from ..core.vocabulary import POSITION_ANCHORS
from .caption_templates import (
    COLOURS,
    COUNT_ONE_TEMPLATES,
    COUNT_TEMPLATES,
    COUNTS,
    INVERSE_RELATION,
    NUMBER_WORDS,
    POSITION_PHRASES,
    POSITIONS,
    RELATION_PHRASES,
    RELATION_PRONOUN_PHRASES,
    RELATION_TEMPLATES,
    RELATIONS,
    SHAPES,
    SINGLE_TEMPLATES,
    SIZE_SYNONYMS,
    SIZES,
    pick,
    plural,
    with_article,
)
from .items import Item, check_size, check_split, index_rng, make_item

SCENE_KINDS: tuple[str, ...] = ("single", "relation", "count")
DEFAULT_LENGTH: dict[str, int] = {"train": 50_000, "test": 1_000}

# Extents as fractions of the side: at 32 px small ~8-10 px, large ~14-17 px, counted objects ~7-9 px.
EXTENT_RANGE: dict[str, tuple[float, float]] = {
    "small": (0.25, 0.31),
    "large": (0.44, 0.53),
    "relation": (0.28, 0.36),
    "count": (0.22, 0.28),
}
BORDER = 0.02  # objects keep this margin from the canvas edge
RELATION_MIN_GAP = 0.4  # min centre distance along the relation axis
RELATION_MAX_OFFSET = 0.06  # max centre distance across it
_SUPERSAMPLE = 4


def _object(
    shape: str,
    colour: str,
    size: str | None,
    extent: float,
    cx: float,
    cy: float,
    position: str | None = None,
) -> dict[str, Any]:
    half = extent / 2
    return {
        "shape": shape,
        "colour": colour,
        "size": size,
        "extent": round(extent, 4),
        "centre": [round(cx, 4), round(cy, 4)],
        "bbox": [round(cx - half, 4), round(cy - half, 4), round(cx + half, 4), round(cy + half, 4)],
        "position": position,
    }


def _clamp_centre(c: float, extent: float) -> float:
    lo = extent / 2 + BORDER
    return min(max(c, lo), 1.0 - lo)


def _sample_single(rng: random.Random) -> dict[str, Any]:
    size, position = rng.choice(SIZES), rng.choice(POSITIONS)
    extent = rng.uniform(*EXTENT_RANGE[size])
    ax, ay = POSITION_ANCHORS[position]
    cx = _clamp_centre(ax + rng.uniform(-0.03, 0.03), extent)
    cy = _clamp_centre(ay + rng.uniform(-0.03, 0.03), extent)
    obj = _object(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, extent, cx, cy, position)
    return {"kind": "single", "objects": [obj], "relation": None, "count": 1, "background": "black"}


def _sample_relation(rng: random.Random) -> dict[str, Any]:
    relation = rng.choice(RELATIONS)
    (shape_a, colour_a), (shape_b, colour_b) = _two_distinct_looks(rng)
    ext_a, ext_b = rng.uniform(*EXTENT_RANGE["relation"]), rng.uniform(*EXTENT_RANGE["relation"])
    # Along the axis: one object in [0.2, 0.3], the other in [0.7, 0.8] -> centre gap >= 0.4.
    near, far = rng.uniform(0.2, 0.3), rng.uniform(0.7, 0.8)
    across = rng.uniform(0.3, 0.7)
    off_a, off_b = rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)
    first_a = relation in ("left of", "above")  # subject a is nearer the origin on its axis
    a_axis, b_axis = (near, far) if first_a else (far, near)
    if relation in ("left of", "right of"):
        (ax, ay), (bx, by) = (a_axis, across + off_a), (b_axis, across + off_b)
    else:
        (ax, ay), (bx, by) = (across + off_a, a_axis), (across + off_b, b_axis)
    objects = [
        _object(shape_a, colour_a, None, ext_a, ax, ay),
        _object(shape_b, colour_b, None, ext_b, bx, by),
    ]
    return {"kind": "relation", "objects": objects, "relation": relation, "count": 2, "background": "black"}


def _two_distinct_looks(rng: random.Random) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two (shape, colour) pairs that differ, so "a red circle left of a red circle" never occurs."""
    colours = list(COLOURS)
    a = (rng.choice(SHAPES), rng.choice(colours))
    while True:
        b = (rng.choice(SHAPES), rng.choice(colours))
        if b != a:
            return a, b


def _sample_count(rng: random.Random) -> dict[str, Any]:
    count, shape, colour = rng.choice(COUNTS), rng.choice(SHAPES), rng.choice(list(COLOURS))
    cells = rng.sample(range(9), count)
    objects = []
    for cell in cells:
        extent = rng.uniform(*EXTENT_RANGE["count"])
        slack = max(0.0, (1 / 3 - extent) / 2 - 0.01)  # keeps >= 0.02 between neighbours
        cx = (cell % 3 + 0.5) / 3 + rng.uniform(-slack, slack)
        cy = (cell // 3 + 0.5) / 3 + rng.uniform(-slack, slack)
        objects.append(_object(shape, colour, None, extent, cx, cy))
    return {"kind": "count", "objects": objects, "relation": None, "count": count, "background": "black"}


_SAMPLERS = {"single": _sample_single, "relation": _sample_relation, "count": _sample_count}


def sample_scene(rng: random.Random, kinds: tuple[str, ...] = SCENE_KINDS) -> dict[str, Any]:
    """Draw one scene (schema in the module docstring); the kind is drawn uniformly from ``kinds``."""
    bad = [k for k in kinds if k not in _SAMPLERS]
    if bad or not kinds:
        raise ValueError(f"unknown scene kinds {bad}; allowed: {', '.join(SCENE_KINDS)}")
    return _SAMPLERS[rng.choice(list(kinds))](rng)


def render_scene(scene: dict[str, Any], size: int) -> Image.Image:
    """Render a scene on black at ``size`` x ``size`` (4x supersampled, box-filtered down) -> RGB image."""
    big = size * _SUPERSAMPLE
    img = Image.new("RGB", (big, big), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    for obj in scene["objects"]:
        x0, y0, x1, y1 = (v * big for v in obj["bbox"])
        fill = COLOURS[obj["colour"]]
        if obj["shape"] == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif obj["shape"] == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif obj["shape"] == "triangle":
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
        else:
            raise ValueError(f"unknown shape {obj['shape']!r}; allowed: {', '.join(SHAPES)}")
    return img.resize((size, size), resample=Image.Resampling.BOX)


def _noun_phrase(obj: dict[str, Any], rng: random.Random | None, with_size: bool = False) -> str:
    words = [pick(rng, SIZE_SYNONYMS[obj["size"]])] if with_size and obj["size"] else []
    return with_article(" ".join(words + [obj["colour"], obj["shape"]]))


def caption_scene(scene: dict[str, Any], rng: random.Random | None = None, paraphrase: bool = False) -> str:
    """Exact caption of a scene. ``paraphrase=False``: the canonical phrasing ("a small green triangle in
    the top left", "a red circle left of a blue square", "three yellow squares"); ``paraphrase=True``:
    synonyms and sentence structure drawn from ``rng`` with the same meaning."""
    r = rng if paraphrase else None
    if paraphrase and rng is None:
        raise ValueError("caption_scene(paraphrase=True) needs an rng")
    kind, objects = scene["kind"], scene["objects"]
    if kind == "single":
        obj = objects[0]
        return pick(r, SINGLE_TEMPLATES).format(
            np=_noun_phrase(obj, r, with_size=True), pos=pick(r, POSITION_PHRASES[obj["position"]])
        )
    if kind == "relation":
        relation = scene["relation"]
        return pick(r, RELATION_TEMPLATES).format(
            a=_noun_phrase(objects[0], r),
            b=_noun_phrase(objects[1], r),
            rel=pick(r, RELATION_PHRASES[relation]),
            rel_it=pick(r, RELATION_PRONOUN_PHRASES[relation]),
            inv=pick(r, RELATION_PHRASES[INVERSE_RELATION[relation]]),
        )
    if kind == "count":
        obj, n = objects[0], scene["count"]
        if n == 1:
            return pick(r, COUNT_ONE_TEMPLATES).format(colour=obj["colour"], noun=obj["shape"])
        return pick(r, COUNT_TEMPLATES).format(
            word=NUMBER_WORDS[n], num=n, colour=obj["colour"], noun=plural(obj["shape"])
        )
    raise ValueError(f"unknown scene kind {kind!r}; allowed: {', '.join(SCENE_KINDS)}")


def paraphrases(scene: dict[str, Any], n: int = 5, seed: int = 0) -> list[str]:
    """Up to ``n`` distinct phrasings of one scene, the canonical caption first."""
    out = [caption_scene(scene)]
    rng = random.Random(f"bitdance/paraphrases/{seed}")
    for _ in range(50 * n):
        if len(out) >= n:
            break
        text = caption_scene(scene, rng, paraphrase=True)
        if text not in out:
            out.append(text)
    return out


class ShapesDataset(Dataset):
    """Procedural scenes, deterministic from (seed, split, index); train and test use different streams.

    Items: image (3, size, size) in [-1, 1]; caption exact; label -1; meta = scene dict plus
    ``"canonical_caption"``."""

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        seed: int = 0,
        length: int | None = None,
        kinds: tuple[str, ...] = SCENE_KINDS,
        paraphrase: bool = True,
    ) -> None:
        self.split, self.size, self.seed = check_split(split), check_size(size), int(seed)
        self.length = DEFAULT_LENGTH[split] if length is None else int(length)
        if self.length <= 0:
            raise ValueError(f"length must be positive, got {length!r}")
        bad = [k for k in kinds if k not in SCENE_KINDS]
        if bad or not kinds:
            raise ValueError(f"unknown scene kinds {bad}; allowed: {', '.join(SCENE_KINDS)}")
        self.kinds, self.paraphrase = tuple(kinds), paraphrase

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> dict[str, Any]:
        """The scene dict of item ``index`` (no rendering)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        return sample_scene(index_rng(self.seed, index, f"shapes/{self.split}/scene"), self.kinds)

    def __getitem__(self, index: int) -> Item:
        scene = self.scene(index)
        rng = index_rng(self.seed, index, f"shapes/{self.split}/caption")
        caption = caption_scene(scene, rng, paraphrase=self.paraphrase)
        meta = dict(scene, canonical_caption=caption_scene(scene))
        return make_item(render_scene(scene, self.size), caption, -1, meta)
