"""Train the evaluation classifiers shipped in ``bitdance/assets/eval/`` (the committed command).

    python -m bitdance.evaluation.train_classifier --task fashion --epochs 3
    python -m bitdance.evaluation.train_classifier --task emoji --epochs 12

fashion: Fashion-MNIST train split at 32 px; every epoch each garment gets a random tint (plain or one of
the 8 named colours, with the same shading rule as ``bitdance.data.tint_garment``) so the class decision
does not depend on colour. Test accuracy is measured on the exact ``fashion_mnist`` test items (tinted and
plain). emoji: every Noto emoji rendered ``--renders`` times (centred on white and black, then random
shifts and backgrounds); accuracy on the centred renders (the adherence ground truth) and on held-out
shifted renders is recorded in the JSON beside the weights.
"""

from __future__ import annotations

import argparse
import math
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..core.vocabulary import COLOURS
from .classifier import ClassifierConfig, EvalClassifier, assets_dir, save_classifier

_PALETTE = torch.tensor([[255.0, 255.0, 255.0]] + [list(c) for c in COLOURS.values()]) / 255.0  # 0 = plain


def tint_batch(grey_BHW: torch.Tensor, choice_B: torch.Tensor) -> torch.Tensor:
    """Torch version of ``tint_garment``: grey (B, H, W) in [0, 1], choice 0 = plain, k = k-th colour of
    COLOURS -> (B, 3, H, W) in [-1, 1]."""
    peak = grey_BHW.flatten(1).amax(1).clamp_min(1e-6)[:, None, None]
    coverage = (grey_BHW * 4).clamp(0, 1)
    tinted = (coverage * (0.55 + 0.45 * grey_BHW / peak))[:, None] * _PALETTE[choice_B][:, :, None, None]
    plain = grey_BHW[:, None].expand(-1, 3, -1, -1)
    rgb = torch.where((choice_B == 0)[:, None, None, None], plain, tinted).clamp(0, 1)
    return rgb * 2 - 1


def augment(
    x_B3HW: torch.Tensor, gen: torch.Generator, max_shift: int = 2, noise: float = 0.08
) -> torch.Tensor:
    """Random integer translation (zero padding = black) and Gaussian pixel noise of random strength."""
    b, _, h, w = x_B3HW.shape
    pad = F.pad(x_B3HW, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    out = torch.stack([pad[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    sigma = torch.rand(b, 1, 1, 1, generator=gen) * noise
    return (out + sigma * torch.randn(out.shape, generator=gen)).clamp(-1, 1)


def fashion_grey(split: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 32, 32) grey garments in [0, 1] (bicubic 28 -> 32, as the dataset does) and (N,) labels."""
    from ..data.fashion_mnist import load_fashion_arrays

    images, labels = load_fashion_arrays(split)
    n = len(images) if limit is None else min(limit, len(images))
    out = np.stack(
        [np.asarray(Image.fromarray(images[i]).resize((32, 32), Image.Resampling.BICUBIC)) for i in range(n)]
    )
    return torch.from_numpy(out).float() / 255.0, torch.from_numpy(labels[:n])


def emoji_renders(renders: int, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(N*renders, 3, 32, 32) in [-1, 1]: render 0 centred on white, 1 centred on black, the rest shifted."""
    from ..data import list_emoji, pil_to_tensor, render_emoji

    emoji = list_emoji()[:limit] if limit else list_emoji()
    rng = random.Random(f"bitdance/eval-classifier/emoji/{seed}")
    images, labels = [], []
    for r in range(renders):
        for label, (ch, _name) in enumerate(emoji):
            if r < 2:
                bg, shift = ("white", "black")[r], (0.0, 0.0)
            else:
                bg = "white" if rng.random() < 0.75 else "black"
                shift = (rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08))
            images.append(pil_to_tensor(render_emoji(ch, 32, bg, shift)))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels), [name for _, name in emoji]


def train_loop(
    model: EvalClassifier,
    make_batch,
    n: int,
    epochs: int,
    batch_size: int,
    seed: int,  # noqa: ANN001
    lr: float = 2e-3,
) -> dict[str, float]:
    """AdamW + cosine decay; ``make_batch(idx, gen) -> (x, y)``. Returns timing and the last loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))
    )
    start, step, loss = time.perf_counter(), 0, torch.tensor(0.0)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            x, y = make_batch(perm[i : i + batch_size], gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(
                    f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} "
                    f"{time.perf_counter() - start:.0f}s",
                    flush=True,
                )
    model.eval()
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "steps": step,
        "final_loss": round(loss.item(), 4),
    }


@torch.no_grad()
def accuracy(model: EvalClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    pred = model.predict(images).argmax(-1)
    return float((pred == labels).float().mean()) if len(labels) else float("nan")


def train_fashion(args: argparse.Namespace) -> EvalClassifier:
    from ..core.vocabulary import FASHION_CLASSES
    from ..data import build_dataset

    grey, labels = fashion_grey("train", args.limit)
    model = EvalClassifier(ClassifierConfig("fashion", list(FASHION_CLASSES)))

    def make_batch(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        choice = torch.randint(0, len(_PALETTE), (len(idx),), generator=gen)
        return augment(tint_batch(grey[idx], choice), gen), labels[idx]

    record = train_loop(model, make_batch, len(grey), args.epochs, args.batch_size, args.seed)
    metrics = {}
    n_test = args.test_limit or 10_000
    for tint in (True, False):
        ds = build_dataset("fashion_mnist", "test", 32, tint=tint)
        items = [ds[i] for i in range(min(n_test, len(ds)))]
        x = torch.stack([it["image"] for it in items])
        y = torch.tensor([it["label"] for it in items])
        metrics[f"test_accuracy_{'tinted' if tint else 'plain'}"] = round(accuracy(model, x, y), 4)
        metrics["test_items"] = len(items)
    model.config.training = {
        **record,
        "train_items": len(grey),
        "epochs": args.epochs,
        "seed": args.seed,
        "data": "fashion_mnist train, 32 px, random tint per epoch, shift +-2 px, noise",
    }
    model.config.metrics = metrics
    return model


def train_emoji(args: argparse.Namespace) -> EvalClassifier:
    x, y, names = emoji_renders(args.renders, args.seed, args.limit)
    model = EvalClassifier(ClassifierConfig("emoji", names))

    def make_batch(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return augment(x[idx], gen, max_shift=1, noise=0.06), y[idx]

    record = train_loop(model, make_batch, len(x), args.epochs, args.batch_size, args.seed)
    n = len(names)
    held_x, held_y, _ = emoji_renders(3, args.seed + 1000, args.limit)  # renders 2.. are new random shifts
    gt_pred = model.predict(x[:n]).argmax(-1)
    metrics = {
        "centred_white_accuracy": round(float((gt_pred == y[:n]).float().mean()), 4),
        "centred_black_accuracy": round(accuracy(model, x[n : 2 * n], y[n : 2 * n]), 4),
        "heldout_shifted_accuracy": round(accuracy(model, held_x[2 * n :], held_y[2 * n :]), 4),
        "confused_centred_white": [[names[i], names[int(gt_pred[i])]] for i in range(n) if gt_pred[i] != i][
            :50
        ],
    }
    model.config.training = {
        **record,
        "train_items": len(x),
        "epochs": args.epochs,
        "seed": args.seed,
        "renders_per_emoji": args.renders,
        "data": "Noto Color Emoji, 32 px, centred white/black + shifted renders, noise",
    }
    model.config.metrics = metrics
    return model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance train-classifier",
        description="Train an evaluation classifier (FID_cls features, adherence scorer).",
    )
    p.add_argument("--task", required=True, choices=["fashion", "emoji"])
    p.add_argument("--epochs", type=int, default=None, help="default: 3 (fashion), 12 (emoji)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--renders", type=int, default=16, help="emoji: renders per emoji (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--limit", type=int, default=None, help="use only the first N training items/emoji (tests)"
    )
    p.add_argument("--test-limit", type=int, default=None, help="fashion: test items to score (default all)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=str(assets_dir()), help="output folder (default: the shipped assets)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs is None:
        args.epochs = 3 if args.task == "fashion" else 12
    for name in ("epochs", "batch_size", "renders"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = train_fashion(args) if args.task == "fashion" else train_emoji(args)
    model.config.training["command"] = "python -m bitdance.evaluation.train_classifier " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    weights, cfg = save_classifier(model, Path(args.out))
    print(f"metrics: {model.config.metrics}")
    print(f"wrote {weights} and {cfg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
