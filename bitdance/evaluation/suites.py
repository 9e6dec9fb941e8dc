"""Build the shipped prompt suites and measure the adherence scorers on ground-truth images.

    python -m bitdance.evaluation.suites build              # writes bitdance/assets/eval/prompts_*.jsonl
    python -m bitdance.evaluation.suites ground-truth --n 300 --size 32
    python -m bitdance.evaluation.suites ground-truth --n 300 --tokenizer bitdance-mini   # + round trip

``--tokenizer`` also scores the ground-truth images after an encode -> decode round trip through a model's
binary tokenizer: the adherence a perfect generator on that tokenizer could reach (its ceiling).

Both suites hold the same expectations in the same order; "default" uses the canonical (training-style)
phrasing, "paraphrase" a reworded prompt drawn from the dataset caption templates (synonyms, sentence
structure). Everything is seeded, so rebuilding gives identical files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from ..data import COLOURS, FASHION_CLASSES, caption_scene, paraphrases, render_scene, sample_scene
from ..data.caption_templates import emoji_caption, fashion_caption
from .classifier import assets_dir
from .prompts import SUITES

SUITE_SEED = "bitdance/eval-suite/v1"
EMOJI_VAL_SEED = "bitdance/emoji-val/v1"
SHAPES_VAL_SEED = "bitdance/shapes-val/v1"
SCENE_CATEGORY = {"single": "absolute_position", "relation": "position", "count": "counting"}


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


def _reworded(canonical: str, draw) -> str:  # noqa: ANN001
    for _ in range(100):
        text = draw()
        if text != canonical:
            return text
    return canonical


def build_suites(
    seed: str = SUITE_SEED,
    n_emoji: int = 16,
    n_colour: int = 16,
    n_scenes: int = 12,
    emoji_names: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(default, paraphrase) suites as lists of JSON-ready dicts with identical expectations."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str, dict[str, Any]]] = []  # (category, canonical, paraphrase, expect)
    if emoji_names is None:
        from .prompts import default_emoji_names

        emoji_names = sorted(default_emoji_names())
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


def build_emoji_val(
    suites: tuple[list[dict[str, Any]], ...],
    n: int = 48,
    seed: str = EMOJI_VAL_SEED,
    emoji_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``n`` emoji prompts (canonical captions) whose names appear in none of ``suites``.

    The emoji are training emoji like the suites' own (the model is asked to draw named emoji it was
    shown); keeping them apart lets training decisions be checked without looking at the reported suites.
    """
    if emoji_names is None:
        from .prompts import default_emoji_names

        emoji_names = sorted(default_emoji_names())
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


def build_shapes_val(
    suites: tuple[list[dict[str, Any]], ...],
    n_count: int = 24,
    n_relation: int = 24,
    seed: str = SHAPES_VAL_SEED,
) -> list[dict[str, Any]]:
    """Counting and relation prompts (canonical captions) whose expectations appear in none of ``suites``.

    Counts cycle through 1-4 evenly. Like ``emoji-val``, a training monitor for the shapes domain that
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


def write_suites(folder: str | Path | None = None, **kw: Any) -> list[Path]:
    from ..checkpoint import atomic_write_bytes

    folder = Path(folder) if folder is not None else assets_dir()
    paths = []
    suites = build_suites(**kw)
    val = build_emoji_val(suites, emoji_names=kw.get("emoji_names"))
    shapes_val = build_shapes_val(suites)
    for name, rows in zip(("default", "paraphrase", "emoji-val", "shapes-val"), (*suites, val, shapes_val)):
        path = folder / SUITES[name]
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
        paths.append(path)
    return paths


def ground_truth_set(
    n: int = 100, size: int = 32, seed: int = 0, domains: tuple[str, ...] = ("shapes", "fashion", "emoji")
) -> tuple[list[Any], list[dict[str, Any]], list[str]]:
    """n ground-truth images per domain: (images, expectations, categories).

    shapes: fresh scenes (all kinds) rendered at ``size``; fashion: tinted Fashion-MNIST *test* items
    (held out from the classifier's training); emoji: centred renders on white (the dataset's images)."""
    from ..data import build_dataset

    images: list[Any] = []
    expects: list[dict[str, Any]] = []
    cats: list[str] = []
    rng = random.Random(f"bitdance/eval-gt/{seed}")
    if "shapes" in domains:
        for _ in range(n):
            scene = sample_scene(rng)
            images.append(render_scene(scene, size))
            expects.append(expect_from_scene(scene))
            cats.append(SCENE_CATEGORY[scene["kind"]])
    if "fashion" in domains:
        ds = build_dataset("fashion_mnist", "test", size, tint=True, seed=seed)
        for i in rng.sample(range(len(ds)), n):
            it = ds[i]
            e = {"domain": "fashion", "class": it["meta"]["class_name"]}
            if it["meta"]["colour"]:
                e["colour"] = it["meta"]["colour"]
            images.append(it["image"])
            expects.append(e)
            cats.append("colour" if "colour" in e else "single_object")
    if "emoji" in domains:
        ds = build_dataset("emoji", "test", size, seed=seed)
        for i in rng.sample(range(len(ds)), min(n, len(ds))):
            it = ds[i]
            images.append(it["image"])
            expects.append({"domain": "emoji", "name": it["meta"]["name"]})
            cats.append("single_object")
    return images, expects, cats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bitdance suites")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the default, paraphrase, emoji-val and shapes-val suites")
    b.add_argument("--out", default=str(assets_dir()))
    g = sub.add_parser(
        "ground-truth", help="scorer accuracy on ground-truth images (and on shuffled prompts)"
    )
    g.add_argument("--n", type=int, default=300, help="images per domain")
    g.add_argument("--size", type=int, default=32)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--tokenizer", help="also score tokenizer round trips: a pipeline/tokenizer folder or model name"
    )
    g.add_argument("--threads", type=int, help="torch threads")
    g.add_argument("--domains", default="shapes,fashion,emoji", help="comma list of domains to score")
    args = p.parse_args(argv)
    if args.cmd == "build":
        for path in write_suites(args.out):
            print(path)
        return 0
    import torch

    from .adherence import AdherenceScorer, shuffled_expectations

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    scorer = AdherenceScorer()
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    bad = [d for d in domains if d not in ("shapes", "fashion", "emoji")]
    if bad or not domains:
        p.error(f"--domains: unknown {bad}; allowed: shapes, fashion, emoji")
    for domain in domains:
        images, expects, cats = ground_truth_set(args.n, args.size, args.seed, (domain,))
        right = sum(ok for ok, _ in scorer.score(images, expects)) / len(images)
        shuffled = sum(ok for ok, _ in scorer.score(images, shuffled_expectations(expects, args.seed))) / len(
            images
        )
        line = (
            f"{domain:8s} ground truth {right:.4f}   shuffled prompts {shuffled:.4f}   (n={len(images)}, "
            f"{args.size} px)"
        )
        if tokenizer is not None:
            scored = scorer.score(list(round_trip(tokenizer, images)), expects)
            per_cat: dict[str, list[bool]] = {}
            for (ok, _), cat in zip(scored, cats):
                per_cat.setdefault(cat, []).append(ok)
            detail = ", ".join(f"{c} {sum(v) / len(v):.4f}" for c, v in sorted(per_cat.items()))
            total = sum(ok for ok, _ in scored) / len(scored)
            line += f"\n{'':8s} tokenizer round trip {total:.4f} ({detail})"
        print(line, flush=True)
    return 0


def load_tokenizer(name: str):  # noqa: ANN201
    """The binary tokenizer of a pipeline folder / shipped model name, or a bare tokenizer folder."""
    from ..checkpoint import from_pretrained
    from ..pipeline import BitDancePipeline, resolve_model

    path = resolve_model(name)
    if (path / "config.json").is_file():
        return from_pretrained(path)
    return BitDancePipeline.from_pretrained(path).tokenizer.eval()


def round_trip(tokenizer: Any, images: list[Any], batch_size: int = 128) -> Any:
    """Encode -> decode each image through the binary tokenizer: (N, 3, S, S) in [-1, 1]."""
    import torch

    from ..data import pil_to_tensor

    x = torch.stack([im if torch.is_tensor(im) else pil_to_tensor(im) for im in images])
    with torch.no_grad():
        out = [
            tokenizer.decode(tokenizer.encode(x[i : i + batch_size])) for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out).clamp(-1, 1)


if __name__ == "__main__":
    raise SystemExit(main())
