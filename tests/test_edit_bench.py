"""Edit benchmark pieces: held-out tasks, generation-order position classes, bootstrap intervals."""

import numpy as np
import torch

from bitdance.evaluation.edit_bench import CATEGORIES, bootstrap_ci, build_tasks, position_classes


def test_tasks_mask_the_described_part():
    tasks = build_tasks(2, 32)
    assert [t["category"] for t in tasks] == [c for c in CATEGORIES for _ in range(2)]
    for t in tasks:
        m = t["mask"]
        assert m.shape == (32, 32) and m.any() and not m.all()
        assert t["expect"]["domain"] in ("shapes", "fashion") and t["prompt"]
    garment = tasks[-1]["mask"]
    assert garment[16:].all() and not garment[:16].any()  # bottom half regenerated


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
