"""`bitdance generate`: prompts (or class labels) -> PNG files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitdance generate", description="Generate images with a BitDance model.")
    p.add_argument("prompt", nargs="?", help="text prompt (text-to-image models)")
    p.add_argument("-o", "--output", help="output PNG path (single image); default: <out-dir>/<index>-<seed>.png")
    p.add_argument("--out-dir", default="outputs", help="folder for outputs when -o is not given (default: outputs)")
    p.add_argument("--model", default="bitdance-mini",
                   help="shipped model name, local pipeline folder, or random:<preset> (default: bitdance-mini)")
    p.add_argument("--class", dest="class_label", help="class label (index or name) for class-conditional models")
    p.add_argument("--n", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image i uses seed + i (default 0)")
    p.add_argument("--size", help="HEIGHTxWIDTH in pixels, e.g. 32x32 (default: the model's native size)")
    p.add_argument("--steps", type=int, help="head sampling steps per AR step (default: model's)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (default: model's)")
    p.add_argument("--cfg-schedule", choices=["constant", "linear"], help="guidance schedule over AR steps")
    p.add_argument("--parallel", type=int, help="tokens per AR step P (1, 4, 16, ...; default: model's)")
    p.add_argument("--negative", help="negative prompt (text models)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    if size is None:
        return None, None
    try:
        h, w = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 32x32 (HEIGHTxWIDTH), got {size!r}") from None
    return h, w


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_pretrained(args.model, device=args.device)
    text = pipe.generator.config.cond_type == "text"
    if text and not args.prompt:
        raise ValueError("give a prompt, e.g. bitdance generate \"a red sneaker\" -o sneaker.png")
    label = None
    if args.class_label is not None:
        label = int(args.class_label) if args.class_label.isdigit() else args.class_label
    h, w = parse_size(args.size)
    out = pipe(
        prompt=args.prompt if text else None, class_labels=label, negative_prompt=args.negative, height=h, width=w,
        num_images_per_prompt=args.n, num_sampling_steps=args.steps, guidance_scale=args.cfg,
        guidance_schedule=args.cfg_schedule, parallel_num=args.parallel, seed=args.seed,
    )
    paths = []
    for i, (img, seed) in enumerate(zip(out.images, out.seeds)):
        if args.output and len(out.images) == 1:
            path = Path(args.output)
        elif args.output:
            base = Path(args.output)
            path = base.with_name(f"{base.stem}-{i}{base.suffix or '.png'}")
        else:
            path = Path(args.out_dir) / f"{i:04d}-{seed}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        img.save(tmp, format="PNG")
        tmp.replace(path)
        paths.append(path)
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
