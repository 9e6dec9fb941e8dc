"""95 % bootstrap intervals for adherence accuracies, resampling prompts and then seeds within each prompt.

One resample draws, per category, that category's prompts with replacement and, for every drawn prompt,
its seeds with replacement; the overall accuracy (mean of the category accuracies) is recomputed on the
same resample, so its interval keeps the categories' joint variation. Fixed seed: reports are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def bootstrap_accuracy(
    outcomes_by_cat: dict[str, Sequence[Sequence[bool]]],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[dict[str, tuple[float, float]], tuple[float, float], tuple[float, float]]:
    """outcomes_by_cat: category -> per prompt, its outcomes over seeds (each prompt the same count).

    Returns (per-category 95 % interval, overall (mean of categories) interval, image-mean interval)."""
    g = np.random.default_rng(seed)
    per_cat: dict[str, tuple[float, float]] = {}
    cat_draws, correct_draws, image_counts = [], np.zeros(resamples), 0
    for cat, rows in sorted(outcomes_by_cat.items()):
        widths = {len(r) for r in rows}
        if len(widths) != 1 or 0 in widths:
            raise ValueError(f"category {cat!r}: every prompt needs the same number of seeds, got {widths}")
        m = np.asarray(rows, dtype=np.float64)  # (prompts, seeds)
        n_p, n_s = m.shape
        ip = g.integers(0, n_p, (resamples, n_p))
        is_ = g.integers(0, n_s, (resamples, n_p, n_s))
        acc = m[ip[:, :, None], is_].mean((1, 2))  # (resamples,)
        per_cat[cat] = _interval(acc)
        cat_draws.append(acc)
        correct_draws += acc * m.size
        image_counts += m.size
    if not cat_draws:
        raise ValueError("no outcomes to bootstrap")
    overall = _interval(np.mean(cat_draws, axis=0))
    return per_cat, overall, _interval(correct_draws / image_counts)


def _interval(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def intervals_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Do two [lo, hi] intervals share any point? (No overlap: the difference is clear at this level.)"""
    return bool(a[0] <= b[1] and b[0] <= a[1])


def compare(a: dict, b: dict, key: str = "overall") -> dict:  # noqa: ANN001
    """Compare two adherence summaries on ``key`` ('overall' or a category name): difference b - a and
    whether their 95 % intervals overlap."""

    def pick(s: dict) -> tuple[float, list[float]]:
        if key == "overall":
            return s["overall"], s["overall_ci95"]
        c = s["categories"][key]
        return c["accuracy"], c["ci95"]

    (va, ca), (vb, cb) = pick(a), pick(b)
    overlap = intervals_overlap(ca, cb)
    return {
        "key": key,
        "a": va,
        "b": vb,
        "difference": vb - va,
        "a_ci95": ca,
        "b_ci95": cb,
        "intervals_overlap": overlap,
        "verdict": "intervals overlap: no clear difference"
        if overlap
        else "intervals apart: clear difference",
    }


def bootstrap_mean(
    outcomes: Sequence[bool], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of independent outcomes (items resampled)."""
    x = np.asarray(outcomes, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no outcomes to bootstrap")
    idx = np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))
    return _interval(x[idx].mean(1))
