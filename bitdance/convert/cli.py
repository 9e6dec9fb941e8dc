"""`bitdance convert`: official BitDance checkpoints -> our folder layout (strict, with a coverage report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checkpoint import CheckpointError
from .official_checkpoints import (
    ConversionReport,
    convert_imagenet,
    convert_tokenizer,
    load_official_imagenet,
    load_official_tokenizer,
    read_official_weights,
)
from .official_configs import parse_grid
from .t2i_components import IMAGE_SIZE_LIST, OFFICIAL_FILES, convert_t2i_folder, load_t2i_components

KINDS = ("auto", "tokenizer", "imagenet", "t2i")

EPILOG = """\
formats:
  tokenizer  official tokenizer weights: ae_d16c32.safetensors (+ ae_d16c32_config.json beside it, or
             --config), ae.safetensors + ae_config.json, or a .pt holding {"state_dict": ...}
             -> OUT/tokenizer/{config.json, model.safetensors}
  imagenet   class-conditional .pt from imagenet_gen ('ema' preferred over 'model'; 'optimizer', 'epochs',
             'args' are ignored); its vae.* tensors become the tokenizer
             -> OUT/{model_index.json, tokenizer/, generator/} (loads with BitDancePipeline.from_pretrained)
  t2i        the 14B text-to-image folder (Qwen3 files + ae/vision_head/projector files)
             -> OUT/{t2i_config.json, tokenizer/, head/, projector/, llm/} (run it with OfficialT2IPipeline)

model configuration for imagenet (--config): a preset name (BitDance-B-1x, BitDance-B-4x, BitDance-B-16x,
BitDance-L-1x, BitDance-H-1x), an args JSON with the official constructor names
({"constructor_kwargs": {...}, "vae_substitute": {...}}), or nothing: inferred from tensor shapes (the
number of attention heads cannot be inferred; head_dim 64 is assumed unless --n-head is given).

examples:
  bitdance convert BitDance_B_4x.pt out/b4x --config BitDance-B-4x
  bitdance convert ae_d16c32.safetensors out/ae
  bitdance convert models/BitDance-14B-64x out/t2i-64x --llm symlink
  bitdance convert checkpoint.pt out/x --grid 16x16 --n-head 12 --check
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance convert",
        description="Convert official BitDance checkpoints to bitdance folders. "
        "Strict: every official tensor must map to exactly one of ours, with the same shape.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="official file (.safetensors / .pt) or T2I folder")
    p.add_argument("out", nargs="?", help="output folder (not needed with --check)")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="source format; auto: folder -> t2i, .safetensors -> tokenizer, .pt -> by its keys",
    )
    p.add_argument(
        "--config",
        help="imagenet: preset name or args JSON; tokenizer: config JSON "
        "({'ddconfig': ..., 'gan_decoder': ...}); default: inferred",
    )
    p.add_argument(
        "--grid",
        help="token grid HxW (rows x columns) when it cannot be read from the config, "
        "e.g. 16x16; allows non-square grids",
    )
    p.add_argument(
        "--n-head",
        type=int,
        help="imagenet: attention heads of the backbone when inferring (default: width / 64)",
    )
    p.add_argument(
        "--weights",
        choices=("ema", "model"),
        default="ema",
        help="imagenet: which weights of a training checkpoint to convert (default: ema)",
    )
    p.add_argument(
        "--tokenizer", help="imagenet: official tokenizer file to use instead of the embedded vae.*"
    )
    p.add_argument(
        "--tokenizer-config", help="config JSON for --tokenizer (default: beside it, else inferred)"
    )
    p.add_argument(
        "--llm",
        choices=("symlink", "copy"),
        default="symlink",
        help="t2i: link (default) or copy the Qwen3 files into OUT/llm",
    )
    p.add_argument("--check", action="store_true", help="load and report only; write nothing")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty OUT folder")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return p


def detect_kind(source: Path) -> str:
    """Guess the official format of `source`."""
    if source.is_dir():
        if (source / "vision_head_config.json").is_file():
            return "t2i"
        raise ValueError(f"{source} is a folder without vision_head_config.json (not a BitDance T2I folder)")
    if source.suffix == ".safetensors":
        return "tokenizer"
    state, _, _ = read_official_weights(source)
    if any(k.startswith("vae.") or k == "cls_embedding.weight" for k in state):
        return "imagenet"
    if state and all(k.startswith(("encoder.", "decoder.")) for k in state):
        return "tokenizer"
    raise ValueError(f"cannot tell the format of {source}; pass --kind")


def _check_out(out: str | None, args: argparse.Namespace) -> Path | None:
    if args.check:
        return None
    if not out:
        raise ValueError("an output folder is required (or use --check)")
    path = Path(out)
    if path.exists() and any(path.iterdir()) and not args.overwrite:
        raise ValueError(f"output folder {path} is not empty; pass --overwrite to write into it")
    return path


def run(args: argparse.Namespace) -> ConversionReport:
    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"{source} not found")
    kind = detect_kind(source) if args.kind == "auto" else args.kind
    out = _check_out(args.out, args)
    grid = parse_grid(args.grid)
    if kind == "tokenizer":
        if out is None:
            report = ConversionReport()
            load_official_tokenizer(source, args.config, report)
            return report
        return convert_tokenizer(source, out, args.config)
    if kind == "imagenet":
        kw = {
            "config": args.config,
            "grid": grid,
            "n_head": args.n_head,
            "weights": args.weights,
            "tokenizer": args.tokenizer,
            "tokenizer_config": args.tokenizer_config,
        }
        return (
            load_official_imagenet(source, **kw).report
            if out is None
            else convert_imagenet(source, out, **kw)
        )
    if kind == "t2i":
        missing = [f for f in OFFICIAL_FILES if not (source / f).is_file()]
        if missing:
            raise ValueError(f"{source} lacks {missing}")
        if out is None:
            return load_t2i_components(source).report
        return convert_t2i_folder(source, out, args.llm, IMAGE_SIZE_LIST)
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


def convert_main(argv: list[str]) -> int:
    """Entry point of `bitdance convert` (argv without the verb); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(report)
        print("checked (nothing written)" if args.check else f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatcher hook (`bitdance.cli` calls `main(rest)`)."""
    return convert_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
