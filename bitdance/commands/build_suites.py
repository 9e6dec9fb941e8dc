"""The template prompt suites, built from the training captioner itself.

    bitdance build-suites build     # writes bitdance/assets/eval/prompts_{default,
                                                      # paraphrase,emoji_monitor,shapes_monitor}.jsonl

"default" uses the canonical (training-style) phrasing, "paraphrase" another training caption template for
the same expectation, so both measure how well a model reproduces its *training captions*. The two
monitors hold emoji names / shapes scenes that neither suite holds, but their content is in the training
data too (the monitors are not held out). The free-form suite (``prompts_freeform.jsonl``) is written
without this module. It lives on the data side because it is the captioner's view of itself: the evaluation
package never imports it. Everything is seeded, so rebuilding gives identical files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from ..core.expectations import SCENE_CATEGORY, expect_from_scene
from ..core.vocabulary import COLOURS, FASHION_CLASSES
from ..data.caption_templates import emoji_caption, fashion_caption
from ..data.shapes import caption_scene, paraphrases, sample_scene

SUITE_SEED = "bitdance/eval-suite/v1"
EMOJI_MONITOR_SEED = "bitdance/emoji-val/v1"  # the seed strings keep their first names: same files
SHAPES_MONITOR_SEED = "bitdance/shapes-val/v1"
TEMPLATE_SUITES: tuple[str, ...] = ("default", "paraphrase", "emoji-monitor", "shapes-monitor")


def _reworded(canonical: str, draw) -> str:  # noqa: ANN001
    for _ in range(100):
        text = draw()
        if text != canonical:
            return text
    return canonical


def build_suites(
    emoji_names: list[str],
    seed: str = SUITE_SEED,
    n_emoji: int = 16,
    n_colour: int = 16,
    n_scenes: int = 12,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(default, paraphrase) suites as lists of JSON-ready dicts with identical expectations."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str, dict[str, Any]]] = []  # (category, canonical, paraphrase, expect)
    for name in rng.sample(sorted(emoji_names), n_emoji):
        rows.append(
            (
                "single_object",
                emoji_caption(name, None),
                _reworded(emoji_caption(name, None), lambda n=name: emoji_caption(n, rng)),
                {"domain": "emoji", "name": name},
            )
        )
    for cls in FASHION_CLASSES:
        canon = fashion_caption(cls, None, None)
        rows.append(
            (
                "single_object",
                canon,
                _reworded(canon, lambda c=cls: fashion_caption(c, None, rng)),
                {"domain": "fashion", "class": cls},
            )
        )
    for _ in range(n_colour):
        cls, colour = rng.choice(FASHION_CLASSES), rng.choice(list(COLOURS))
        canon = fashion_caption(cls, colour, None)
        rows.append(
            (
                "colour",
                canon,
                _reworded(canon, lambda c=cls, k=colour: fashion_caption(c, k, rng)),
                {"domain": "fashion", "class": cls, "colour": colour},
            )
        )
    for kind in ("single", "relation", "count"):
        for j in range(n_scenes):
            scene = sample_scene(rng, (kind,))
            if kind == "count":  # cover every count evenly
                while scene["count"] != 1 + j % 4:
                    scene = sample_scene(rng, (kind,))
            texts = paraphrases(scene, n=5, seed=rng.randrange(10**6))
            rows.append(
                (
                    SCENE_CATEGORY[kind],
                    texts[0],
                    rng.choice(texts[1:]) if len(texts) > 1 else texts[0],
                    expect_from_scene(scene),
                )
            )
    default = [
        {"id": f"p{i:03d}", "prompt": c, "category": cat, "expect": e}
        for i, (cat, c, _, e) in enumerate(rows)
    ]
    para = [
        {"id": f"p{i:03d}", "prompt": p, "category": cat, "expect": e}
        for i, (cat, _, p, e) in enumerate(rows)
    ]
    return default, para


def build_emoji_monitor(
    suites: tuple[list[dict[str, Any]], ...],
    emoji_names: list[str],
    n: int = 48,
    seed: str = EMOJI_MONITOR_SEED,
) -> list[dict[str, Any]]:
    """``n`` emoji prompts (canonical captions) whose names appear in none of ``suites``.

    The emoji are training emoji like the suites' own (the model is asked to draw named emoji it was
    shown): a training monitor apart from the template suites, not a held-out set.
    """
    used = {r["expect"]["name"] for rows in suites for r in rows if r["expect"]["domain"] == "emoji"}
    pool = sorted(set(emoji_names) - used)
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} emoji names are left outside the suites, {n} requested")
    names = random.Random(seed).sample(pool, n)
    return [
        {
            "id": f"v{i:03d}",
            "prompt": emoji_caption(name, None),
            "category": "single_object",
            "expect": {"domain": "emoji", "name": name},
        }
        for i, name in enumerate(names)
    ]


def build_shapes_monitor(
    suites: tuple[list[dict[str, Any]], ...],
    n_count: int = 24,
    n_relation: int = 24,
    seed: str = SHAPES_MONITOR_SEED,
) -> list[dict[str, Any]]:
    """Counting and relation prompts (canonical captions) whose expectations appear in none of ``suites``.

    Counts cycle through 1-4 evenly. Like ``emoji-monitor``, a training monitor for the shapes domain that
    keeps training decisions away from the reported suites.
    """
    rng = random.Random(seed)
    seen = {json.dumps(r["expect"], sort_keys=True) for rows in suites for r in rows}
    rows: list[dict[str, Any]] = []
    for kind, n in (("count", n_count), ("relation", n_relation)):
        for j in range(n):
            for _ in range(10_000):
                scene = sample_scene(rng, (kind,))
                key = json.dumps(expect_from_scene(scene), sort_keys=True)
                if key not in seen and (kind != "count" or scene["count"] == 1 + j % 4):
                    break
            else:
                raise ValueError(f"could not draw {n} new {kind} scenes outside the suites")
            seen.add(key)
            rows.append(
                {
                    "id": f"s{len(rows):03d}",
                    "prompt": caption_scene(scene),
                    "category": SCENE_CATEGORY[kind],
                    "expect": expect_from_scene(scene),
                }
            )
    return rows


def build_template_suites(emoji_names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every template suite by name (TEMPLATE_SUITES order) as lists of JSON-ready dicts."""
    suites = build_suites(emoji_names)
    emoji = build_emoji_monitor(suites, emoji_names=emoji_names)
    shapes = build_shapes_monitor(suites)
    return dict(zip(TEMPLATE_SUITES, (*suites, emoji, shapes)))


def write_suites(folder: str | Path, filenames: dict[str, str], emoji_names: list[str]) -> list[Path]:
    """Write every template suite as JSONL to ``folder / filenames[name]``."""
    from ..checkpoint import atomic_write_bytes

    paths = []
    for name, rows in build_template_suites(emoji_names).items():
        path = Path(folder) / filenames[name]
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    # the CLI borrows the shipped paths and the emoji classifier's names from the evaluation package
    from ..evaluation.classifier import assets_dir
    from ..evaluation.prompts import SUITES, default_emoji_names

    p = argparse.ArgumentParser(prog="bitdance build-suites")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the default, paraphrase, emoji-monitor and shapes-monitor suites")
    b.add_argument("--out", default=str(assets_dir()))
    args = p.parse_args(argv)
    for path in write_suites(args.out, SUITES, sorted(default_emoji_names())):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
