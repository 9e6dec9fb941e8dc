"""Each adherence scorer's accuracy on data its classifier never saw (and, for contrast, on what it saw).

    bitdance scorer-heldout --out runs/eval/scorers --results docs/results/scorer_heldout.json

- emoji (trained on every Noto emoji rendered at 32 px, glyph ~0.87 of the canvas, centred or shifted by up
  to 0.08 of the side, white or black background, pixel noise): the same emoji under transformations it was
  not trained with: the glyph at 0.6x and 1.25x its training size, offsets of 0.12-0.18 of the side, grey and
  light-blue backgrounds, and a second font (Debian ``fonts-symbola``: monochrome outlines) where installed;
- fashion (trained on the 60k Fashion-MNIST *train* items, random tints, shifts of 2 px): the 10k *test*
  items, tinted as the dataset tints them (class and colour namer), and, for contrast, 10k train items;
- shapes (analytic detectors, no training; thresholds set on rendered scenes): fresh procedural scenes.

Every accuracy comes with n and a 95 % bootstrap interval over items (``intervals.bootstrap_mean``).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

SYMBOLA_CANDIDATES = (
    "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
    "/usr/share/fonts/truetype/ancient-scripts/Symbola.ttf",
)
TRAIN_GLYPH_FRACTION = 109 / 125  # the training renders: 109 px glyph box + 16 px margin
RENDER = 128  # working canvas before the LANCZOS downscale to the classifier's 32 px
# id -> (label, glyph scale vs training, offset range as a fraction of the side, background RGB, font)
EMOJI_CONDITIONS: dict[str, tuple[str, float, tuple[float, float], tuple[int, int, int], str]] = {
    "train_render": (
        "seen: the training render, centred on white",
        1.0,
        (0.0, 0.0),
        (255, 255, 255),
        "train",
    ),
    "rerender": (
        "re-rendered: ink box centred, training size, white",
        1.0,
        (0.0, 0.0),
        (255, 255, 255),
        "noto",
    ),
    "scale_0_6": ("glyph 0.6x, centred, white", 0.6, (0.0, 0.0), (255, 255, 255), "noto"),
    "scale_1_25": ("glyph 1.25x (cropped), white", 1.25, (0.0, 0.0), (255, 255, 255), "noto"),
    "offset_0_15": ("offset 0.12-0.18 of the side, white", 1.0, (0.12, 0.18), (255, 255, 255), "noto"),
    "grey_background": ("grey background (128)", 1.0, (0.0, 0.0), (128, 128, 128), "noto"),
    "blue_background": ("light-blue background", 1.0, (0.0, 0.0), (170, 200, 255), "noto"),
    "combined": ("glyph 0.75x + offset 0.1 + grey background", 0.75, (0.1, 0.1), (128, 128, 128), "noto"),
    "symbola": ("second font: Symbola (monochrome), white", 1.0, (0.0, 0.0), (255, 255, 255), "symbola"),
}


def find_symbola() -> Path | None:
    return next((Path(p) for p in SYMBOLA_CANDIDATES if Path(p).is_file()), None)


def _glyph(ch: str, font: ImageFont.FreeTypeFont, colour: bool) -> Image.Image | None:
    """The glyph cropped to its ink, RGBA (None when the font draws nothing for ``ch``)."""
    x0, y0, x1, y1 = font.getbbox(ch)
    if x1 <= x0 or y1 <= y0:
        return None
    im = Image.new("RGBA", (x1 - x0 + 4, y1 - y0 + 4), (0, 0, 0, 0))
    kw = {"embedded_color": True} if colour else {"fill": (0, 0, 0, 255)}
    ImageDraw.Draw(im).text((2 - x0, 2 - y0), ch, font=font, **kw)
    box = im.getbbox()
    return im.crop(box) if box else None


def compose(
    glyph: Image.Image,
    scale: float,
    offset: tuple[float, float],
    background: tuple[int, int, int],
    size: int = 32,
) -> Image.Image:
    """Paste a glyph (longest side = scale x the training fraction of the canvas) at ``offset`` (fractions
    of the side from the centre) on ``background``; LANCZOS down to ``size``."""
    side = max(1, round(RENDER * TRAIN_GLYPH_FRACTION * scale))
    w, h = glyph.size
    k = side / max(w, h)
    g = glyph.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (RENDER, RENDER), background)
    x = round((RENDER - g.size[0]) / 2 + offset[0] * RENDER)
    y = round((RENDER - g.size[1]) / 2 + offset[1] * RENDER)
    canvas.paste(g, (x, y), g)
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def emoji_heldout(model: Any, seed: int = 0, limit: int | None = None) -> dict[str, dict[str, Any]]:
    """Accuracy of the emoji classifier per condition (EMOJI_CONDITIONS), every emoji once each."""
    from ..data.emoji import BITMAP_SIZE, find_emoji_font, list_emoji, read_cmap_codepoints, render_emoji
    from ..data.items import pil_to_tensor

    names = model.config.class_names
    index = {n: i for i, n in enumerate(names)}
    emoji = [(ch, n) for ch, n in list_emoji() if n in index][:limit]
    fonts = {"noto": (ImageFont.truetype(str(find_emoji_font()), size=BITMAP_SIZE), True)}
    symbola = find_symbola()
    covered: dict[str, set[int] | None] = {"noto": None, "train": None}
    if symbola is not None:
        fonts["symbola"] = (ImageFont.truetype(str(symbola), size=BITMAP_SIZE), False)
        covered["symbola"] = set(read_cmap_codepoints(symbola))  # else it draws a box for a missing glyph
    out: dict[str, dict[str, Any]] = {}
    for cond, (label, scale, (lo, hi), bg, font_name) in EMOJI_CONDITIONS.items():
        if font_name not in (*fonts, "train"):
            out[cond] = {"label": label, "skipped": "font not installed (apt-get install fonts-symbola)"}
            continue
        font, colour = fonts.get(font_name, fonts["noto"])
        rng = random.Random(f"bitdance/heldout/{cond}/{seed}")
        xs, ys = [], []
        for ch, name in emoji:
            if font_name == "train":
                xs.append(pil_to_tensor(render_emoji(ch, 32, "white")))
                ys.append(index[name])
                continue
            if covered[font_name] is not None and ord(ch) not in covered[font_name]:
                continue  # Symbola lacks many newer emoji: scored only where it has a glyph
            g = _glyph(ch, font, colour)
            if g is None:
                continue
            off = (0.0, 0.0)
            if hi > 0:
                off = tuple(rng.choice((-1, 1)) * rng.uniform(lo, hi) for _ in range(2))
            xs.append(pil_to_tensor(compose(g, scale, off, bg)))
            ys.append(index[name])
        with torch.no_grad():
            pred = model.predict(torch.stack(xs)).argmax(-1)
        ok = (pred == torch.tensor(ys)).tolist()
        out[cond] = {"label": label, **_acc(ok)}
    return out


def _acc(ok: list[bool]) -> dict[str, Any]:
    from .intervals import bootstrap_mean

    return {"accuracy": float(np.mean(ok)), "ci95": list(bootstrap_mean(ok)), "n": len(ok)}


def fashion_heldout(model: Any, seed: int = 0, n: int | None = None) -> dict[str, dict[str, Any]]:
    """Class accuracy on tinted test items (never trained on) and train items (trained on); colour namer
    accuracy on the tinted test items."""
    from ..data import build_dataset
    from .detectors import foreground_colour

    out: dict[str, dict[str, Any]] = {}
    names = model.config.class_names
    for split, key, label in (
        ("test", "test_tinted", "unseen: test split, tinted"),
        ("train", "train_tinted", "seen: train split, tinted"),
    ):
        ds = build_dataset("fashion_mnist", split, 32, tint=True, seed=seed)
        idx = list(range(len(ds)))
        if n is not None or split == "train":
            idx = random.Random(f"bitdance/heldout/fashion/{seed}").sample(idx, min(n or 10_000, len(ds)))
        items = [ds[i] for i in idx]
        with torch.no_grad():
            pred = model.predict(torch.stack([it["image"] for it in items])).argmax(-1).tolist()
        ok = [names[p] == it["meta"]["class_name"] for p, it in zip(pred, items)]
        out[key] = {"label": label, **_acc(ok)}
        if split == "test":
            tinted = [it for it in items if it["meta"]["colour"]]
            cok = [foreground_colour(it["image"]) == it["meta"]["colour"] for it in tinted]
            out["colour_namer_test"] = {"label": "colour namer: test split, tinted items", **_acc(cok)}
    return out


def shapes_heldout(n: int = 300, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Detector accuracy per scene kind on fresh procedural scenes (32 px)."""
    from .adherence import AdherenceScorer
    from .suites import ground_truth_set

    images, expects, cats = ground_truth_set(n, 32, seed + 1000, ("shapes",))
    scored = AdherenceScorer().score(images, expects)
    out: dict[str, dict[str, Any]] = {}
    for cat in sorted(set(cats)):
        ok = [s for (s, _), c in zip(scored, cats) if c == cat]
        out[cat] = {"label": f"fresh scenes: {cat}", **_acc(ok)}
    return out


def _rows(res: dict[str, dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for v in res.values():
        if "skipped" in v:
            rows.append([v["label"], "-", v["skipped"], 0])
        else:
            rows.append(
                [v["label"], f"{v['accuracy']:.3f}", f"[{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]", v["n"]]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    from .adherence_report import write_result
    from .classifier import load_classifier
    from .report import md_table, recipe, write_report

    p = argparse.ArgumentParser(prog="bitdance scorer-heldout")
    p.add_argument("--out", default="runs/eval/scorers")
    p.add_argument("--results", help="also write the shared-format result file (docs/results/<name>.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shapes-n", type=int, default=300, help="fresh scenes for the shapes detectors")
    p.add_argument("--limit", type=int, help="emoji per condition (default: all)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {
        "emoji": emoji_heldout(load_classifier("emoji"), args.seed, args.limit),
        "fashion": fashion_heldout(load_classifier("fashion"), args.seed),
        "shapes": shapes_heldout(args.shapes_n, args.seed),
    }
    rec = recipe(
        ["python", "-m", "bitdance.evaluation.heldout", *(argv or [])],
        "cpu",
        seed=args.seed,
        bootstrap="1000 resamples over items, seed 0, 2.5-97.5 percentile",
        symbola=str(find_symbola()),
    )
    cols = ["condition", "accuracy (fraction)", "95% CI", "n"]
    tables = {k: {"columns": cols, "rows": _rows(v)} for k, v in res.items()}
    md = "\n\n".join(
        ["# Scorer accuracy on data the classifiers never saw", __doc__.split("\n\n", 2)[2]]
        + [f"## {k}\n\n" + md_table(cols, t["rows"]) for k, t in tables.items()]
    )
    write_report(args.out, {"kind": "scorer-heldout", "results": res, "recipe": rec}, md, {})
    if args.results:
        name = Path(args.results).stem
        write_result(args.results, name, rec, res, tables)
    for k, t in tables.items():
        for row in t["rows"]:
            print(f"{k:8s} {row[0]:48s} {row[1]:>6s} {row[2]:>16s} n={row[3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
