"""Training-throughput benchmark: samples/s of full optimizer steps (forward, backward, AdamW, EMA) for the
tokenizer and the generator of one preset size, measured in one run.

    bitdance bench-training --preset mini --batch-size 32 --steps 5

Tokenizer steps read real images (procedural `shapes`, rendered on the fly). Generator steps read a synthetic
token folder (random bits and text states of the preset's shape) so no tokenizer or text encoder runs, exactly
as in `bitdance train`. One row per configuration; nothing is written outside a temp folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..core.configs import get_preset
from .dist import DistContext
from .optim import OptimConfig
from .tokens import FORMAT, VERSION


def synthetic_tokens(folder: Path, preset: str, count: int = 256, seed: int = 0) -> Path:
    """A token folder of random bits (and random text states for text presets) shaped for `preset`."""
    cfg = get_preset("generator", preset)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    d, (h, w) = cfg.latent_bits, cfg.grid_size
    np.save(folder / "bits.npy", rng.integers(0, 256, (count, (d * h * w + 7) // 8), dtype=np.uint8))
    labels = rng.integers(0, cfg.num_classes, count) if cfg.cond_type == "class" else -np.ones(count)
    np.save(folder / "labels.npy", labels.astype(np.int64))
    np.save(folder / "caption_ids.npy", np.arange(count, dtype=np.int64))
    np.save(folder / "source_ids.npy", np.zeros(count, np.int16))
    (folder / "captions.json").write_text(json.dumps([f"caption {i}" for i in range(count)]))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "count": count,
        "bits_shape": [d, h, w],
        "sources": ["synthetic"],
        "tokenizer": {"path": "", "config": {}, "hash": ""},
        "text_encoder": None,
        "unique_captions": count,
    }
    if cfg.cond_type == "text":
        lengths = rng.integers(4, cfg.text_len + 1, count)
        np.save(
            folder / "text_states.npy",
            rng.standard_normal((int(lengths.sum()), cfg.text_dim)).astype(np.float16),
        )
        np.save(folder / "text_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        header["text_encoder"] = {"name": "synthetic", "max_len": cfg.text_len, "dim": cfg.text_dim}
    (folder / "header.json").write_text(json.dumps(header))
    return folder


def _time_steps(trainer, warmup: int, steps: int) -> float:  # noqa: ANN001
    trainer.start(0)
    for s in range(warmup):
        trainer.train_step(s)
    t0 = time.perf_counter()
    for s in range(warmup, warmup + steps):
        trainer.train_step(s)
    return (time.perf_counter() - t0) / steps


def bench_tokenizer(preset: str, batch: int, steps: int, warmup: int, perceptual: str, device: str) -> dict:
    from .mixture import build_mixture
    from .tokenizer_trainer import TokenizerLossConfig, TokenizerTrainer

    cfg = get_preset("tokenizer", preset)
    data = build_mixture("shapes", "train", cfg.image_size)
    oc = OptimConfig(steps=warmup + steps, batch_size=batch, lr=1e-4, warmup=1)
    ctx = DistContext(device=torch.device(device))
    tr = TokenizerTrainer(cfg, data, None, oc, TokenizerLossConfig(perceptual=perceptual), ctx)
    sec = _time_steps(tr, warmup, steps)
    params = sum(p.numel() for p in tr.model.parameters())
    return {
        "model": f"tokenizer {preset}",
        "detail": f"{cfg.image_size}px, perceptual={tr.perceptual_kind}",
        "params_M": params / 1e6,
        "batch": batch,
        "sec_per_step": sec,
        "samples_per_s": batch / sec,
    }


def bench_generator(preset: str, batch: int, steps: int, warmup: int, parallel: int, device: str) -> dict:
    from .generator_trainer import GeneratorTrainer, generator_config
    from .tokens import TokenStore

    with tempfile.TemporaryDirectory() as tmp:
        store = TokenStore(synthetic_tokens(Path(tmp) / "tokens", preset, count=max(64, 2 * batch)))
        cfg = generator_config(preset, store, [parallel])
        oc = OptimConfig(steps=warmup + steps, batch_size=batch, lr=1e-4, warmup=1)
        tr = GeneratorTrainer(cfg, store, oc, DistContext(device=torch.device(device)))
        sec = _time_steps(tr, warmup, steps)
        params = sum(p.numel() for p in tr.model.parameters())
    return {
        "model": f"generator {preset}",
        "detail": f"P={parallel}, {cfg.grid_size[0]}x{cfg.grid_size[1]} tokens",
        "params_M": params / 1e6,
        "batch": batch,
        "sec_per_step": sec,
        "samples_per_s": batch / sec,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bitdance bench-training", description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="mini", help="tokenizer and generator preset (default mini)")
    p.add_argument("--batch-size", type=int, default=32, help="global batch per step (default 32)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--parallel", default="4,16", help="generator P values to time (default 4,16)")
    p.add_argument(
        "--perceptual",
        default="auto",
        choices=["auto", "efficientnet", "gradient", "none"],
        help="tokenizer perceptual loss (default auto)",
    )
    p.add_argument("--only", choices=["tokenizer", "generator"], help="time one component only")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        print("error: --batch-size and --steps must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    if args.only in (None, "tokenizer"):
        rows.append(
            bench_tokenizer(
                args.preset, args.batch_size, args.steps, args.warmup, args.perceptual, args.device
            )
        )
    if args.only in (None, "generator"):
        for par in (int(x) for x in args.parallel.split(",")):
            rows.append(
                bench_generator(args.preset, args.batch_size, args.steps, args.warmup, par, args.device)
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"threads={torch.get_num_threads()} device={args.device} torch={torch.__version__}")
    print("| model | setting | params (M) | batch | s/step | samples/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['detail']} | {r['params_M']:.2f} | {r['batch']} | "
            f"{r['sec_per_step']:.2f} | {r['samples_per_s']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
