"""Quality/speed frontiers and the speed ratio at matched quality (pure functions on measured points).

A point is one sampler setting of one system: ``{"system", "setting", "fid_cls", "images_per_second", ...}``.

- The frontier of a system: its points that no other point of the same system beats on both axes (lower or
  equal FID_cls and higher or equal images/s, one strictly).
- Matched quality: the target is the best FID_cls *both* systems reach, ``max(min FID ours, min FID theirs)``.
  For each system the chosen setting is its fastest point with FID_cls <= target (among equally fast ones,
  the lower FID); the ratio is ours images/s / theirs. Whichever system has the better best FID reaches the
  target with a cheaper setting than its best one; the other needs its best.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def frontier(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The non-dominated points, sorted by images/s (fastest first, FID rising towards the fast end)."""
    keep = []
    for p in points:
        dominated = any(
            q is not p
            and q["fid_cls"] <= p["fid_cls"]
            and q["images_per_second"] >= p["images_per_second"]
            and (q["fid_cls"] < p["fid_cls"] or q["images_per_second"] > p["images_per_second"])
            for q in points
        )
        if not dominated:
            keep.append(p)
    return sorted(keep, key=lambda p: (-p["images_per_second"], p["fid_cls"]))


def fastest_reaching(points: Sequence[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The fastest point with FID_cls <= target (ties: lower FID), or None."""
    ok = [p for p in points if p["fid_cls"] <= target]
    return min(ok, key=lambda p: (-p["images_per_second"], p["fid_cls"])) if ok else None


def matched_quality(ours: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Speed ratio (ours / theirs) at the best FID_cls both systems reach (see the module docstring)."""
    if not ours or not theirs:
        raise ValueError("matched quality needs at least one point of each system")
    best_ours = min(p["fid_cls"] for p in ours)
    best_theirs = min(p["fid_cls"] for p in theirs)
    target = max(best_ours, best_theirs)
    a, b = fastest_reaching(ours, target), fastest_reaching(theirs, target)
    assert a is not None and b is not None  # target >= each system's best
    return {
        "target_fid_cls": target,
        "better_best_fid": "ours"
        if best_ours < best_theirs
        else "theirs"
        if best_theirs < best_ours
        else "tie",
        "best_fid_ours": best_ours,
        "best_fid_theirs": best_theirs,
        "ours": a["setting"],
        "theirs": b["setting"],
        "ours_fid_cls": a["fid_cls"],
        "theirs_fid_cls": b["fid_cls"],
        "ours_images_per_second": a["images_per_second"],
        "theirs_images_per_second": b["images_per_second"],
        "speed_ratio": a["images_per_second"] / b["images_per_second"],
        "flop_ratio": (b["gflop_per_image"] / a["gflop_per_image"])
        if a.get("gflop_per_image") and b.get("gflop_per_image")
        else None,
    }


def frontier_plot_png(
    ours: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]], names: tuple[str, str], title: str
) -> bytes:
    """FID_cls (with 95 % intervals) against images/s (log axis) for both systems, frontiers as lines."""
    from .report import figure_png, new_figure

    fig, ax = new_figure(7.5, 4.8)
    for pts, name, colour in ((ours, names[0], "tab:blue"), (theirs, names[1], "tab:orange")):
        xs = [p["images_per_second"] for p in pts]
        ys = [p["fid_cls"] for p in pts]
        lo = [max(0.0, p["fid_cls"] - p["ci"]["low"]) if p.get("ci") else 0.0 for p in pts]
        hi = [max(0.0, p["ci"]["high"] - p["fid_cls"]) if p.get("ci") else 0.0 for p in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=colour, alpha=0.6, ms=4, capsize=2, label=name)
        front = frontier(pts)
        ax.plot(
            [p["images_per_second"] for p in front], [p["fid_cls"] for p in front], "-", color=colour, lw=1.5
        )
        for p in pts:
            ax.annotate(
                p["setting"],
                (p["images_per_second"], p["fid_cls"]),
                fontsize=6,
                color=colour,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="images/s (log)", ylabel="FID_cls (log, lower is better)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)
