"""Measure the adherence scorers on ground-truth images (rendered scenes, Fashion-MNIST test items, emoji).

    bitdance suites ground-truth --n 300 --size 32
    bitdance suites ground-truth --n 300 --tokenizer bitdance-mini   # + round trip

``--tokenizer`` also scores the ground-truth images after an encode -> decode round trip through a model's
binary tokenizer: the adherence a perfect generator on that tokenizer could reach (its ceiling).
The template suites are built by ``bitdance build-suites build`` (the evaluation package
imports no captioner); the free-form suite by ``bitdance build-freeform build``.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from ..core.expectations import SCENE_CATEGORY, expect_from_scene
from ..data.shapes import render_scene, sample_scene


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
