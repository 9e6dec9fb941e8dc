"""Edit benchmark pieces: v2 tasks and splits, their scorers (real sources pass, contradicting completions
fail), generation-order position classes, bootstrap intervals and the default-method rule."""

import numpy as np
import pytest
import torch

from bitdance.evaluation.detectors import DetectedObject
from bitdance.evaluation.edit_bench import bootstrap_ci, position_classes
from bitdance.evaluation.edit_scoring import check_align, check_count, mismatched, score_edits
from bitdance.evaluation.edit_tasks import CATEGORIES, GARMENT_RANGES, build_tasks, keep_only_mask


def _fake_classify(tasks):
    """The fashion classifier's stand-in: the expected class of each garment task, in order."""
    names = [t["expect"]["class"] for t in tasks if t["expect"]["task"] == "garment"]
    return lambda images: names[: len(images)]


@pytest.fixture(scope="module")
def dev_tasks():
    return build_tasks("dev", 2, 32)


def test_tasks_keep_what_decides_the_answer(dev_tasks):
    assert [t["category"] for t in dev_tasks] == [c for c in CATEGORIES for _ in range(2)]
    for t in dev_tasks:
        m = t["mask"]
        assert m.shape == (32, 32) and m.any() and not m.all() and t["prompt"]
        e = t["expect"]
        if e["task"] == "align":  # the prompt names looks and side, never the place across the axis
            assert e["relation"] in t["prompt"] and len(e["kept_centre"]) == 2
        if e["task"] == "garment":  # class-only prompt: the tint is not in it
            assert e["region_colour"] not in t["prompt"] and e["region_colour"] != "white"
    below, above = dev_tasks[4]["mask"], dev_tasks[6]["mask"]
    assert below[16:].all() and not below[:16].any() and above[:16].all() and not above[16:].any()


def test_splits_are_disjoint():
    test = build_tasks("test", 2, 32)
    dev = build_tasks("dev", 2, 32)
    assert [t["prompt"] for t in dev[:4]] != [t["prompt"] for t in test[:4]]
    for split, tasks in (("dev", dev), ("test", test)):
        lo, hi = GARMENT_RANGES[split]
        assert all(lo <= t["index"] < hi and t["index"] % 390 for t in tasks if "index" in t)
    with pytest.raises(ValueError, match="allowed: dev, test"):
        build_tasks("train", 2, 32)


def test_keep_only_mask_keeps_the_touched_cells():
    m = keep_only_mask([[0.3, 0.3, 0.45, 0.45]], 32)  # touches token cells (1, 1) only
    assert not m[8:16, 8:16].any() and m.sum() == 32 * 32 - 64


def test_scorer_passes_real_sources_and_rejects_contradicting_completions(dev_tasks):
    expects = [t["expect"] for t in dev_tasks]
    real = score_edits([t["image"] for t in dev_tasks], expects, _fake_classify(dev_tasks))
    wrong = score_edits([mismatched(t) for t in dev_tasks], expects, _fake_classify(dev_tasks))
    assert all(ok for ok, _ in real), real
    assert not any(ok for ok, _ in wrong), wrong


def _obj(shape, colour, x, y):
    return DetectedObject(shape, colour, "small", "center", (x, y), 0.3, 1.0, 0.0, 50.0)


def test_align_and_count_checks_on_hand_made_detections():
    e = {
        "objects": [{"shape": "circle", "colour": "red"}, {"shape": "square", "colour": "blue"}],
        "relation": "left of",
        "axis": "x",
        "kept": 1,
        "kept_centre": [0.75, 0.35],
        "tolerance": 0.1,
    }
    assert check_align([_obj("circle", "red", 0.25, 0.37), _obj("square", "blue", 0.75, 0.35)], e)[0]
    misaligned = check_align([_obj("circle", "red", 0.25, 0.6), _obj("square", "blue", 0.75, 0.35)], e)
    assert not misaligned[0] and "in line" in misaligned[1]
    moved = check_align([_obj("circle", "red", 0.25, 0.6), _obj("square", "blue", 0.75, 0.6)], e)
    assert not moved[0] and "kept object" in moved[1]
    c = {
        "want": {"shape": "square", "colour": "green"},
        "count": 2,
        "kept_centres": [[0.2, 0.2]],
        "tolerance": 0.1,
    }
    assert check_count([_obj("square", "green", 0.2, 0.2), _obj("square", "green", 0.8, 0.5)], c)[0]
    assert not check_count([_obj("square", "green", 0.5, 0.5), _obj("square", "green", 0.8, 0.5)], c)[0]
    assert not check_count([_obj("square", "green", 0.2, 0.2)] * 3, c)[0]


def test_position_classes_follow_generation_order():
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[:, :2] = False  # left half: patch 0 precedes every kept token, patch 2 lies between kept ones
    cls = position_classes(keep, 4)
    assert {cls[r] for r in (0, 1, 4, 5)} == {"before"} and {cls[r] for r in (8, 9, 12, 13)} == {"inside"}
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[3, 3] = False
    assert position_classes(keep, 4) == {15: "after"}


def test_bootstrap_interval_brackets_the_mean():
    vals = [1.0] * 30 + [0.0] * 10
    lo, hi = bootstrap_ci(vals)
    assert lo < np.mean(vals) < hi and 0.5 < lo and hi < 0.95
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)
