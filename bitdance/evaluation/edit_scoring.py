"""Scorers of the edit benchmark (v2): does the whole edited image agree with the kept part?

- align (``align_to_kept``): exactly two objects are detected; one has the kept object's colour and shape
  within ``tolerance`` of its kept centre (both axes), the other has the regenerated object's colour and
  shape; the caption's relation holds (``detectors.relation_holds``) and the two centres differ by at most
  ``tolerance`` across the relation axis;
- count (``count_fill``): exactly ``count`` objects are detected, all of the wanted colour and shape, and
  each kept centre has one of them within ``tolerance``;
- garment (``garment_below`` / ``garment_above``): the fashion classifier names the class, and the bright
  pixels of the regenerated half (``detectors.foreground_colour``) are named the kept half's tint.

``mismatched`` builds, from a task's source, a completion that keeps the kept part but contradicts it (the
scorer check of the report: real scenes and garments should score near 1, these near 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.vocabulary import COLOURS
from ..data.shapes import render_scene
from .detectors import DetectedObject, as_uint8_image, detect_objects, foreground_colour, relation_holds
from .edit_tasks import half_rows


def _is(o: DetectedObject, want: dict[str, str]) -> bool:
    return o.shape == want["shape"] and o.colour == want["colour"]


def _near(o: DetectedObject, centre: Sequence[float], tol: float) -> bool:
    return abs(o.centre[0] - centre[0]) <= tol and abs(o.centre[1] - centre[1]) <= tol


def check_align(objects: list[DetectedObject], e: dict[str, Any]) -> tuple[bool, str]:
    if len(objects) != 2:
        return False, f"found {len(objects)} objects, expected 2"
    k, tol = e["kept"], e["tolerance"]
    pairs = [(a, b) for a, b in (objects, objects[::-1]) if _is(a, e["objects"][k])]
    placed = [(a, b) for a, b in pairs if _near(a, e["kept_centre"], tol)]
    if not placed:
        return False, "the kept object is not at its place"
    kept, other = placed[0]
    if not _is(other, e["objects"][1 - k]):
        return False, f"the other object is a {other.colour} {other.shape}"
    subject, reference = (kept, other) if k == 0 else (other, kept)
    if not relation_holds(subject, reference, e["relation"]):
        return False, f"relation '{e['relation']}' does not hold"
    across = 1 if e["axis"] == "x" else 0
    off = abs(subject.centre[across] - reference.centre[across])
    if off > tol:
        return False, f"not in line with the kept object (offset {off:.2f} across the relation axis)"
    return True, ""


def check_count(objects: list[DetectedObject], e: dict[str, Any]) -> tuple[bool, str]:
    if len(objects) != e["count"]:
        return False, f"found {len(objects)} objects, expected {e['count']}"
    wrong = [o for o in objects if not _is(o, e["want"])]
    if wrong:
        return False, f"found a {wrong[0].colour} {wrong[0].shape}"
    missing = [c for c in e["kept_centres"] if not any(_near(o, c, e["tolerance"]) for o in objects)]
    return (False, "a kept object is not at its place") if missing else (True, "")


def region_colour(image: Any, region: str) -> str | None:
    img = as_uint8_image(image)
    return foreground_colour(img[half_rows(img.shape[0], region == "top")])


def score_edits(
    images: Sequence[Any], expects: Sequence[dict[str, Any]], classify: Any
) -> list[tuple[bool, str]]:
    """(correct, reason when wrong) per image; ``classify``: list of uint8 images -> fashion class names."""
    if len(images) != len(expects):
        raise ValueError(f"{len(images)} images but {len(expects)} expectations")
    arrays = [as_uint8_image(im) for im in images]
    out: list[tuple[bool, str]] = [(False, "")] * len(arrays)
    garments = [i for i, e in enumerate(expects) if e["task"] == "garment"]
    names = classify([arrays[i] for i in garments]) if garments else []
    for i, name in zip(garments, names):
        e = expects[i]
        colour = region_colour(arrays[i], e["region"])
        why = [f"classified as {name!r}"] if name != e["class"] else []
        if colour != e["region_colour"]:
            why.append(f"{e['region']} half looks {colour}")
        out[i] = (not why, "; ".join(why))
    for i, e in enumerate(expects):
        if e["task"] == "garment":
            continue
        check = {"align": check_align, "count": check_count}.get(e["task"])
        if check is None:
            raise ValueError(f"unknown edit task {e['task']!r}; allowed: align, count, garment")
        out[i] = check(detect_objects(arrays[i]), e)
    return out


def mismatched(task: dict[str, Any]) -> np.ndarray:
    """A completion of the task's source that keeps its kept part and contradicts it (uint8 H x W x 3)."""
    e, img = task["expect"], as_uint8_image(task["image"])
    size = img.shape[0]
    if e["task"] == "garment":  # the regenerated half re-tinted with the next colour
        names = [c for c in COLOURS if c != "white"]
        other = names[(names.index(e["region_colour"]) + 1) % len(names)]
        rows = half_rows(size, e["region"] == "top")
        scale = img[rows].max(2).astype(np.float64) / max(COLOURS[e["region_colour"]])
        out = img.copy()
        out[rows] = np.clip(scale[..., None] * np.asarray(COLOURS[other]), 0, 255).round().astype(np.uint8)
        return out
    scene = task["scene"]
    if e["task"] == "align":  # the regenerated object moved 0.25 across the axis, away from the kept one
        objs = [dict(o) for o in scene["objects"]]
        o, across = objs[1 - e["kept"]], 1 if e["axis"] == "x" else 0
        shift = 0.25 if o["centre"][across] < 0.5 else -0.25
        o["centre"] = [c + (shift if j == across else 0.0) for j, c in enumerate(o["centre"])]
        o["bbox"] = [c + (shift if j % 2 == across else 0.0) for j, c in enumerate(o["bbox"])]
        return np.asarray(render_scene({**scene, "objects": objs}, size))
    # count: one object too many, in a free cell of the 3x3 grid
    taken = {(int(o["centre"][0] * 3), int(o["centre"][1] * 3)) for o in scene["objects"]}
    cell = next((x, y) for y in range(3) for x in range(3) if (x, y) not in taken)
    ext = scene["objects"][0]["extent"]
    cx, cy = (cell[0] + 0.5) / 3, (cell[1] + 0.5) / 3
    extra = {
        **scene["objects"][0],
        "centre": [cx, cy],
        "bbox": [cx - ext / 2, cy - ext / 2, cx + ext / 2, cy + ext / 2],
    }
    return np.asarray(render_scene({**scene, "objects": [*scene["objects"], extra]}, size))
