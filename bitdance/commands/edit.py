"""`bitdance edit`: inpaint / re-roll a region, outpaint onto a larger canvas, or make variations.

    bitdance edit photo.png "a blue sneaker" --box 0,0,16,16 -o edited.png     # re-roll a region
    bitdance edit photo.png --mask mask.png                                    # white = regenerate
    bitdance edit photo.png --canvas 48x32 --offset 0,0                        # outpaint (WIDTHxHEIGHT)
    bitdance edit photo.png --from-step 2 --seed 7                             # variation
    bitdance edit photo.png --box 0,0,16,16 --method kept_first                # every kept token first

--method says how kept tokens condition the regenerated ones: joint (default; generation order unchanged:
kept tokens earlier in order and in the same patch), kept_first (every kept token, wherever it is; costs
adherence on raster-trained models) or substitute (the original behaviour: kept tokens pasted after each
patch). See docs/inference.md (Editing).

The prompt (or class) and the model default to those recorded in the input PNG, if it is a bitdance image.
Exit codes: 0 done, 1 prompt refused by the content filter, 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ._common import (
    Parser,
    Progress,
    check_output,
    check_size_supported,
    parse_pair,
    sampling_kwargs,
    size_notes,
    size_option,
)


def build_parser() -> Parser:
    p = Parser(prog="bitdance edit", description="Inpaint, outpaint or vary an image with a BitDance model.")
    p.add_argument("image", help="input image (PNG/JPEG ...)")
    p.add_argument("prompt", nargs="?", help="text prompt (default: the prompt recorded in the input PNG)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--mask", help="mask image of the input's size: white = regenerate, black = keep")
    what.add_argument("--box", help="region to regenerate: x0,y0,x1,y1 in pixels (x1, y1 exclusive)")
    what.add_argument("--from-step", type=int, help="variation: keep the first K AR steps, redo the rest")
    p.add_argument(
        "--method",
        choices=["kept_first", "joint", "substitute"],
        default=None,
        help="how kept tokens condition the regenerated ones (default: the model's: kept_first for models "
        "trained with any patch order, joint otherwise)",
    )
    p.add_argument(
        "--canvas", help="outpaint onto a WIDTHxHEIGHT canvas, e.g. 48x32 (may be combined with --mask)"
    )
    p.add_argument(
        "--canvas-hw", help="deprecated: the canvas as HEIGHTxWIDTH, the order --canvas used before"
    )
    p.add_argument("--offset", help="outpaint: x,y of the input's top-left on the canvas (default: centred)")
    p.add_argument("-o", "--output", help="output PNG; default: <out-dir>/<input>-edit-<seed>.png")
    p.add_argument("--out-dir", default="outputs", help="folder for outputs when -o is not given")
    p.add_argument("--model", help="model name / folder / random:<preset> (default: recorded one)")
    p.add_argument("--class", dest="class_label", help="class label (class-conditional models)")
    p.add_argument("--n", type=int, default=1, help="number of edited versions (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first version; version i uses seed + i")
    p.add_argument("--steps", type=int, help="head sampling steps per AR step (default: model's)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale (default: model's)")
    p.add_argument("--cfg-schedule", choices=["constant", "linear"], help="guidance schedule over AR steps")
    p.add_argument("--parallel", type=int, help="tokens per AR step P (default: model's)")
    p.add_argument("--negative", help="negative prompt (text models)")
    p.add_argument("--upscale", type=int, choices=[2, 4], help="upscale the result 2x or 4x")
    p.add_argument("--upscale-method", default="lanczos", choices=["lanczos", "bicubic", "nearest"])
    p.add_argument("--color", help="colour looks, comma-separated (auto, warm, cool, vivid, mono, ...)")
    p.add_argument(
        "--filter-mode", choices=["block", "warn", "off"], help="content filter mode (default: block)"
    )
    p.add_argument("--safety-rules", help="extra content-filter rule file")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _recorded(path: str) -> dict[str, Any]:
    from ..pipeline.provenance import RECIPE_KEY, read_png_text, read_recipe  # noqa: PLC0415

    try:
        return read_recipe(path) if RECIPE_KEY in read_png_text(path) else {}
    except ValueError:  # a damaged recipe only loses the defaults; the pixels are still usable
        return {}


def main(argv: list[str]) -> int:
    from ..pipeline.editing import load_image  # noqa: PLC0415
    from ..safety import PromptBlockedError  # noqa: PLC0415
    from .generate import load_pipeline  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    check_output(args.output, None if args.output else args.out_dir)
    image = load_image(args.image)  # unreadable input: clear error before loading the model
    canvas_h, canvas_w = size_option(args, "canvas")
    canvas = (canvas_h, canvas_w) if canvas_h is not None else None
    recipe = _recorded(args.image) if args.image.lower().endswith(".png") else {}
    if args.mask is None and args.box is None and args.from_step is None and canvas is None:
        raise ValueError("say what to regenerate: --mask, --box, --canvas (outpaint) or --from-step (vary)")
    if args.offset is not None and canvas is None:
        raise ValueError("--offset needs --canvas")
    if args.from_step is not None and canvas is not None:
        raise ValueError("--from-step varies the whole image; it cannot be combined with --canvas")
    model = args.model or recipe.get("model") or "bitdance-mini"
    pipe = load_pipeline(model, args.device, args.filter_mode, args.safety_rules)
    if canvas is not None:
        check_size_supported(pipe, canvas_h, canvas_w, "canvas size")
        size_notes(args, "canvas")
    kw: dict[str, Any] = {
        "num_images_per_prompt": args.n,
        "seed": args.seed,
        **sampling_kwargs(args),
    }
    if pipe.is_text:
        if args.class_label is not None:
            raise ValueError("--class is for class-conditional models; this model takes prompts")
        kw["prompt"] = args.prompt if args.prompt is not None else recipe.get("prompt")
        if kw["prompt"] is None:
            raise ValueError("give a prompt (the input image has no recorded prompt)")
        kw["negative_prompt"] = args.negative if args.negative is not None else recipe.get("negative_prompt")
    else:
        if args.prompt is not None or args.negative is not None:
            raise ValueError("this is a class-conditional model: pass --class LABEL (prompts are not used)")
        label = args.class_label if args.class_label is not None else recipe.get("class_label")
        if label is None:
            raise ValueError("pass --class LABEL (the input image has no recorded class)")
        kw["class_labels"] = int(label) if isinstance(label, str) and label.isdigit() else label
    progress = Progress(enabled=False if args.quiet else None)
    kw["callback"] = lambda info: progress(0, 1, info)
    try:
        if args.from_step is not None:
            out = pipe.vary(image, from_step=args.from_step, method=args.method, **kw)
        else:
            offset = parse_pair(args.offset, "--offset") if args.offset else None
            mask = Path(args.mask) if args.mask else None
            box = parse_pair_box(args.box) if args.box else None
            out = pipe.edit(image, mask=mask, box=box, canvas=canvas, offset=offset, method=args.method, **kw)
    except PromptBlockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    for i, seed in enumerate(out.seeds):
        if args.output:
            base = Path(args.output)
            path = base if len(out.seeds) == 1 else base.with_name(f"{base.stem}-{i}{base.suffix or '.png'}")
        else:
            path = Path(args.out_dir) / f"{Path(args.image).stem}-edit-{seed}.png"
        out.save(path, i)
        print(path)
    return 0


def parse_pair_box(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--box must be x0,y0,x1,y1 (non-negative integers), got {text!r}")
    x0, y0, x1, y1 = (int(p) for p in parts)
    return x0, y0, x1, y1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
