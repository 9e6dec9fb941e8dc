"""Sensitivity detail of the edit benchmark (`bitdance eval edit --sensitivity-detail`): what the regenerated
token is at positions whose bits are the same for both sources, and at those that differ.

A diagnostic of the benchmark's sensitivity, not a change of it. For each regenerated position and seed the
two edits (of the task's source and of its partner source) are described by:

- ``bg_token``: the token's bits equal those the tokenizer gives the same grid position of a plain black
  image (every task is drawn on black; the token of a black cell depends on its position, as the encoder
  sees the image border);
- ``black``: the decoded f x f patch of the position has no channel value above ``BLACK_MAX`` (uint8);
- ``uniform``: every channel of the decoded patch spans at most ``BLACK_MAX`` (any flat colour);
- ``source_black``: the *source image's* cell at that position is black (the ground truth there is empty).

A position counts for a flag when the flag holds for both edits (both sources). ``BLACK_MAX`` is a fixed
setting chosen before any measurement (about 10 % of the range: the box-filtered rendering's edge bleed).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

BLACK_MAX = 24
FLAGS = ("bg_token", "black", "uniform", "source_black")
CLASSES = ("before", "inside", "after")


def cell_flags(
    bits_dhw: torch.Tensor, image_HW3: np.ndarray, bg_bits_dhw: torch.Tensor, f: int
) -> dict[str, np.ndarray]:
    """Per grid cell (h, w) bool: token equals the black image's token there, decoded patch black, uniform."""
    h, w = bits_dhw.shape[1:]
    cells = np.asarray(image_HW3, dtype=np.int16).reshape(h, f, w, f, 3).transpose(0, 2, 1, 3, 4)
    cells = cells.reshape(h, w, f * f, 3)
    return {
        "bg_token": (bits_dhw == bg_bits_dhw).all(0).cpu().numpy(),
        "black": cells.max((2, 3)) <= BLACK_MAX,
        "uniform": (cells.max(2) - cells.min(2)).max(-1) <= BLACK_MAX,
    }


def black_cells(image_HW3: np.ndarray, f: int) -> np.ndarray:
    """(h, w) bool: cells of a uint8 image with no channel value above BLACK_MAX."""
    a = np.asarray(image_HW3, dtype=np.int16)
    h, w = a.shape[0] // f, a.shape[1] // f
    return a.reshape(h, f, w, f, 3).max((1, 3, 4)) <= BLACK_MAX


def position_records(
    method: str,
    category: str,
    classes: dict[int, str],
    grid_w: int,
    pair: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    bits: tuple[torch.Tensor, torch.Tensor],
    source_black: tuple[np.ndarray, np.ndarray],
) -> list[dict[str, Any]]:
    """One record per regenerated position of one seed: whether its bits differ and which flags hold for both
    edits. ``pair``: cell_flags of the two edits; ``bits``: their (d, h, w) bits; ``source_black``: the two
    source images' black_cells."""
    out = []
    for r, cls in classes.items():
        y, x = divmod(r, grid_w)
        a, b = bits[0][:, y, x], bits[1][:, y, x]
        rec = {"method": method, "category": category, "class": cls, "differs": not torch.equal(a, b)}
        rec["bits_differing"] = int((a != b).sum())
        for k in ("bg_token", "black", "uniform"):
            rec[k] = bool(pair[0][k][y, x] and pair[1][k][y, x])
        rec["source_black"] = bool(source_black[0][y, x] and source_black[1][y, x])
        out.append(rec)
    return out


def edit_records(
    tokenizer: Any,
    method: str,
    category: str,
    classes: dict[int, str],
    bits: tuple[torch.Tensor, torch.Tensor],
    bg_bits_dhw: torch.Tensor,
    source_black: tuple[np.ndarray, np.ndarray],
) -> list[dict[str, Any]]:
    """Records of every seed of one task and method. ``bits``: (S, d, h, w) of the edit of the source and of
    the partner source (same seeds); both are decoded here to look at the patches."""
    from ..pipeline import tensor_to_uint8  # noqa: PLC0415

    f = tokenizer.downsample
    with torch.inference_mode():
        imgs = [tensor_to_uint8(tokenizer.decode(b.float())) for b in bits]
    out = []
    for s in range(bits[0].shape[0]):
        pair = tuple(cell_flags(bits[i][s], imgs[i][s], bg_bits_dhw, f) for i in (0, 1))
        out += position_records(
            method, category, classes, bits[0].shape[-1], pair, (bits[0][s], bits[1][s]), source_black
        )
    return out


def _group(recs: list[dict[str, Any]]) -> dict[str, Any]:
    same = [r for r in recs if not r["differs"]]
    diff = [r for r in recs if r["differs"]]

    def part(rs: list[dict[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {"n": len(rs)}
        for k in FLAGS:
            d[f"{k}_both"] = float(np.mean([r[k] for r in rs])) if rs else None
        return d

    def restricted(flag: str, holds: bool = False) -> dict[str, Any]:
        rs = [r for r in recs if r[flag] == holds]
        return {"fraction": float(np.mean([r["differs"] for r in rs])) if rs else None, "n": len(rs)}

    return {
        "n": len(recs),
        "sensitivity": float(np.mean([r["differs"] for r in recs])) if recs else None,
        "same": part(same),
        "differs": {
            **part(diff),
            "mean_bits_differing": float(np.mean([r["bits_differing"] for r in diff])) if diff else None,
        },
        "excluding_black_both": restricted("black"),
        "excluding_source_black_both": restricted("source_black"),
        "within_black_both": restricted("black", True),
        "within_source_black_both": restricted("source_black", True),
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Breakdown by method, then 'all' and each class, and by category (each with 'all' and classes)."""
    by_m: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_m[r["method"]].append(r)
    res: dict[str, Any] = {}
    for m, rs in by_m.items():
        d: dict[str, Any] = {"all": _group(rs)}
        d.update(
            {
                c: _group([r for r in rs if r["class"] == c])
                for c in CLASSES
                if any(r["class"] == c for r in rs)
            }
        )
        cats: dict[str, Any] = {}
        for cat in dict.fromkeys(r["category"] for r in rs):
            rc = [r for r in rs if r["category"] == cat]
            cats[cat] = {"all": _group(rc)}
            cats[cat].update(
                {
                    c: _group([r for r in rc if r["class"] == c])
                    for c in CLASSES
                    if any(r["class"] == c for r in rc)
                }
            )
        d["by_category"] = cats
        res[m] = d
    return res


def _f(v: Any) -> str:  # noqa: ANN401
    return "-" if v is None else f"{v:.3f}"


def detail_tables(summary: dict[str, Any]) -> dict[str, Any]:
    """Shared-format table: one row per method x (category or all) x (class or all)."""
    rows = []
    for m, d in summary.items():
        scopes = [("all", d)] + list(d["by_category"].items())
        for scope, g in scopes:
            for cls in ("all", *CLASSES):
                if cls not in g:
                    continue
                s = g[cls]
                rows.append(
                    [
                        m,
                        scope,
                        cls,
                        s["n"],
                        _f(s["sensitivity"]),
                        s["same"]["n"],
                        _f(s["same"]["bg_token_both"]),
                        _f(s["same"]["black_both"]),
                        _f(s["same"]["source_black_both"]),
                        _f(s["differs"]["black_both"]),
                        _f(s["excluding_black_both"]["fraction"]),
                        s["excluding_black_both"]["n"],
                    ]
                )
    summary_rows = []
    for m, d in summary.items():
        for cls in ("all", *CLASSES):
            if cls in d:
                s = d[cls]
                summary_rows.append(
                    [
                        m,
                        cls,
                        _f(s["sensitivity"]),
                        f"{s['same']['n']} / {s['n']}",
                        _f(s["same"]["black_both"]),
                        _f(s["within_black_both"]["fraction"]),
                        _f(s["excluding_black_both"]["fraction"]),
                        _f(s["excluding_source_black_both"]["fraction"]),
                    ]
                )
    return {
        "summary": {
            "columns": [
                "method",
                "group",
                "sensitivity (benchmark)",
                "same / positions x seeds",
                "same: decoded patch black in both",
                "sensitivity within black-in-both",
                "sensitivity excluding black-in-both (diagnostic)",
                "excluding source cell black in both (diagnostic)",
            ],
            "rows": summary_rows,
        },
        "detail": {
            "columns": [
                "method",
                "category",
                "group",
                "positions x seeds",
                "sensitivity",
                "same (n)",
                "same: black-image token in both",
                "same: decoded patch black in both",
                "same: source cell black in both",
                "differs: decoded patch black in both",
                "sensitivity excluding black-in-both (diagnostic)",
                "n excluding",
            ],
            "rows": rows,
        },
    }
