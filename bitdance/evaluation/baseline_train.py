"""Training of the diffusion baseline on the shared training loop (`bitdance.training.loop.fit`).

    bitdance train-baseline train --budget-minutes 70 --out runs/baseline-v2 --ckpt-every 200

DDPM training (epsilon prediction, MSE, AdamW with warm-up then a flat rate, EMA), time-budgeted
(training-loop seconds, dev evaluations included; data preparation is recorded separately) and resumable:
``<out>/checkpoints/state-*.pt`` hold the optimizer, EMA, step, spent time and RNG state; ``<out>/export/``
is the inference folder (EMA weights), refreshed at every checkpoint; ``<out>/run.json`` the recipe. Rerunning
the same command continues until the total budget is spent.

The dev monitor (``--dev-n`` > 0) scores FID_cls of the EMA weights on Fashion-MNIST *test* items 0..n-1
(the dev items; the held-out comparison uses ``test-heldout``, items >= 5000) at every evaluation, for each
``--dev-cfg`` guidance scale, with DPM-Solver++ at ``--dev-steps`` steps; the log tells whether FID was still
improving when the budget ran out, and the bench picks its guidance scale from the last dev evaluation.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core.atomic import atomic_folder, atomic_write_bytes
from ..training.checkpoints import CheckpointManager
from ..training.dist import DistContext
from ..training.loop import LoopConfig, NonFiniteLoss, Trainer, fit
from ..training.optim import EMA, lr_at, set_lr
from .baseline import (
    DATA_CACHE,
    EXPORT_DIR,
    META_NAME,
    RUN_NAME,
    TINTS,
    UNET_DIR,
    BaselineConfig,
    build_unet,
    label_of,
    sample_unet,
    train_scheduler_config,
)

DEV_SPLIT = "test"  # dev items 0..dev_n-1; the comparison reads test-heldout (items >= 5000)
# Tag of the dev monitor's sampler. Entries without it were scored by the first version of the sampler
# (DPM-Solver++ without x0 clipping, which diverged: noise images) and are dropped on resume.
DEV_SAMPLER = "dpmpp-thresholded"


def prepare_data(size: int, tinted: bool, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) uint8 images and (N,) labels of the Fashion-MNIST training split (dataset order)."""
    from ..data import build_dataset

    ds = build_dataset("fashion_mnist", "train", size, tint=tinted)
    n = len(ds) if limit is None else min(limit, len(ds))
    imgs = torch.empty(n, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    for i in range(n):
        it = ds[i]
        imgs[i] = ((it["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        labels[i] = label_of(it["label"], it["meta"]["colour"], tinted)
    return imgs, labels


def cached_data(path: Path, size: int, tinted: bool, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``prepare_data`` kept in ``path`` so a resumed run skips the minutes of preparation (reused only when
    size, tint and limit match)."""
    key = json.dumps(
        {"dataset": "fashion_mnist", "size": size, "tinted": tinted, "limit": limit}, sort_keys=True
    )
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.get("key") == key:
            return cached["images"], cached["labels"]
    images, labels = prepare_data(size, tinted, limit)
    buf = io.BytesIO()
    torch.save({"key": key, "images": images, "labels": labels}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return images, labels


def build_meta(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline's description (architecture, conditioning, data), fixed when a run starts."""
    tinted = not args.no_tint
    cfg = BaselineConfig(
        block_out_channels=tuple(args.channels),
        layers_per_block=args.layers_per_block,
        attention_levels=tuple(args.attention_levels),
        norm_num_groups=args.norm_groups,
        num_labels=10 * (len(TINTS) if tinted else 1),
        size=args.size,
    )
    cfg.check()
    return {
        "format": "bitdance-diffusion-baseline",
        "version": 2,
        "config": cfg.to_dict(),
        "null_label": cfg.num_labels,
        "tinted": tinted,
        "dataset": "fashion_mnist",
        "size": args.size,
        "conditioning": "class*9+tint (tint 0 = plain, 1..8 = COLOURS order): the information in our captions"
        if tinted
        else "class",
    }


def plateau(history: list[dict[str, Any]], patience: int, min_improvement: float) -> str | None:
    """The stopping rule of the baseline's training (fixed before its numbers existed): a dev evaluation's
    score is its best FID_cls over the guidance scales; training has converged when none of the last
    ``patience`` evaluations beats the best score before them by more than ``min_improvement`` (a fraction).
    0 patience: never (the time budget alone ends the run)."""
    scores = [min(v for k, v in h.items() if k.startswith("dev_fid_cls")) for h in history]
    if patience < 1 or len(scores) <= patience:
        return None
    before, recent = min(scores[:-patience]), min(scores[-patience:])
    if recent < before * (1 - min_improvement):
        return None
    return (
        f"dev FID_cls {recent:.2f} over the last {patience} evaluations, best before them {before:.2f} "
        f"(needs an improvement of more than {min_improvement:.0%})"
    )


class BaselineTrainer(Trainer):
    """DDPM training of the baseline UNet as a `training.loop` trainer: the shared loop brings resume, the
    time budget, checkpoints, the metrics log and the export."""

    def __init__(
        self, meta: dict[str, Any], images: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace
    ) -> None:
        from diffusers import DDPMScheduler

        self.meta, self.images, self.labels = meta, images, labels
        self.cfg = BaselineConfig.from_dict(meta["config"])
        self.batch_size, self.lr, self.warmup = args.batch_size, args.lr, args.warmup
        self.label_dropout, self.grad_clip = args.label_dropout, args.grad_clip
        self.global_batch = args.batch_size
        self.unet = build_unet(self.cfg).train()
        self.ema = EMA(self.unet, args.ema)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=args.lr, weight_decay=0.0)
        self.gen = torch.Generator().manual_seed(args.seed)
        self.scheduler = DDPMScheduler(**train_scheduler_config(self.cfg))
        self.dev_n, self.dev_steps, self.dev_cfg = args.dev_n, args.dev_steps, list(args.dev_cfg)
        self.patience, self.min_improvement = args.patience, args.min_improvement
        self._dev: tuple[Any, torch.Tensor, list[int]] | None = None
        self.dev_history: list[dict[str, Any]] = []

    def train_step(self, step: int) -> dict[str, float]:
        g = self.gen
        idx = torch.randint(0, len(self.images), (self.batch_size,), generator=g)
        x = self.images[idx].float() / 127.5 - 1
        y = self.labels[idx].clone()
        y[torch.rand(len(y), generator=g) < self.label_dropout] = self.cfg.num_labels
        noise = torch.randn(x.shape, generator=g)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x),), generator=g)
        pred = self.unet(self.scheduler.add_noise(x, noise, t), t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.grad_clip)
        # linear warm-up, then a flat rate (the time budget, not a step count, sets the run length)
        set_lr(self.optimizer, lr_at(step, self.lr, step + 1, self.warmup, min_ratio=1.0))
        self.optimizer.step()
        self.ema.update(self.unet)
        return {"loss": float(loss.detach()), "grad_norm": float(gnorm)}

    def ema_unet(self) -> Any:
        unet = copy.deepcopy(self.unet).eval()
        self.ema.copy_to(unet)
        return unet

    def evaluate(self, step: int) -> dict[str, float]:
        """Dev FID_cls of the EMA weights for each dev guidance scale (nothing when --dev-n is 0)."""
        if not self.dev_n:
            return {}
        from .features import build_feature_net, load_real_set
        from .metrics import fid

        if self._dev is None:
            real = load_real_set(
                "fashion_mnist", DEV_SPLIT, self.cfg.size, self.dev_n, {"tint": self.meta["tinted"]}
            )
            net = build_feature_net("cls", "fashion_mnist")
            labels = [
                label_of(lab, m["colour"], self.meta["tinted"]) for lab, m in zip(real.labels, real.metas)
            ]
            self._dev = (net, net(real.images), labels)
        net, real_f, labels = self._dev
        unet, out = self.ema_unet(), {}
        for scale in self.dev_cfg:
            chunks = []
            for lo in range(0, len(labels), 64):
                chunk = labels[lo : lo + 64]
                seeds = [lo + j for j in range(len(chunk))]
                chunks.append(sample_unet(unet, self.cfg, chunk, self.dev_steps, seeds, scale))
            imgs = torch.cat(chunks)
            out[f"dev_fid_cls_cfg{scale:g}"] = fid(real_f, net(imgs))
        self.dev_history.append({"step": step, "sampler": DEV_SAMPLER, **out})
        return out

    def converged(self) -> str | None:
        return plateau(self.dev_history, self.patience, self.min_improvement)

    def save_samples(self, step: int, folder: Path) -> Path | None:
        from .report import image_grid_png

        labels = [(i % 10) * (len(TINTS) if self.meta["tinted"] else 1) + (i // 10) for i in range(20)]
        labels = [lab % self.cfg.num_labels for lab in labels]
        imgs = sample_unet(self.ema_unet(), self.cfg, labels, 10, list(range(20)), 1.0)
        path = folder / f"samples-{step:06d}.png"
        atomic_write_bytes(path, image_grid_png(list(imgs), [str(lab) for lab in labels], cols=10))
        return path

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "diffusion-baseline",
            "meta": json.dumps(self.meta, sort_keys=True),
            "model": self.unet.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.gen.get_state(),
            "dev_history": json.dumps(self.dev_history),
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
        hist = json.loads(state.get("dev_history", "[]"))
        self.dev_history = [h for h in hist if h.get("sampler") == DEV_SAMPLER]
        if len(hist) != len(self.dev_history):
            print(f"dropped {len(hist) - len(self.dev_history)} dev evaluation(s) of the unclipped sampler")

    def export(self, folder: Path) -> Path:
        """EMA weights as a diffusers folder + baseline.json (what `DiffusionBaseline` loads)."""
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_folder(folder / UNET_DIR) as tmp:
            self.ema_unet().save_pretrained(tmp, safe_serialization=True)
        meta = {**self.meta, "params": sum(p.numel() for p in self.unet.parameters())}
        meta["steps"] = self.ema.num_updates
        meta["train_samples"] = self.ema.num_updates * self.batch_size
        meta["dev_history"] = self.dev_history
        atomic_write_bytes(folder / META_NAME, (json.dumps(meta, indent=2) + "\n").encode())
        return folder


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Time-budgeted, resumable DDPM training on the shared training loop."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = args.budget_minutes * 60.0
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
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        eval_every=args.eval_every,
        sample_every=args.eval_every,
        keep_last=args.keep_last,
        resume=found is not None,
        progress=False,
        time_budget_s=budget,
        stop_at=args.stop_at,
    )
    summary = fit(trainer, loop, DistContext())
    run = {
        **meta,
        "budget_seconds": budget,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup": args.warmup,
        "grad_clip": args.grad_clip,
        "label_dropout": args.label_dropout,
        "ema": args.ema,
        "command": "bitdance train-baseline " + " ".join(args.argv),
        "data_seconds": data_seconds,
        "train_items": len(images),
        "steps": summary["step"],
        "train_seconds": round(summary["loop_elapsed_s"], 1),
        "dev_history": trainer.dev_history,
        "patience": args.patience,
        "min_improvement": args.min_improvement,
        "converged": trainer.converged(),  # None: the time budget (or --stop-at) ended the run
    }
    atomic_write_bytes(out / RUN_NAME, (json.dumps(run, indent=2) + "\n").encode())
    print(f"done: {summary['step']} steps in {summary['loop_elapsed_s']:.0f} s; wrote {out / EXPORT_DIR}")
    return run


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_tuple(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_train_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--budget-minutes", type=float, required=True, help="total training-loop wall clock")
    t.add_argument("--out", required=True)
    t.add_argument("--channels", type=_int_tuple, default=(32, 64, 64), help="UNet level widths (32,64,64)")
    t.add_argument("--layers-per-block", type=int, default=1)
    t.add_argument("--attention-levels", type=_int_tuple, default=(2,), help="levels with attention (2)")
    t.add_argument("--norm-groups", type=int, default=8)
    t.add_argument("--size", type=int, default=32)
    t.add_argument("--no-tint", action="store_true", help="plain Fashion-MNIST, 10 class labels")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--ema", type=float, default=0.998)
    t.add_argument("--label-dropout", type=float, default=0.1)
    t.add_argument("--limit", type=int, help="use only the first N training items (tests)")
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--ckpt-every", type=int, default=200, help="steps between checkpoints (default 200)")
    t.add_argument("--eval-every", type=int, default=0, help="steps between dev evaluations (0: every ckpt)")
    t.add_argument("--keep-last", type=int, default=2, help="checkpoints kept (default 2)")
    t.add_argument("--dev-n", type=int, default=0, help="dev items for the FID_cls monitor (0: off)")
    t.add_argument("--dev-steps", type=int, default=10, help="DPM-Solver++ steps of the dev monitor")
    t.add_argument("--dev-cfg", type=_float_tuple, default=(1.0, 2.0), help="dev guidance scales (1,2)")
    t.add_argument("--stop-at", type=int, help="stop after this step (speed checks), budget permitting")
    t.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop when none of the last N dev evaluations improves the best dev FID_cls (0: off)",
    )
    t.add_argument(
        "--min-improvement",
        type=float,
        default=0.02,
        help="relative dev FID_cls improvement that counts for --patience (default 0.02)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int)


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the options (one-line ValueErrors), then train."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.budget_minutes <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    if args.batch_size < 1 or args.warmup < 1 or not 0 <= args.label_dropout < 1 or not 0 < args.ema < 1:
        raise ValueError("need --batch-size >= 1, --warmup >= 1, 0 <= --label-dropout < 1, 0 < --ema < 1")
    if args.patience < 0 or not 0 <= args.min_improvement < 1 or (args.patience and not args.dev_n):
        raise ValueError("need --patience >= 0 (with --dev-n > 0) and 0 <= --min-improvement < 1")
    if args.grad_clip <= 0 or args.dev_n < 0 or args.dev_n == 1 or args.dev_steps < 1 or not args.dev_cfg:
        raise ValueError("need --grad-clip > 0, --dev-n 0 or >= 2, --dev-steps >= 1, at least one --dev-cfg")
    return train(args)
