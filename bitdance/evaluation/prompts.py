"""Prompt suites for the adherence evaluation: JSONL, one prompt per line, strictly validated.

    {"prompt": "a red circle left of a blue square", "category": "position",
     "expect": {"domain": "shapes", "objects": [{"shape": "circle", "colour": "red"},
                {"shape": "square", "colour": "blue"}], "relation": "left of"}}
    {"prompt": "a red sneaker", "category": "colour", "expect": {"domain": "fashion", "class": "sneaker",
     "colour": "red"}}
    {"prompt": "three yellow squares", "category": "counting", "expect": {"domain": "shapes",
     "objects": [{"shape": "square", "colour": "yellow", "count": 3}]}}
    {"prompt": "a maple leaf", "category": "single_object",
     "expect": {"domain": "emoji", "name": "maple leaf"}}

Optional top-level "id" and "split" ("dev" | "test": the free-form suite's fixed split). Every error names
the file, line number and field, and lists what is allowed;
unknown colours, shapes, classes, emoji names or keys are errors (never a silent zero).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.vocabulary import COLOURS, FASHION_CLASSES, POSITIONS, RELATIONS, SHAPES, SIZES

CATEGORIES: tuple[str, ...] = (
    "single_object",
    "two_object",
    "counting",
    "colour",
    "position",
    "absolute_position",
    "size",
    "colour_attribution",
)
DOMAINS: tuple[str, ...] = ("shapes", "fashion", "emoji")
MAX_COUNT = 4
_TOP_KEYS = {"prompt", "category", "expect", "id", "split"}
_DOMAIN_KEYS = {
    "shapes": ({"domain", "objects"}, {"relation"}),
    "fashion": ({"domain", "class"}, {"colour"}),
    "emoji": ({"domain", "name"}, set()),
}
_OBJECT_KEYS = ({"shape"}, {"colour", "size", "position", "count"})
SUITES: dict[str, str] = {
    # built from the training caption templates (bitdance build-suites build): they
    # measure how well a model reproduces its training captions
    "default": "prompts_default.jsonl",
    "paraphrase": "prompts_paraphrase.jsonl",
    # emoji / counting and relation scenes outside the two suites above, but in the training data: training
    # monitors, not held out
    "emoji-monitor": "prompts_emoji_monitor.jsonl",
    "shapes-monitor": "prompts_shapes_monitor.jsonl",
    # written in people's words without the captioner, split into dev and test (python -m
    # bitdance.evaluation.freeform build)
    "freeform": "prompts_freeform.jsonl",
}
SPLITS: tuple[str, ...] = ("dev", "test")


@dataclass
class PromptSpec:
    """One validated suite entry; ``expect`` keeps the JSON structure (see module docstring)."""

    prompt: str
    category: str
    expect: dict[str, Any]
    line: int = 0
    id: str | None = None
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt, "category": self.category, "expect": self.expect}
        if self.id is not None:
            out["id"] = self.id
        if self.split is not None:
            out["split"] = self.split
        return out


class _Where:
    def __init__(self, source: str, line: int) -> None:
        self.source, self.line = source, line

    def fail(self, field: str, msg: str) -> ValueError:
        return ValueError(f"{self.source}:{self.line}: field {field!r}: {msg}")


def _choice(where: _Where, field: str, value: Any, allowed: Iterable[str], what: str) -> str:
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        shown = (
            ", ".join(allowed) if len(allowed) <= 20 else ", ".join(allowed[:20]) + f", ... ({len(allowed)})"
        )
        raise where.fail(field, f"unknown {what} {value!r}; allowed: {shown}")
    return value


def _keys(where: _Where, field: str, obj: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise where.fail(field, f"must be a JSON object, got {type(obj).__name__}")
    missing = sorted(required - set(obj))
    if missing:
        raise where.fail(f"{field}.{missing[0]}" if field else missing[0], "is required")
    unknown = sorted(set(obj) - required - optional)
    if unknown:
        hint = " (spell it 'colour')" if "color" in unknown else ""
        raise where.fail(
            f"{field}.{unknown[0]}" if field else unknown[0],
            f"unknown key{hint}; allowed: {', '.join(sorted(required | optional))}",
        )
    return obj


def _check_shapes(where: _Where, expect: dict[str, Any]) -> None:
    objects = expect["objects"]
    if not isinstance(objects, list) or not 1 <= len(objects) <= MAX_COUNT:
        raise where.fail("expect.objects", f"must be a list of 1..{MAX_COUNT} objects")
    for i, obj in enumerate(objects):
        f = f"expect.objects[{i}]"
        _keys(where, f, obj, *_OBJECT_KEYS)
        _choice(where, f + ".shape", obj["shape"], SHAPES, "shape")
        if "colour" in obj:
            _choice(where, f + ".colour", obj["colour"], COLOURS, "colour")
        if "size" in obj:
            _choice(where, f + ".size", obj["size"], SIZES, "size")
        if "position" in obj:
            _choice(where, f + ".position", obj["position"], POSITIONS, "position")
        if "count" in obj:
            c = obj["count"]
            if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_COUNT:
                raise where.fail(f + ".count", f"must be an integer in 1..{MAX_COUNT}, got {c!r}")
    if "relation" in expect:
        _choice(where, "expect.relation", expect["relation"], RELATIONS, "relation")
        if len(objects) != 2:
            raise where.fail("expect.objects", f"a relation needs exactly 2 objects, got {len(objects)}")
        if any("count" in o for o in objects):
            raise where.fail("expect.objects", "objects of a relation cannot have a count")


def parse_line(
    text: str, line: int, source: str = "<prompts>", emoji_names: Callable[[], set[str]] | None = None
) -> PromptSpec:
    """Validate one JSONL line -> PromptSpec (ValueError naming source:line and the field)."""
    where = _Where(source, line)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}:{line}: not valid JSON ({e.msg} at column {e.colno})") from None
    _keys(where, "", raw, {"prompt", "category", "expect"}, _TOP_KEYS - {"prompt", "category", "expect"})
    prompt = raw["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise where.fail("prompt", "must be a non-empty string")
    category = _choice(where, "category", raw["category"], CATEGORIES, "category")
    if "id" in raw and not isinstance(raw["id"], str):
        raise where.fail("id", "must be a string")
    if "split" in raw:
        _choice(where, "split", raw["split"], SPLITS, "split")
    expect = raw["expect"]
    if not isinstance(expect, dict):
        raise where.fail("expect", f"must be a JSON object, got {type(expect).__name__}")
    domain = _choice(where, "expect.domain", expect.get("domain"), DOMAINS, "domain")
    _keys(where, "expect", expect, *_DOMAIN_KEYS[domain])
    if domain == "shapes":
        _check_shapes(where, expect)
    elif domain == "fashion":
        _choice(where, "expect.class", expect["class"], FASHION_CLASSES, "fashion class")
        if "colour" in expect:
            _choice(where, "expect.colour", expect["colour"], COLOURS, "colour")
    else:
        name = expect["name"]
        names = emoji_names() if emoji_names is not None else None
        if not isinstance(name, str) or (names is not None and name not in names):
            raise where.fail(
                "expect.name",
                f"unknown emoji name {name!r}; use the lower-cased Unicode name "
                "(e.g. 'maple leaf'); see the emoji classifier's class_names",
            )
    return PromptSpec(prompt, category, expect, line, raw.get("id"), raw.get("split"))


def default_emoji_names() -> set[str]:
    """Emoji names known to the shipped emoji classifier (read from its JSON, weights not needed)."""
    from .classifier import classifier_paths

    _, cfg = classifier_paths("emoji")
    if not cfg.is_file():
        raise FileNotFoundError(
            f"{cfg} is missing: cannot validate emoji names; train it with "
            "bitdance train-classifier --task emoji"
        )
    return set(json.loads(cfg.read_text())["class_names"])


def parse_suite(
    lines: Iterable[str],
    source: str = "<prompts>",
    emoji_names: Callable[[], set[str]] | None = default_emoji_names,
) -> list[PromptSpec]:
    """Parse JSONL text lines (blank lines skipped); at least one prompt."""
    cache: dict[str, set[str]] = {}

    def names() -> set[str]:
        if "n" not in cache:
            cache["n"] = emoji_names() if emoji_names is not None else set()
        return cache["n"]

    specs = [
        parse_line(t, i, source, names if emoji_names is not None else None)
        for i, t in enumerate(lines, start=1)
        if t.strip()
    ]
    if not specs:
        raise ValueError(f"{source}: no prompts found (expected JSONL, one prompt object per line)")
    return specs


def suite_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped suite name (see SUITES) or a JSONL file path."""
    if str(name_or_path) in SUITES:
        from .classifier import assets_dir

        return assets_dir() / SUITES[str(name_or_path)]
    p = Path(name_or_path)
    if not p.is_file():
        raise FileNotFoundError(f"prompt file {p} not found; shipped suites: {', '.join(SUITES)}")
    return p


def load_suite(
    name_or_path: str | os.PathLike,
    emoji_names: Callable[[], set[str]] | None = default_emoji_names,
    split: str = "all",
) -> list[PromptSpec]:
    """Load and validate a suite file (see the module docstring for the format); ``split`` 'dev' / 'test'
    keeps the prompts of that split (the suite must carry splits), 'all' keeps every prompt."""
    if split not in ("all", *SPLITS):
        raise ValueError(f"unknown split {split!r}; allowed: all, {', '.join(SPLITS)}")
    path = suite_path(name_or_path)
    specs = parse_suite(path.read_text(encoding="utf-8").splitlines(), str(path), emoji_names)
    if split == "all":
        return specs
    if any(s.split is None for s in specs):
        raise ValueError(
            f"{path}: --split {split} needs a suite whose every line has a 'split' (e.g. freeform)"
        )
    return [s for s in specs if s.split == split]
