"""The model card's sample grid: fixed prompts x seeds 0-3 with the model's default settings, no picking.

Usage: .venv/bin/python scripts/sample_grid.py [--model M] [--out docs/images/bitdance-mini-samples.png]
The prompt list below was fixed before any image was made (the free-form rows before v2's training).
The last row asks for a photo, which no training caption does; "cat" is also an emoji name, so the model
draws the cat emoji (docs/model_card.md, limitations).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

PROMPTS = [
    "a red sneaker",
    "a pair of blue trousers",
    "a green bag",
    "a white ankle boot",
    "a small green triangle in the top left",
    "a red circle left of a blue square",
    "three yellow squares",
    "two pink circles",
    "a maple leaf",
    "a slice of pizza",
    "a red apple",
    "a rocket",
    "a photo of a cat (no photos in training)",
    # free-form rows, fixed before bitdance-mini v2 was trained (the examples and new phrasings)
    "a rocket ship",
    "a cute dog's face",
    "someone's trousers laid flat",
    "a blue circle and a red square",
    "I'd like a pink handbag please",
    "an eggplant",
]
SEEDS = (0, 1, 2, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bitdance-mini")
    p.add_argument("--out", default="docs/images/bitdance-mini-samples.png")
    p.add_argument("--scale", type=int, default=3, help="nearest-neighbour upscaling of each image (3)")
    args = p.parse_args()
    torch.set_num_threads(1)
    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_pretrained(args.model)
    label_w, pad = 300, 4
    rows = []
    for text in PROMPTS:
        prompt = text.split(" (")[0]
        out = pipe(prompt, num_images_per_prompt=len(SEEDS), seed=list(SEEDS))
        rows.append((text, out.images))
    w, h = rows[0][1][0].size
    cw, ch = w * args.scale, h * args.scale
    grid = Image.new("RGB", (label_w + len(SEEDS) * (cw + pad), len(rows) * (ch + pad) + 20), "white")
    draw = ImageDraw.Draw(grid)
    for j, s in enumerate(SEEDS):
        draw.text((label_w + j * (cw + pad) + 4, 4), f"seed {s}", fill="black")
    for i, (text, images) in enumerate(rows):
        y = 20 + i * (ch + pad)
        draw.text((6, y + ch // 2 - 6), text, fill="black")
        for j, im in enumerate(images):
            grid.paste(im.resize((cw, ch), Image.NEAREST), (label_w + j * (cw + pad), y))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(PROMPTS)} prompts x seeds {list(SEEDS)}, model hash {pipe.model_hash})")


if __name__ == "__main__":
    main()
