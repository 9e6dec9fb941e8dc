"""The rule that picks the default edit method of any-order models from the edit benchmark's *dev* split.

Written and committed before any v2 measurement: the default is the method with the highest dev
context-dependent accuracy (pooled over the categories' images); a method whose 95 % interval overlaps the
best one's counts as tied with it, and a tie goes to the method that sees more kept tokens
(``TIE_ORDER``: kept_first > joint > substitute). The prompt-only control is not a method and never
competes. The chosen method is ``sampling/inpaint.py``'s ``ANY_ORDER_EDIT_METHOD``; a test re-applies this
rule to the committed dev report (``docs/results/edit_bench_dev.json``) and checks the two agree.
"""

from __future__ import annotations

from typing import Any

from .intervals import intervals_overlap

TIE_ORDER = ("kept_first", "joint", "substitute")  # most kept tokens seen first


def choose_default_method(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics: the dev report's per-method metrics (``context_dependent`` accuracy and ci95) ->
    {"method", "best", "tied", "rule"}. Needs at least one method of TIE_ORDER."""
    methods = [m for m in TIE_ORDER if m in metrics]
    if not methods:
        raise ValueError(f"no edit method in the metrics; need one of {list(TIE_ORDER)}")
    acc = {m: metrics[m]["context_dependent"]["accuracy"] for m in methods}
    ci = {m: metrics[m]["context_dependent"]["ci95"] for m in methods}
    best = max(methods, key=lambda m: (acc[m], -TIE_ORDER.index(m)))
    tied = [m for m in methods if intervals_overlap(ci[m], ci[best])]
    return {
        "method": tied[0],  # methods (hence tied) are in TIE_ORDER
        "best": best,
        "tied": tied,
        "rule": "highest dev context-dependent accuracy; 95% intervals overlapping the best count as a tie; "
        "ties go to the method that sees more kept tokens (kept_first > joint > substitute)",
    }
