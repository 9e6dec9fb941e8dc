"""Declarative key maps from the official BitDance checkpoints to our component state dicts.

A key map is a table of `KeyRule(component, official pattern, our name, transform)`. Applying it is
strict: every official key must match exactly one rule, every target key of every component must be
produced exactly once, and shapes must equal the target module's. Problems are collected and raised
as one `CheckpointError` naming the keys; success yields a `CoverageReport` (N of N keys mapped,
per-prefix counts).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..checkpoint import CheckpointError
from ..generator.patches import order_for

Transform = Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor]


@dataclass(frozen=True)
class KeyRule:
    """One row of a key map: official keys matching `pattern` (full match) -> `target` in `component`.

    `target` is a `re` replacement template (`\\1`, `\\g<0>`); `transform` names an entry of TRANSFORMS.
    """

    component: str
    pattern: str
    target: str = r"\g<0>"
    transform: str = "identity"


def _generation_to_raster_rows(t: torch.Tensor, ctx: Mapping[str, Any]) -> torch.Tensor:
    # Official rows are indexed by generation (patch) order, ours by raster index.
    order = order_for(tuple(ctx["grid"]), int(ctx["parallel_num"]))
    if t.shape[0] != order.numel():
        raise CheckpointError(
            f"pos_for_diff has {t.shape[0]} rows but the {ctx['grid'][0]}x{ctx['grid'][1]} grid "
            f"has {order.numel()}"
        )
    return t[torch.argsort(order)]


def _raster_to_generation_rows(t: torch.Tensor, ctx: Mapping[str, Any]) -> torch.Tensor:
    return t[order_for(tuple(ctx["grid"]), int(ctx["parallel_num"]))]


TRANSFORMS: dict[str, Transform] = {
    "identity": lambda t, ctx: t,
    "generation_to_raster_rows": _generation_to_raster_rows,
}
# inverse of each transform (export back to the official layout)
INVERSE_TRANSFORMS: dict[str, Transform] = {
    "identity": lambda t, ctx: t,
    "generation_to_raster_rows": _raster_to_generation_rows,
}

# ----------------------------------------------------------------------------- the tables

# Tokenizer files (`ae.safetensors`, `ae_d16c32.safetensors`, `{"state_dict": ...}` .pt): identity.
TOKENIZER_RULES: tuple[KeyRule, ...] = (KeyRule("tokenizer", r"(encoder|decoder)\..+"),)

# ImageNet class-conditional `.pt` ('ema' / 'model' dicts), 1x and next-patch models.
IMAGENET_RULES: tuple[KeyRule, ...] = (
    KeyRule("tokenizer", r"vae\.((?:encoder|decoder)\..+)", r"\1"),
    KeyRule("generator", r"pos_for_diff\.weight", transform="generation_to_raster_rows"),
    KeyRule("generator", r"cls_embedding\.weight|query_token|emb_norm\.weight|norm\.weight"),
    KeyRule("generator", r"proj_in\.w[12]\.(weight|bias)"),
    KeyRule("generator", r"layers\.\d+\.(attention\.(wqkv|wo)|feed_forward\.w[12])\.weight"),
    KeyRule("generator", r"layers\.\d+\.(attention_norm|ffn_norm)\.weight"),
    KeyRule("generator", r"head\.net\..+"),
)

# T2I folder: `vision_head.safetensors` (DiffHead, keys `net.*`) and `projector.safetensors`.
T2I_HEAD_RULES: tuple[KeyRule, ...] = (KeyRule("head", r"net\..+"),)
PROJECTOR_RULES: tuple[KeyRule, ...] = (KeyRule("projector", r"fc[12]\.(weight|bias)"),)


# ----------------------------------------------------------------------------- applying a map


@dataclass
class CoverageReport:
    """What a key map did: counts per component and per official key prefix."""

    source: str
    total: int = 0
    mapped: int = 0
    per_component: Counter = field(default_factory=Counter)
    per_prefix: Counter = field(default_factory=Counter)
    transformed: list[str] = field(default_factory=list)
    ignored_entries: list[str] = field(default_factory=list)  # top-level entries skipped (optimizer, ...)

    def lines(self) -> list[str]:
        out = [f"{self.source}: mapped {self.mapped} of {self.total} official keys"]
        out += [f"  -> {c}: {n} tensors" for c, n in sorted(self.per_component.items())]
        out += [f"  prefix {p}: {n}" for p, n in sorted(self.per_prefix.items())]
        if self.transformed:
            out.append(f"  transformed: {', '.join(self.transformed)}")
        if self.ignored_entries:
            out.append(f"  ignored checkpoint entries: {', '.join(self.ignored_entries)}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _prefix(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] in ("vae", "head") and len(parts) > 2 else parts[0]


def _list(keys: list[str], limit: int = 10) -> str:
    return f"{keys[:limit]}{' ...' if len(keys) > limit else ''}"


def apply_key_map(
    state: Mapping[str, torch.Tensor],
    rules: tuple[KeyRule, ...],
    targets: Mapping[str, Mapping[str, torch.Tensor]],
    context: Mapping[str, Any] | None = None,
    source: str = "checkpoint",
) -> tuple[dict[str, dict[str, torch.Tensor]], CoverageReport]:
    """Map an official state dict onto the components' state dicts (`targets`: component -> state dict).

    Returns (component -> converted state dict, report). Raises CheckpointError naming every unmapped,
    duplicated, missing or mis-shaped key.
    """
    ctx = dict(context or {})
    compiled = [(r, re.compile(r.pattern)) for r in rules]
    out: dict[str, dict[str, torch.Tensor]] = {c: {} for c in targets}
    report = CoverageReport(source=source, total=len(state))
    unmapped, duplicates, shapes, unknown = [], [], [], []
    misshaped: set[tuple[str, str]] = set()
    for key in sorted(state):
        rule, match = next(((r, m) for r, rx in compiled if (m := rx.fullmatch(key))), (None, None))
        if rule is None or match is None:
            unmapped.append(key)
            continue
        if rule.component not in targets:
            unknown.append(f"{key} -> component {rule.component!r}")
            continue
        name = match.expand(rule.target)
        own = targets[rule.component]
        if name not in own:
            unknown.append(f"{key} -> {rule.component}.{name}")
            continue
        if name in out[rule.component]:
            duplicates.append(f"{rule.component}.{name}")
            continue
        expected, got = tuple(own[name].shape), tuple(state[key].shape)
        try:
            tensor = TRANSFORMS[rule.transform](state[key], ctx)
        except (CheckpointError, ValueError, IndexError):
            tensor = None
        if tensor is None or tuple(tensor.shape) != expected:
            shapes.append(f"{key}: expected {expected}, got {got}")
            misshaped.add((rule.component, name))
            continue
        out[rule.component][name] = tensor
        report.mapped += 1
        report.per_component[rule.component] += 1
        report.per_prefix[_prefix(key)] += 1
        if rule.transform != "identity":
            report.transformed.append(f"{key} ({rule.transform})")
    missing = [
        f"{c}.{k}"
        for c, own in targets.items()
        for k in sorted(own)
        if k not in out[c] and (c, k) not in misshaped
    ]
    problems = []
    if unmapped:
        problems.append(f"unexpected keys (no rule maps them) {_list(unmapped)}")
    if unknown:
        problems.append(f"unexpected keys (the model has no such tensor) {_list(unknown)}")
    if missing:
        problems.append(f"missing keys {_list(missing)}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:10]))
    if duplicates:
        problems.append(f"keys produced twice {_list(duplicates)}")
    if problems:
        raise CheckpointError(f"{source} does not match the model: " + " | ".join(problems))
    return out, report


def export_key_map(
    components: Mapping[str, Mapping[str, torch.Tensor]],
    rules: tuple[KeyRule, ...],
    official_keys: list[str],
    context: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Inverse of `apply_key_map` for the given official key names (writes official-format files)."""
    ctx = dict(context or {})
    compiled = [(r, re.compile(r.pattern)) for r in rules]
    out = {}
    for key in official_keys:
        rule, match = next(((r, m) for r, rx in compiled if (m := rx.fullmatch(key))), (None, None))
        if rule is None or match is None:
            raise CheckpointError(f"no rule for official key {key!r}")
        out[key] = INVERSE_TRANSFORMS[rule.transform](
            components[rule.component][match.expand(rule.target)], ctx
        )
    return out


def imagenet_official_keys(
    generator_state: Mapping[str, Any], tokenizer_state: Mapping[str, Any]
) -> list[str]:
    """Official key names of an ImageNet `.pt` holding these components (for `export_key_map`)."""
    return sorted(generator_state) + sorted(f"vae.{k}" for k in tokenizer_state)
