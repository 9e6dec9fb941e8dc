"""`bitdance train-tokenizer | extract-tokens | train | finetune`: thin argparse front ends.

Every flag can also come from ``--config file.yaml|json`` (keys are flag names, with - or _); flags given
on the command line override the file. Works alone or under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import sys

from .options import (
    add_common_options,
    announce,
    load_config_file,
    loop_config,
    optim_config,
    parse_with_config,
    require_options,
    run_training,
    set_threads,
)

__all__ = ["load_config_file", "parse_with_config", "run_verb", "tokenizer_parser", "train_tokenizer"]

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
    add_common_options(p, lr=2e-4, batch=64, steps=10000)
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
    require_options(args, "data", "out")
    set_threads(args)
    from ..core.configs import get_preset
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
    optim, loop = optim_config(args), loop_config(args)
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
            announce(
                "tokenizer",
                args,
                trainer.model,
                len(train_set),
                ctx,
                extra=f"perceptual={trainer.perceptual_kind}",
            )
        return run_training(trainer, loop, ctx)
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
    return run_verb(argv[0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
