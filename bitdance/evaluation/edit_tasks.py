"""Edit benchmark tasks (v2) whose answer the prompt does not state and the kept part decides.

Categories (prompts are the training captioner's canonical phrasing; what the prompt leaves open is named):

- ``align_to_kept``: a two-object relation scene ("a red circle left of a blue square") whose pair sits off
  the canvas middle across the relation axis; only the token cells of one object (alternately the subject
  and the reference) are kept, everything else is regenerated. The prompt names the side, not *where across
  the axis* the pair sits: the regenerated object must line up with the kept one (within ``TOLERANCE``).
- ``count_fill``: a counting scene ("three yellow squares"); the token cells of 1..count-1 of its objects
  are kept, the rest of the canvas is regenerated. The prompt gives the total, not how many are already
  there or where: the result must hold exactly ``count`` objects, one at each kept object's place.
- ``garment_below`` / ``garment_above``: a tinted Fashion-MNIST garment with its bottom / top half
  regenerated under its class-only caption ("a dress", the phrasing the training captioner gives a plain
  garment). The prompt names no colour: the regenerated half must carry the kept half's tint (and the
  garment its class). ``garment_above`` regenerates the tokens that come *before* the kept ones in patch
  order, so only a method that feeds later kept tokens first can see them.

Splits: shapes scenes from the random streams ``bitdance/edit-bench-v2/<split>/...`` (used by nothing else);
garments from disjoint Fashion-MNIST *test* index ranges (``GARMENT_RANGES``; no training run uses the test
split; the decoder fine-tunes read items 0-999, tokenizer monitors multiples of 390 (skipped), the v1
edit bench items 9000-9007). Garment tasks use only items tinted with a colour other than white (a plain
grey garment is named "white" by the colour namer, so its tint would be undecidable), whose regenerated half
holds at least ``GARMENT_MIN_PIXELS`` bright pixels, and (when a classifier is given) whose source image the
scorer's classifier names correctly, so that complete real garments score 1 by construction of the set.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.caption_templates import FASHION_NOUNS, garment_phrase
from ..data.registry import build_dataset
from ..data.shapes import caption_scene, render_scene, sample_scene

STREAM = "bitdance/edit-bench-v2"
SPLITS = ("dev", "test")
CATEGORIES = ("align_to_kept", "count_fill", "garment_below", "garment_above")
GARMENT_RANGES: dict[str, tuple[int, int]] = {"dev": (6000, 7000), "test": (7000, 8000)}
GARMENT_SKIP_MULTIPLES_OF = 390  # the tokenizer runs' in-training monitor items
GARMENT_TINT_SEED = 11
GARMENT_MIN_PIXELS = 24  # bright (v >= 0.25) pixels the regenerated half must hold in the source
TOLERANCE = 0.1  # canvas sides: kept-object place and across-axis alignment
ACROSS_MIN_OFFSET = 0.1  # align_to_kept: the pair's across-axis centre is at least this far off 0.5
GRID_TOKENS = 4  # token grid side at 32 px (f = 8): kept cells are computed on it


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown edit-bench split {split!r}; allowed: {', '.join(SPLITS)}")
    return split


def cells_of(bbox: list[float], grid: int) -> tuple[int, int, int, int]:
    """Token cells (r0, r1, c0, c1), end exclusive, that a bbox (fractions x0, y0, x1, y1) touches."""
    x0, y0, x1, y1 = bbox
    c0, c1 = int(np.floor(x0 * grid)), int(np.ceil(x1 * grid))
    r0, r1 = int(np.floor(y0 * grid)), int(np.ceil(y1 * grid))
    return max(r0, 0), min(r1, grid), max(c0, 0), min(c1, grid)


def keep_only_mask(bboxes: list[list[float]], size: int, grid: int = GRID_TOKENS) -> np.ndarray:
    """(size, size) bool regenerate-mask: everything except the token cells the bboxes touch."""
    m = np.ones((size, size), dtype=bool)
    f = size // grid
    for b in bboxes:
        r0, r1, c0, c1 = cells_of(b, grid)
        m[r0 * f : r1 * f, c0 * f : c1 * f] = False
    return m


def _want(obj: dict[str, Any]) -> dict[str, str]:
    return {"shape": obj["shape"], "colour": obj["colour"]}


def _touches_kept(scene: dict[str, Any], others: list[int], mask: np.ndarray, size: int) -> bool:
    """Does any non-kept object put a visible pixel into a kept cell?"""
    rest = {**scene, "objects": [scene["objects"][j] for j in others]}
    v = np.asarray(render_scene(rest, size)).max(2)
    return bool((v[~mask] > 8).any())


def _shapes_task(
    category: str, scene: dict[str, Any], mask: np.ndarray, size: int, **expect: Any
) -> dict[str, Any]:
    """A shapes-scene task: the scene's image and caption, the regenerate-mask and the expectation."""
    return {
        "category": category,
        "image": render_scene(scene, size),
        "mask": mask,
        "prompt": caption_scene(scene),
        "expect": {"domain": "shapes", **expect, "tolerance": TOLERANCE},
        "scene": scene,
    }


def align_task(split: str, i: int, size: int) -> dict[str, Any]:
    rng = random.Random(f"{STREAM}/{check_split(split)}/align/{i}")
    while True:
        scene = sample_scene(rng, ("relation",))
        axis = "x" if scene["relation"] in ("left of", "right of") else "y"
        across = 1 if axis == "x" else 0
        mid = sum(o["centre"][across] for o in scene["objects"]) / 2
        if abs(mid - 0.5) < ACROSS_MIN_OFFSET:
            continue
        kept = i % 2  # 0: the subject is kept, 1: the reference
        mask = keep_only_mask([scene["objects"][kept]["bbox"]], size)
        if not _touches_kept(scene, [1 - kept], mask, size):
            break
    return _shapes_task(
        "align_to_kept", scene, mask, size, task="align",
        objects=[_want(o) for o in scene["objects"]], relation=scene["relation"], axis=axis, kept=kept,
        kept_centre=list(scene["objects"][kept]["centre"]),
    )  # fmt: skip


def count_task(split: str, i: int, size: int) -> dict[str, Any]:
    rng = random.Random(f"{STREAM}/{check_split(split)}/count/{i}")
    while True:
        scene = sample_scene(rng, ("count",))
        n = scene["count"]
        if n < 2:
            continue
        kept = sorted(rng.sample(range(n), rng.randint(1, n - 1)))
        mask = keep_only_mask([scene["objects"][j]["bbox"] for j in kept], size)
        if not _touches_kept(scene, [j for j in range(n) if j not in kept], mask, size):
            break
    return _shapes_task(
        "count_fill", scene, mask, size, task="count", want=_want(scene["objects"][0]), count=n,
        kept_centres=[list(scene["objects"][j]["centre"]) for j in kept],
    )  # fmt: skip


def class_only_caption(class_name: str) -> str:
    """The canonical caption the training captioner gives a plain (untinted) garment: "a dress"."""
    return garment_phrase(FASHION_NOUNS[class_name][0], None)


def half_rows(size: int, top: bool) -> slice:
    return slice(0, size // 2) if top else slice(size // 2, size)


def garment_items(split: str, n: int, size: int, classify: Callable[[np.ndarray], str] | None) -> list[Any]:
    """The first n usable garments of the split's index range (rules in the module docstring), in order."""
    lo, hi = GARMENT_RANGES[check_split(split)]
    ds = build_dataset("fashion_mnist", "test", size, tint=True, seed=GARMENT_TINT_SEED)
    out = []
    for idx in range(lo, hi):
        if idx % GARMENT_SKIP_MULTIPLES_OF == 0:
            continue
        item = ds[idx]
        colour = item["meta"]["colour"]
        if colour in (None, "white"):
            continue
        img = ((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        v = img.max(2) / 255.0
        if min((v[half_rows(size, t)] >= 0.25).sum() for t in (True, False)) < GARMENT_MIN_PIXELS:
            continue
        if classify is not None and classify(img) != item["meta"]["class_name"]:
            continue
        out.append((idx, img, item["meta"]))
        if len(out) == n:
            return out
    raise ValueError(f"only {len(out)} usable garments in test items {lo}..{hi - 1}; asked for {n}")


def garment_task(idx: int, img: np.ndarray, meta: dict[str, Any], size: int, top: bool) -> dict[str, Any]:
    """top: the top half is regenerated (garment_above), else the bottom half (garment_below)."""
    mask = np.zeros((size, size), dtype=bool)
    mask[half_rows(size, top)] = True
    return {
        "category": "garment_above" if top else "garment_below",
        "image": img,
        "mask": mask,
        "prompt": class_only_caption(meta["class_name"]),
        "expect": {
            "domain": "fashion",
            "task": "garment",
            "class": meta["class_name"],
            "region_colour": meta["colour"],
            "region": "top" if top else "bottom",
        },
        "index": idx,
    }


def build_tasks(
    split: str, n_per_category: int, size: int, classify: Callable[[np.ndarray], str] | None = None
) -> list[dict[str, Any]]:
    """n tasks per category (CATEGORIES order) of one split: image, mask (H, W) bool, prompt, expect."""
    check_split(split)
    if n_per_category < 2:
        raise ValueError(f"--n must be at least 2 (sensitivity pairs tasks), got {n_per_category}")
    tasks = [align_task(split, i, size) for i in range(n_per_category)]
    tasks += [count_task(split, i, size) for i in range(n_per_category)]
    items = garment_items(split, n_per_category, size, classify)
    tasks += [garment_task(*it, size, top=False) for it in items]
    tasks += [garment_task(*it, size, top=True) for it in items]
    return tasks
