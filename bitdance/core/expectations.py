"""The adherence expectation of a shapes scene (the JSON structure of ``bitdance.evaluation.prompts``).

Neutral ground: the template suites (``bitdance.commands.build_suites``) and the evaluation's ground-truth
sets both turn scenes into expectations, and neither side needs the other's code for it.
"""

from __future__ import annotations

from typing import Any

SCENE_CATEGORY: dict[str, str] = {"single": "absolute_position", "relation": "position", "count": "counting"}


def expect_from_scene(scene: dict[str, Any]) -> dict[str, Any]:
    """The adherence expectation of a shapes scene (every attribute its canonical caption states)."""
    kind, objs = scene["kind"], scene["objects"]
    if kind == "single":
        o = objs[0]
        return {
            "domain": "shapes",
            "objects": [
                {"shape": o["shape"], "colour": o["colour"], "size": o["size"], "position": o["position"]}
            ],
        }
    if kind == "relation":
        return {
            "domain": "shapes",
            "objects": [{"shape": o["shape"], "colour": o["colour"]} for o in objs],
            "relation": scene["relation"],
        }
    if kind == "count":
        return {
            "domain": "shapes",
            "objects": [{"shape": objs[0]["shape"], "colour": objs[0]["colour"], "count": scene["count"]}],
        }
    raise ValueError(f"unknown scene kind {kind!r}")
