"""`bitdance train-baseline`: train / sample the diffusion baseline (thin argument parsing).

bitdance train-baseline train --budget-minutes 70 --out runs/baseline-v2   (see scripts/train_baseline.sh)
bitdance train-baseline sample --baseline runs/baseline-v2 --sampler dpmpp --steps 20 --out grid.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.atomic import atomic_write_bytes
from .baseline import SAMPLERS, DiffusionBaseline, sample_grid_png
from .baseline_train import add_train_arguments, run_train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance train-baseline",
        description="Train / sample the class x tint conditioned UNet diffusion baseline.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    add_train_arguments(sub.add_parser("train", help="time-budgeted, resumable training"))
    s = sub.add_parser("sample", help="write a PNG grid of samples")
    s.add_argument("--baseline", required=True)
    s.add_argument("--sampler", default="dpmpp", help=f"one of {', '.join(SAMPLERS)} (default dpmpp)")
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--cfg", type=float, default=1.0)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--out", required=True, help="PNG path")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.cmd == "train":
            run_train(args)
            return 0
        if args.n < 1:
            raise ValueError(f"--n must be >= 1, got {args.n}")
        base = DiffusionBaseline(args.baseline)
        atomic_write_bytes(Path(args.out), sample_grid_png(base, args.n, args.steps, args.cfg, args.sampler))
        print(args.out)
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
