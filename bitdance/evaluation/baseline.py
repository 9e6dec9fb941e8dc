"""Diffusion baseline: a class-conditional diffusers ``UNet2DModel`` trained on the same data, DDIM sampling.

    bitdance train-baseline train --budget-minutes 60 --out runs/baseline --match-model M
    bitdance train-baseline sample --baseline runs/baseline --steps 20 --out grid.png

Text-free conditioning: on tinted Fashion-MNIST the label is (class, tint) -> class * 9 + tint (tint 0 =
plain, 1..8 = COLOURS in order), i.e. exactly the information in the captions the BitDance model sees;
label 90 is the null label used for 10 % label dropout (classifier-free guidance). The width is chosen
so the parameter count matches the compared generator (``--match-model``) or ``--params``.

Training runs on the shared training loop (`bitdance.training.loop.fit`): time-budgeted (training-loop
seconds; data preparation is recorded separately) and resumable. ``<out>/checkpoints/state-*.pt`` hold
the optimizer, EMA, step, spent time and RNG state; ``<out>/export/`` (``unet/`` in diffusers format with
the EMA weights + ``baseline.json``) is the inference folder; ``<out>/run.json`` the recipe. Rerunning the
same command continues until the total budget is spent.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.atomic import atomic_folder, atomic_write_bytes
from ..core.vocabulary import COLOURS
from ..training.checkpoints import CheckpointManager
from ..training.dist import DistContext
from ..training.loop import LoopConfig, NonFiniteLoss, Trainer, fit
from ..training.optim import EMA, lr_at, set_lr

TINTS: tuple[str | None, ...] = (None, *COLOURS)
META_NAME, UNET_DIR, DATA_CACHE = "baseline.json", "unet", "data_cache.pt"
EXPORT_DIR, RUN_NAME = "export", "run.json"  # <out>/export/ is the inference folder; run.json the recipe
WIDTHS = tuple(range(16, 257, 8))


def _quiet_diffusers() -> None:
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def label_of(class_index: int, colour: str | None, tinted: bool) -> int:
    """Baseline label of a (class, tint) pair; plain class index when the data is not tinted."""
    return class_index * len(TINTS) + TINTS.index(colour) if tinted else class_index


def labels_for_items(metas: list[dict[str, Any]], labels: list[int], tinted: bool) -> list[int]:
    return [label_of(lab, m.get("colour") if tinted else None, tinted) for lab, m in zip(labels, metas)]


def build_unet(width: int, num_labels: int, size: int):  # noqa: ANN201
    """UNet2DModel with channels (w, 2w, 2w), attention at the middle level, num_labels + 1 class "
    "embeddings."""
    _quiet_diffusers()
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(width, 2 * width, 2 * width),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        num_class_embeds=num_labels + 1,
    )


def width_for_params(target: float, num_labels: int, size: int) -> tuple[int, int]:
    """The width (multiple of 8) whose parameter count is closest to ``target`` -> (width, params)."""
    best = None
    for w in WIDTHS:
        n = sum(p.numel() for p in build_unet(w, num_labels, size).parameters())
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (w, n)
        if n > target:
            break
    assert best is not None
    return best


def scheduler_config() -> dict[str, Any]:
    return {
        "num_train_timesteps": 1000,
        "beta_schedule": "squaredcos_cap_v2",
        "prediction_type": "epsilon",
        "clip_sample": True,
    }


def prepare_data(
    dataset: str, size: int, tinted: bool, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) uint8 images and (N,) labels of the training split (items in dataset order)."""
    from ..data import build_dataset

    if dataset != "fashion_mnist":
        raise ValueError(f"the diffusion baseline trains on fashion_mnist (class labels); got {dataset!r}")
    ds = build_dataset(dataset, "train", size, tint=tinted)
    n = len(ds) if limit is None else min(limit, len(ds))
    imgs = torch.empty(n, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    for i in range(n):
        it = ds[i]
        imgs[i] = ((it["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        labels[i] = label_of(it["label"], it["meta"]["colour"], tinted)
    return imgs, labels


def cached_data(path: Path, size: int, tinted: bool, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``prepare_data`` for fashion_mnist, kept in ``path`` so a resumed run skips the minutes of preparation
    (reused only when dataset, size, tint and limit match)."""
    key = {"dataset": "fashion_mnist", "size": size, "tinted": tinted, "limit": limit}
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.get("key") == json.dumps(key, sort_keys=True):
            return cached["images"], cached["labels"]
    images, labels = prepare_data("fashion_mnist", size, tinted, limit)
    buf = io.BytesIO()
    torch.save({"key": json.dumps(key, sort_keys=True), "images": images, "labels": labels}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return images, labels


def _save_unet(unet: Any, folder: Path) -> None:
    """diffusers save_pretrained into a temp folder, then swap it in (never a half-written folder)."""
    with atomic_folder(folder) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)


def build_meta(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline's description (architecture, conditioning, data), fixed when a run starts."""
    tinted = not args.no_tint
    num_labels = 10 * (len(TINTS) if tinted else 1)
    target = args.params
    if args.match_model:
        from ..pipeline import BitDancePipeline

        gen = BitDancePipeline.from_pretrained(args.match_model).generator
        target = sum(p.numel() for p in gen.parameters())
    width = args.width if args.width else width_for_params(target, num_labels, args.size)[0]
    return {
        "format": "bitdance-diffusion-baseline",
        "width": width,
        "num_labels": num_labels,
        "null_label": num_labels,
        "tinted": tinted,
        "dataset": "fashion_mnist",
        "size": args.size,
        "scheduler": scheduler_config(),
        "target_params": target,
        "match_model": args.match_model,
        "conditioning": "class*9+tint (tint 0 = plain, 1..8 = COLOURS order)" if tinted else "class",
    }


class BaselineTrainer(Trainer):
    """DDPM training of the baseline UNet (epsilon prediction, MSE, AdamW, EMA) as a `training.loop` trainer:
    the shared loop brings resume, the time budget, checkpoints, the metrics log and the export."""

    def __init__(
        self, meta: dict[str, Any], images: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace
    ) -> None:
        from diffusers import DDPMScheduler

        self.meta, self.images, self.labels = meta, images, labels
        self.batch_size, self.lr, self.warmup = args.batch_size, args.lr, args.warmup
        self.label_dropout = args.label_dropout
        self.global_batch = args.batch_size
        self.unet = build_unet(meta["width"], meta["num_labels"], meta["size"]).train()
        self.ema = EMA(self.unet, args.ema)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=args.lr, weight_decay=0.0)
        self.gen = torch.Generator().manual_seed(args.seed)
        self.scheduler = DDPMScheduler(**meta["scheduler"])

    def train_step(self, step: int) -> dict[str, float]:
        g = self.gen
        idx = torch.randint(0, len(self.images), (self.batch_size,), generator=g)
        x = self.images[idx].float() / 127.5 - 1
        y = self.labels[idx].clone()
        y[torch.rand(len(y), generator=g) < self.label_dropout] = self.meta["null_label"]
        noise = torch.randn(x.shape, generator=g)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x),), generator=g)
        pred = self.unet(self.scheduler.add_noise(x, noise, t), t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # linear warm-up, then a flat rate (the time budget, not a step count, sets the run length)
        set_lr(self.optimizer, lr_at(step, self.lr, step + 1, self.warmup, min_ratio=1.0))
        self.optimizer.step()
        self.ema.update(self.unet)
        return {"loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "diffusion-baseline",
            "meta": json.dumps(self.meta, sort_keys=True),
            "model": self.unet.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "diffusion-baseline":
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} run, not a diffusion-baseline run")
        if state["meta"] != json.dumps(self.meta, sort_keys=True):
            raise ValueError("checkpoint was made with another baseline architecture/data; use a new --out")
        self.unet.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["rng"])

    def export(self, folder: Path) -> Path:
        """EMA weights as a diffusers folder + baseline.json (what `DiffusionBaseline` loads)."""
        ema_unet = copy.deepcopy(self.unet).eval()
        self.ema.copy_to(ema_unet)
        folder.mkdir(parents=True, exist_ok=True)
        _save_unet(ema_unet, folder / UNET_DIR)
        meta = {**self.meta, "params": sum(p.numel() for p in self.unet.parameters())}
        meta["steps"] = self.ema.num_updates
        atomic_write_bytes(folder / META_NAME, (json.dumps(meta, indent=2) + "\n").encode())
        return folder


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Time-budgeted, resumable DDPM training on the shared training loop (`bitdance.training.loop.fit`)."""
    _quiet_diffusers()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget_minutes * 60.0
    if budget <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    meta = build_meta(args)
    found = CheckpointManager(out / "checkpoints", args.keep_last).latest()
    if found is not None:
        meta = json.loads(found[0]["meta"])  # a resumed run keeps the architecture it started with
        spent = float(found[0].get("loop_elapsed_s", 0.0))
        if spent >= budget:
            print(f"budget already spent ({spent:.0f} s >= {budget:.0f} s); nothing to do")
            return meta
        print(f"resuming at step {found[0]['step']} ({spent:.0f} s of {budget:.0f} s used)")
    t_data = time.perf_counter()
    images, labels = cached_data(out / DATA_CACHE, meta["size"], meta["tinted"], args.limit)
    data_seconds = round(time.perf_counter() - t_data, 1)
    trainer = BaselineTrainer(meta, images, labels, args)
    loop = LoopConfig(
        steps=10**9,  # the time budget ends the run
        out=out,
        log_every=50,
        ckpt_every=args.ckpt_every,
        keep_last=args.keep_last,
        resume=found is not None,
        progress=False,
        time_budget_s=budget,
    )
    summary = fit(trainer, loop, DistContext())
    run = {
        **meta,
        "budget_seconds": budget,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "label_dropout": args.label_dropout,
        "ema": args.ema,
        "command": "bitdance train-baseline " + " ".join(args.argv),
        "data_seconds": data_seconds,
        "train_items": len(images),
        "steps": summary["step"],
        "train_seconds": round(summary["loop_elapsed_s"], 1),
    }
    atomic_write_bytes(out / RUN_NAME, (json.dumps(run, indent=2) + "\n").encode())
    print(f"done: {summary['step']} steps in {summary['loop_elapsed_s']:.0f} s; wrote {out / EXPORT_DIR}")
    return run


class DiffusionBaseline:
    """A trained baseline folder: ``sample(labels, steps, seeds)`` -> images (B, 3, S, S) in [-1, 1]."""

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        if (folder / EXPORT_DIR / META_NAME).is_file():  # a run folder: its export
            folder = folder / EXPORT_DIR
        meta_path = folder / META_NAME
        if not meta_path.is_file() or not (folder / UNET_DIR).is_dir():
            raise FileNotFoundError(
                f"{folder} is not a trained baseline (needs {META_NAME} and {UNET_DIR}/); train "
                "one with: bitdance train-baseline train --out FOLDER"
            )
        _quiet_diffusers()
        from diffusers import DDIMScheduler, UNet2DModel

        self.meta = json.loads(meta_path.read_text())
        self.unet = UNet2DModel.from_pretrained(folder / UNET_DIR).eval()
        self.scheduler = DDIMScheduler(**self.meta["scheduler"])
        self.params = sum(p.numel() for p in self.unet.parameters())
        from .features import weights_hash

        self.weights_hash = weights_hash(self.unet)

    @torch.no_grad()
    def sample(
        self, labels: list[int], steps: int = 50, seeds: list[int] | None = None, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """DDIM (eta 0) with ``steps`` steps; item i starts from noise of seed seeds[i]; CFG when "
        "scale != 1."""
        if not isinstance(steps, int) or not 1 <= steps <= 1000:
            raise ValueError(f"DDIM steps must be an integer in 1..1000, got {steps!r}")
        n_lab = self.meta["num_labels"]
        bad = [lab for lab in labels if not 0 <= lab < n_lab]
        if bad:
            raise ValueError(f"baseline labels must be in 0..{n_lab - 1}, got {bad[:5]}")
        seeds = list(range(len(labels))) if seeds is None else seeds
        s = self.meta["size"]
        x = torch.stack([torch.randn(3, s, s, generator=torch.Generator().manual_seed(sd)) for sd in seeds])
        y = torch.tensor(labels)
        guided = guidance_scale != 1.0
        if guided:
            y = torch.cat([y, torch.full_like(y, self.meta["null_label"])])
        self.scheduler.set_timesteps(steps)
        for t in self.scheduler.timesteps:
            inp = torch.cat([x, x]) if guided else x
            eps = self.unet(inp, t, class_labels=y).sample
            if guided:
                c, u = eps.chunk(2)
                eps = u + guidance_scale * (c - u)
            x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x.clamp(-1, 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance train-baseline",
        description="Train / sample the class-conditional UNet diffusion baseline.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="time-budgeted, resumable training")
    t.add_argument("--budget-minutes", type=float, required=True, help="total training-loop wall clock")
    t.add_argument("--out", required=True)
    t.add_argument("--match-model", help="pipeline whose generator's parameter count the UNet should match")
    t.add_argument("--params", type=float, default=15e6, help="target parameter count without --match-model")
    t.add_argument("--width", type=int, help="explicit base width (overrides the parameter match)")
    t.add_argument("--size", type=int, default=32)
    t.add_argument("--no-tint", action="store_true", help="plain Fashion-MNIST, 10 class labels")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--label-dropout", type=float, default=0.1)
    t.add_argument("--limit", type=int, help="use only the first N training items (tests)")
    t.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (default 500)")
    t.add_argument("--keep-last", type=int, default=2, help="checkpoints kept (default 2)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int)
    s = sub.add_parser("sample", help="write a PNG grid of samples (one per label)")
    s.add_argument("--baseline", required=True)
    s.add_argument("--steps", type=int, default=50)
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
            if args.threads:
                torch.set_num_threads(args.threads)
            if (
                args.batch_size < 1
                or args.warmup < 1
                or not 0 <= args.label_dropout < 1
                or not 0 < args.ema < 1
            ):
                raise ValueError(
                    "need --batch-size >= 1, --warmup >= 1, 0 <= --label-dropout < 1, 0 < --ema < 1"
                )
            train(args)
            return 0
        from .report import image_grid_png

        base = DiffusionBaseline(args.baseline)
        labels = [i % base.meta["num_labels"] for i in range(args.n)]
        imgs = base.sample(labels, args.steps, list(range(args.n)), args.cfg)
        atomic_write_bytes(Path(args.out), image_grid_png(list(imgs), [str(lab) for lab in labels]))
        print(args.out)
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
