"""`bitdance train-tokenizer | extract-tokens | train | finetune`: thin argparse front ends.

Every flag can also come from ``--config file.yaml|json`` (keys are flag names, with - or _); flags given
on the command line override the file. Works alone or under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .loop import TrainingStopped

# ----------------------------------------------------------------------------- config files


def load_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                "YAML config files need PyYAML: pip install pyyaml (or use a .json config)"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {e}") from None
    elif p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not valid JSON: {e}") from None
    else:
        raise ValueError(f"config file {p} must end in .yaml, .yml or .json")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{p} must hold a mapping of option names to values")
    return data


def parse_with_config(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse argv; values from --config become defaults that explicit flags override."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        data = load_config_file(known.config)
        dests = {a.dest: a for a in parser._actions}
        defaults = {}
        for key, value in data.items():
            dest = str(key).replace("-", "_")
            if dest not in dests or dest in ("help", "config"):
                allowed = sorted(d.replace("_", "-") for d in dests if d not in ("help", "config"))
                raise ValueError(f"{known.config}: unknown option {key!r}; allowed: {', '.join(allowed)}")
            action = dests[dest]
            if isinstance(value, list) and action.nargs is None:
                value = ",".join(str(v) for v in value)
            if isinstance(action, argparse._StoreTrueAction):
                if not isinstance(value, bool):
                    raise ValueError(f"{known.config}: option {key!r} must be true or false, got {value!r}")
            elif value is not None:
                if isinstance(value, (dict, bool)) and action.type is not None:
                    raise ValueError(f"{known.config}: option {key!r} has a bad value {value!r}")
                try:
                    value = action.type(value) if action.type is not None else str(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{known.config}: option {key!r} has a bad value {value!r}") from None
            if action.choices is not None and value not in action.choices:
                raise ValueError(
                    f"{known.config}: {key} must be one of {list(action.choices)}, got {value!r}"
                )
            defaults[dest] = value
        parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) in (None, "")]
    if missing:
        raise ValueError(
            f"missing required option(s) {', '.join(missing)} (on the command line or in --config)"
        )


# ----------------------------------------------------------------------------- shared flags


def _common(p: argparse.ArgumentParser, lr: float, batch: int, steps: int) -> None:
    p.add_argument("--config", help="YAML/JSON file with any of these options (flags given here override it)")
    p.add_argument("--out", help="run folder: checkpoints/, export/, metrics.jsonl, samples/ (required)")
    p.add_argument("--steps", type=int, default=steps, help=f"optimizer steps in total (default {steps})")
    p.add_argument(
        "--batch-size",
        type=int,
        default=batch,
        help=f"GLOBAL batch per optimizer step, split over ranks and --grad-accum (default {batch})",
    )
    p.add_argument(
        "--grad-accum", type=int, default=1, help="gradient-accumulation micro-steps per step (default 1)"
    )
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate of AdamW (default {lr:g})")
    p.add_argument(
        "--min-lr-ratio", type=float, default=0.1, help="final LR as a fraction of --lr (cosine; default 0.1)"
    )
    p.add_argument("--warmup", type=int, default=100, help="linear LR warm-up steps (default 100)")
    p.add_argument(
        "--weight-decay", type=float, default=0.0, help="AdamW weight decay on matrices (default 0)"
    )
    p.add_argument("--beta1", type=float, default=0.9, help="AdamW beta1 (default 0.9)")
    p.add_argument("--beta2", type=float, default=0.95, help="AdamW beta2 (default 0.95)")
    p.add_argument(
        "--grad-clip", type=float, default=1.0, help="clip the global grad norm (0 = off; default 1.0)"
    )
    p.add_argument(
        "--ema-decay", type=float, default=0.999, help="EMA decay of the exported weights (default 0.999)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of init, data order and training noise (default 0)"
    )
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument(
        "--stop-at",
        type=int,
        help="stop after this step (checkpoint + export) while keeping the --steps LR schedule; "
        "continue later with --resume and a larger --stop-at (or none)",
    )
    p.add_argument(
        "--log-every", type=int, default=10, help="steps between metrics.jsonl records (default 10)"
    )
    p.add_argument(
        "--ckpt-every",
        type=int,
        default=500,
        help="steps between checkpoints + export refresh (default 500; always at the end)",
    )
    p.add_argument(
        "--eval-every", type=int, default=0, help="steps between held-out evaluations (0 = at checkpoints)"
    )
    p.add_argument(
        "--sample-every", type=int, default=0, help="steps between sample/recon grids (0 = at checkpoints)"
    )
    p.add_argument("--keep-last", type=int, default=3, help="checkpoints to keep (default 3)")
    p.add_argument(
        "--fsdp", action="store_true", help="shard the model with FSDP2 under torchrun (big models)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar / progress lines")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def _optim(args: argparse.Namespace):  # noqa: ANN202
    from .optim import OptimConfig

    return OptimConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_accum=args.grad_accum,
        warmup=args.warmup,
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        beta1=args.beta1,
        beta2=args.beta2,
        grad_clip=args.grad_clip,
        ema_decay=args.ema_decay,
        seed=args.seed,
    )


def _loop(args: argparse.Namespace):  # noqa: ANN202
    from .loop import LoopConfig

    return LoopConfig(
        steps=args.steps,
        out=Path(args.out),
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        eval_every=args.eval_every,
        sample_every=args.sample_every,
        keep_last=args.keep_last,
        resume=args.resume,
        progress=not args.no_progress,
        stop_at=args.stop_at,
    )


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)


# ----------------------------------------------------------------------------- train-tokenizer


def tokenizer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance train-tokenizer",
        description="Train the binary tokenizer (autoencoder with sign bits).",
        epilog="example: bitdance train-tokenizer --data fashion_mnist:tint=1,shapes,emoji --size 32 "
        "--preset mini "
        "--steps 20000 --batch-size 64 --lr 2e-4 --out runs/tok",
    )
    p.add_argument(
        "--data",
        help="dataset mixture, e.g. 'fashion_mnist:tint=1,shapes*2,emoji:repeats=3' or "
        "'folder:root=imgs' (required)",
    )
    p.add_argument("--eval-data", help="held-out mixture (default: the 'test' split of --data)")
    p.add_argument("--size", type=int, help="training resolution in px (default: the preset's image_size)")
    p.add_argument(
        "--preset", default="mini", help="tokenizer preset: tiny, mini, ae_d16c32, ... (default mini)"
    )
    p.add_argument("--init", help="start from an exported tokenizer folder (config taken from it)")
    p.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="with --init: train only the decoder, so the bits (and tokens extracted with them) stay valid",
    )
    p.add_argument(
        "--decoder-res-blocks",
        type=int,
        help="with --init: first deepen the decoder to N res blocks per level; the new blocks start as "
        "exact identities, so training resumes from the init's reconstructions",
    )
    _common(p, lr=2e-4, batch=64, steps=10000)
    p.add_argument("--l1", type=float, default=1.0, help="L1 reconstruction weight (default 1)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 (MSE) reconstruction weight (default 0)")
    p.add_argument(
        "--perceptual",
        default="auto",
        choices=["auto", "efficientnet", "gradient", "none"],
        help="perceptual loss: EfficientNet-Lite0 features (offline wheel), multi-scale gradient "
        "fallback, or none (default auto = efficientnet if installed)",
    )
    p.add_argument(
        "--perceptual-weight", type=float, default=0.1, help="perceptual loss weight (default 0.1)"
    )
    p.add_argument(
        "--perceptual-resize", type=int, default=64, help="resize to this side for features (default 64)"
    )
    p.add_argument(
        "--entropy-weight", type=float, default=0.1, help="group entropy loss weight (default 0.1)"
    )
    p.add_argument("--commit-weight", type=float, default=0.25, help="commitment loss weight (default 0.25)")
    p.add_argument(
        "--gan-weight", type=float, default=0.0, help="PatchGAN hinge loss weight (0 = off, default)"
    )
    p.add_argument(
        "--gan-start", type=int, default=2000, help="step at which the GAN loss starts (default 2000)"
    )
    p.add_argument("--disc-lr", type=float, default=1e-4, help="discriminator learning rate (default 1e-4)")
    p.add_argument("--eval-samples", type=int, default=64, help="held-out images for PSNR/SSIM (default 64)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    return p


def train_tokenizer(argv: list[str]) -> int:
    args = parse_with_config(tokenizer_parser(), argv)
    _require(args, "data", "out")
    _threads(args)
    from ..configs import get_preset
    from .dist import setup
    from .mixture import build_mixture
    from .tokenizer_trainer import TokenizerLossConfig, TokenizerTrainer

    cfg = get_preset("tokenizer", args.preset)
    size = args.size or cfg.image_size
    if size % cfg.downsample:
        raise ValueError(
            f"--size {size} must be a multiple of the tokenizer's downsampling factor {cfg.downsample}"
        )
    cfg.image_size = size
    optim, loop = _optim(args), _loop(args)
    train_set = build_mixture(args.data, "train", size)
    eval_set = _eval_mixture(args.eval_data or args.data, size, explicit=args.eval_data is not None)
    losses = TokenizerLossConfig(
        l1=args.l1,
        l2=args.l2,
        perceptual=args.perceptual,
        perceptual_weight=args.perceptual_weight,
        perceptual_resize=args.perceptual_resize,
        entropy_weight=args.entropy_weight,
        commit_weight=args.commit_weight,
        gan_weight=args.gan_weight,
        gan_start=args.gan_start,
        disc_lr=args.disc_lr,
    )
    ctx = setup(args.device)
    try:
        trainer = TokenizerTrainer(
            cfg,
            train_set,
            eval_set,
            optim,
            losses,
            ctx,
            num_workers=args.num_workers,
            eval_samples=args.eval_samples,
            fsdp=args.fsdp,
            init=args.init,
            freeze_encoder=args.freeze_encoder,
            decoder_res_blocks=args.decoder_res_blocks,
        )
        if ctx.is_main:
            _announce(
                "tokenizer",
                args,
                trainer.model,
                len(train_set),
                ctx,
                extra=f"perceptual={trainer.perceptual_kind}",
            )
        return _run(trainer, loop, ctx)
    finally:
        ctx.close()


def _eval_mixture(spec: str, size: int, explicit: bool):  # noqa: ANN202
    from .mixture import build_mixture

    split = "train" if explicit else "test"
    try:
        return build_mixture(spec, split, size)
    except ValueError as e:
        if explicit:
            raise
        print(f"warning: no held-out split ({e}); evaluation uses training images", file=sys.stderr)
        return build_mixture(spec, "train", size)


def _announce(
    kind: str, args: argparse.Namespace, model: Any, n_items: int, ctx: Any, extra: str = ""
) -> None:
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{kind}: {params / 1e6:.2f}M params, {n_items} training items, global batch {args.batch_size} "
        f"(world {ctx.world_size} x accum {args.grad_accum}), "
        f"{args.steps} steps on {ctx.device} {extra}".rstrip(),
        file=sys.stderr,
    )


def _run(trainer: Any, loop: Any, ctx: Any) -> int:
    from .loop import fit

    try:
        summary = fit(trainer, loop, ctx)
    except TrainingStopped as e:
        if ctx.is_main:
            print(f"error: {e}", file=sys.stderr)
        return 1
    if ctx.is_main:
        print(
            f"done: step {summary['step']}, checkpoint {summary['checkpoint']}, export {summary['export']}",
            file=sys.stderr,
        )
    return 0


# ----------------------------------------------------------------------------- dispatcher


def run_verb(verb: str, argv: list[str]) -> int:
    """Entry point used by `bitdance <verb>` (see bitdance/cli.py)."""
    if verb == "train-tokenizer":
        return train_tokenizer(argv)
    if verb == "extract-tokens":
        from .tokens import extract_main

        return extract_main(argv)
    if verb == "train":
        from .generator_trainer import train_main

        return train_main(argv)
    if verb == "finetune":
        from .finetune import finetune_main

        return finetune_main(argv)
    raise ValueError(f"unknown training verb {verb!r}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m bitdance.training.cli <train-tokenizer|extract-tokens|train|finetune> ...")
        return 2
    from ..cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
