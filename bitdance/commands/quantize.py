"""`bitdance quantize`: write an int8 copy of a pipeline, or measure fp32 vs int8 (`--report`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """examples:
  bitdance quantize --model bitdance-mini -o bitdance-mini-int8              # int8-dynamic (CPU)
  bitdance quantize --model bitdance-mini --decoder fp32 --encoder fp32 -o g-int8   # generator only
  bitdance quantize --model ./my-model --scheme int8-weight-only -o ./my-model-int8
  bitdance quantize --report --model random:mini --samples 8 --json report.json
"""


def build_parser() -> argparse.ArgumentParser:
    from ..quantization import SCHEMES

    p = argparse.ArgumentParser(
        prog="bitdance quantize",
        description="Int8 quantization of a BitDance pipeline and its report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default="bitdance-mini",
        help="shipped model name, pipeline folder, or random:<preset> (default: bitdance-mini)",
    )
    p.add_argument("-o", "--output", help="output pipeline folder (required unless --report)")
    p.add_argument(
        "--scheme",
        default="int8-dynamic",
        help=f"one of {', '.join(SCHEMES)} (default int8-dynamic: fastest on CPU)",
    )
    p.add_argument(
        "--decoder",
        default="int8",
        help="tokenizer decoder weights: int8 (default; weight-only, see the report's PSNR change) or fp32",
    )
    p.add_argument(
        "--encoder",
        default="int8",
        help="tokenizer encoder weights, used by editing only: int8 (default; weight-only, see the report's "
        "bit agreement) or fp32",
    )
    p.add_argument(
        "--modules",
        nargs="+",
        metavar="PATTERN",
        help="generator layers to quantize (fnmatch patterns over module names; default: backbone "
        "blocks and diffusion-head linears)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    r = p.add_argument_group("report")
    r.add_argument("--report", action="store_true", help="measure fp32 vs int8 instead of writing a model")
    r.add_argument(
        "--samples", type=int, default=8, help="images per variant for quality numbers (default 8)"
    )
    r.add_argument(
        "--batch-sizes", default="1,16", help="comma-separated batch sizes for images/s (default 1,16)"
    )
    r.add_argument("--repeats", type=int, default=3, help="timed runs per variant and batch size (default 3)")
    r.add_argument("--steps", type=int, help="head sampling steps per AR step (default: the model's)")
    r.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    r.add_argument("--threads", type=int, help="torch CPU threads for the whole report (default: torch's)")
    r.add_argument("--no-rss", action="store_true", help="skip the subprocess memory probes")
    r.add_argument("--json", help="also write the full report as JSON to this path")
    return p


def _positive(name: str, value: int | None, top: int = 10_000) -> None:
    if value is not None and not 1 <= value <= top:
        raise ValueError(f"{name} must be an integer in 1..{top}, got {value}")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--batch-sizes must look like 1,16, got {text!r}") from None
    for b in sizes:
        _positive("each batch size", b, 64)
    return sizes


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..quantization import SCHEMES

    if args.scheme not in SCHEMES:
        raise ValueError(f"unknown --scheme {args.scheme!r}; supported: {', '.join(SCHEMES)}")
    for name in ("decoder", "encoder"):
        if getattr(args, name) not in ("fp32", "int8"):
            raise ValueError(f"--{name} must be fp32 or int8, got {getattr(args, name)!r}")
    if args.report:
        return _report(args)
    if not args.output:
        raise ValueError("give an output folder with -o (or use --report)")
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise ValueError(f"output folder {out} exists and is not empty; pass --force to replace it")
    from ..pipeline import BitDancePipeline
    from ..quantization import quantize_pipeline, save_quantized_pipeline
    from ..quantization.model import folder_bytes

    pipe = BitDancePipeline.from_pretrained(args.model)
    quantize_pipeline(pipe, args.scheme, decoder=args.decoder, patterns=args.modules, encoder=args.encoder)
    save_quantized_pipeline(pipe, out, overwrite=args.force)
    q = pipe.generator.quantization
    print(
        f"{out}: generator {q['scheme']} ({len(q['modules'])} layers), decoder {args.decoder}, "
        f"encoder {args.encoder}, "
        f"{folder_bytes(out) / 2**20:.2f} MiB"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..quantization.report import ReportOptions, build_report, format_report

    if args.output:
        raise ValueError("--report does not write a model; drop -o (use --json for the report file)")
    _positive("--samples", args.samples, 10_000)
    _positive("--repeats", args.repeats, 100)
    _positive("--steps", args.steps, 1000)
    _positive("--threads", args.threads, 256)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    opts = ReportOptions(
        model=args.model,
        scheme=args.scheme,
        decoder=args.decoder,
        encoder=args.encoder,
        samples=args.samples,
        batch_sizes=parse_batch_sizes(args.batch_sizes),
        repeats=args.repeats,
        steps=args.steps,
        seed=args.seed,
        probe_rss=not args.no_rss,
        patterns=tuple(args.modules) if args.modules else None,
    )
    rep = build_report(opts)
    print(format_report(rep))
    if args.json:
        from ..checkpoint import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(rep, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
