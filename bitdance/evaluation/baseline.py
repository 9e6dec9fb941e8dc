"""Diffusion baseline: a class-conditional diffusers ``UNet2DModel`` trained on the same data, DDIM sampling.

    python -m bitdance.evaluation.baseline train --budget-minutes 60 --out runs/baseline --match-model M
    python -m bitdance.evaluation.baseline sample --baseline runs/baseline --steps 20 --out grid.png

Text-free conditioning: on tinted Fashion-MNIST the label is (class, tint) -> class * 9 + tint (tint 0 =
plain, 1..8 = COLOURS in order), i.e. exactly the information in the captions the BitDance model sees;
label 90 is the null label used for 10 % label dropout (classifier-free guidance). The width is chosen
so the parameter count matches the compared generator (``--match-model``) or ``--params``.

Training is time-budgeted and resumable: the budget counts training-loop seconds only (data preparation
is recorded separately); ``<out>/train_state.pt`` holds the optimizer, EMA, step, elapsed time and RNG
state; ``<out>/unet/`` (diffusers format, EMA weights) + ``<out>/baseline.json`` are the inference files.
Rerunning the same command continues until the total budget is spent.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write_bytes, default_file_mode
from ..core.vocabulary import COLOURS

TINTS: tuple[str | None, ...] = (None, *COLOURS)
STATE_NAME, META_NAME, UNET_DIR, DATA_CACHE = "train_state.pt", "baseline.json", "unet", "data_cache.pt"
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


def ema_decay(step: int, target: float) -> float:
    """EMA decay after ``step`` updates, warmed up as in ``training.optim.EMA`` (min(target, (1+n)/(10+n))):
    a budget of a few hundred steps must not leave the exported weights mostly at the random init."""
    return min(target, (1 + step) / (10 + step))


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
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        unet.save_pretrained(tmp, safe_serialization=True)
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            folder.replace(old)
        tmp.replace(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _save_state(path: Path, state: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, default_file_mode())
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Time-budgeted, resumable DDPM training (epsilon prediction, MSE, AdamW, EMA)."""
    _quiet_diffusers()
    from diffusers import DDPMScheduler

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path, meta_path = out / STATE_NAME, out / META_NAME
    budget = args.budget_minutes * 60.0
    if budget <= 0:
        raise ValueError(f"--budget-minutes must be positive, got {args.budget_minutes}")
    tinted = not args.no_tint
    num_labels = 10 * (len(TINTS) if tinted else 1)
    meta: dict[str, Any]
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        meta = json.loads(meta_path.read_text())
        print(f"resuming at step {state['step']} ({state['elapsed']:.0f} s of {budget:.0f} s used)")
    else:
        state = None
        target = args.params
        if args.match_model:
            from ..pipeline import BitDancePipeline

            gen = BitDancePipeline.from_pretrained(args.match_model).generator
            target = sum(p.numel() for p in gen.parameters())
        width, params = (args.width, None) if args.width else width_for_params(target, num_labels, args.size)
        meta = {
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
    meta.update(
        budget_seconds=budget,
        batch_size=args.batch_size,
        lr=args.lr,
        label_dropout=args.label_dropout,
        ema=args.ema,
        command="python -m bitdance.evaluation.baseline " + " ".join(args.argv),
    )
    if state is not None and state["elapsed"] >= budget:
        print(f"budget already spent ({state['elapsed']:.0f} s >= {budget:.0f} s); nothing to do")
        return meta
    t_data = time.perf_counter()
    images, labels = cached_data(out / DATA_CACHE, meta["size"], meta["tinted"], args.limit)
    meta["data_seconds"], meta["train_items"] = round(time.perf_counter() - t_data, 1), len(images)
    unet = build_unet(meta["width"], meta["num_labels"], meta["size"])
    meta["params"] = sum(p.numel() for p in unet.parameters())
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    if state is not None:
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        step, elapsed = state["step"], state["elapsed"]
    sched = DDPMScheduler(**meta["scheduler"])
    unet.train()

    def checkpoint() -> None:
        _save_state(
            state_path,
            {
                "model": unet.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": gen.get_state(),
                "step": step,
                "elapsed": elapsed,
            },
        )
        _save_unet(ema, out / UNET_DIR)
        meta.update(steps=step, train_seconds=round(elapsed, 1))
        atomic_write_bytes(meta_path, (json.dumps(meta, indent=2) + "\n").encode())

    last_ckpt = seg_start = time.perf_counter()
    base_elapsed = elapsed
    while elapsed < budget:
        idx = torch.randint(0, len(images), (args.batch_size,), generator=gen)
        x = images[idx].float() / 127.5 - 1
        y = labels[idx].clone()
        y[torch.rand(len(y), generator=gen) < args.label_dropout] = meta["null_label"]
        noise = torch.randn(x.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(x),), generator=gen)
        loss = F.mse_loss(unet(sched.add_noise(x, noise, t), t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in opt.param_groups:  # linear warm-up
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.step()
        with torch.no_grad():
            decay = ema_decay(step, args.ema)
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        step += 1
        elapsed = base_elapsed + time.perf_counter() - seg_start
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} {elapsed:.0f}/{budget:.0f} s", flush=True)
        if time.perf_counter() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint()
            last_ckpt = time.perf_counter()
    checkpoint()
    print(f"done: {step} steps in {elapsed:.0f} s; wrote {out / UNET_DIR} and {state_path}")
    return meta


class DiffusionBaseline:
    """A trained baseline folder: ``sample(labels, steps, seeds)`` -> images (B, 3, S, S) in [-1, 1]."""

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        meta_path = folder / META_NAME
        if not meta_path.is_file() or not (folder / UNET_DIR).is_dir():
            raise FileNotFoundError(
                f"{folder} is not a trained baseline (needs {META_NAME} and {UNET_DIR}/); train "
                "one with: python -m bitdance.evaluation.baseline train --out FOLDER"
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
        prog="python -m bitdance.evaluation.baseline",
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
    t.add_argument("--ckpt-minutes", type=float, default=5.0)
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
