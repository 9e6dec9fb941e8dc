"""Binary tokenizer training: reconstruction (L1 + optional L2) + perceptual + optional PatchGAN hinge
(adaptive weight, after warm-up) + group entropy + commitment, with EMA weights, held-out PSNR/SSIM and
reconstruction grids.

Data-parallel note: the codebook-entropy term is computed per rank on its local micro-batch (as in
common LFQ trainers), so tokenizer runs are equivalent across world sizes only when that term is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..checkpoint import from_pretrained, save_pretrained
from ..core.configs import TokenizerConfig
from ..data import collate_items
from ..evaluation.metrics import bit_usage, psnr, ssim
from ..tokenizer.autoencoder import BinaryAutoencoder
from ..tokenizer.deepen import deepen_decoder
from ..tokenizer.quantizer import entropy_losses
from .dist import (
    DistContext,
    load_model_state,
    load_optim_state,
    load_rng_state,
    model_state,
    no_sync,
    optim_state,
    rng_state,
    wrap_model,
)
from .gan import PatchDiscriminator, adaptive_weight, hinge_d_loss, hinge_g_loss
from .loop import NonFiniteLoss, Trainer
from .mixture import MixtureDataset, StepSampler
from .optim import EMA, OptimConfig, build_adamw, clip_grad_norm, ema_full_state, set_lr
from .perceptual import build_perceptual
from .progress import save_grid


@dataclass
class TokenizerLossConfig:
    l1: float = 1.0
    l2: float = 0.0
    perceptual: str = "auto"  # auto | efficientnet | gradient | none
    perceptual_weight: float = 0.1
    perceptual_resize: int = 64
    entropy_weight: float = 0.1
    commit_weight: float = 0.25
    gan_weight: float = 0.0  # 0 = no adversarial loss
    gan_start: int = 2000
    disc_lr: float = 1e-4

    def check(self) -> None:
        for k in ("l1", "l2", "perceptual_weight", "entropy_weight", "commit_weight", "gan_weight"):
            v = getattr(self, k)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or v != v:
                raise ValueError(f"--{k.replace('_', '-')} must be a number >= 0, got {v!r}")
        if self.l1 == 0 and self.l2 == 0:
            raise ValueError("at least one of --l1 and --l2 must be > 0 (a reconstruction loss is required)")
        if not isinstance(self.gan_start, int) or self.gan_start < 0:
            raise ValueError(f"--gan-start must be an integer >= 0, got {self.gan_start!r}")


class _BatchPlan:
    """The DataLoader's batch_sampler: micro-batches of this rank from `start` to the last step."""

    def __init__(self, sampler: StepSampler, start: int, steps: int, accum: int, ctx: DistContext) -> None:
        self.sampler, self.start, self.steps, self.accum, self.ctx = sampler, start, steps, accum, ctx

    def __iter__(self):  # noqa: ANN204
        n = self.accum * self.ctx.world_size
        for step in range(self.start, self.steps):
            for a in range(self.accum):
                yield self.sampler.batch(step, a * self.ctx.world_size + self.ctx.rank, n)

    def __len__(self) -> int:
        return (self.steps - self.start) * self.accum


class TokenizerTrainer(Trainer):
    def __init__(
        self,
        cfg: TokenizerConfig,
        train_set: MixtureDataset,
        eval_set: MixtureDataset | None,
        opt: OptimConfig,
        losses: TokenizerLossConfig,
        ctx: DistContext,
        num_workers: int = 0,
        eval_samples: int = 64,
        fsdp: bool = False,
        init: str | None = None,
        freeze_encoder: bool = False,
        decoder_res_blocks: int | None = None,
    ) -> None:
        losses.check()
        if freeze_encoder and not init:
            raise ValueError("--freeze-encoder needs --init (a trained tokenizer whose codes to keep)")
        if decoder_res_blocks is not None and not init:
            raise ValueError(
                "--decoder-res-blocks needs --init (it deepens a trained decoder; for a new tokenizer "
                "set decoder_res_blocks in the preset/config instead)"
            )
        self.freeze_encoder = freeze_encoder
        self.cfg, self.opt_cfg, self.loss_cfg, self.ctx = cfg, opt, losses, ctx
        self.train_set, self.eval_set = train_set, eval_set
        self.num_workers, self.eval_samples = num_workers, eval_samples
        self.micro = opt.micro_batch(ctx.world_size)
        self.global_batch = opt.batch_size
        torch.manual_seed(opt.seed)
        if init:
            self.model = from_pretrained(init).train().to(ctx.device)
            if decoder_res_blocks is not None:
                self.model = deepen_decoder(self.model, decoder_res_blocks)
            if self.model.config.to_dict() != cfg.to_dict():
                self.cfg = cfg = self.model.config
        else:
            self.model = BinaryAutoencoder(cfg).to(ctx.device)
        if freeze_encoder:  # decoder-only fine-tune: the bits (and token sets extracted with them) stay valid
            self.model.encoder.requires_grad_(False)
        self.ddp = wrap_model(self.model, ctx, fsdp)
        self.ema = EMA(self.model, opt.ema_decay)  # after wrapping: FSDP2 turns parameters into DTensors
        self.optimizer = build_adamw(self.model, opt.lr, opt.weight_decay, (opt.beta1, opt.beta2))
        self.perceptual, self.perceptual_kind = build_perceptual(losses.perceptual, losses.perceptual_resize)
        if self.perceptual is not None:
            self.perceptual.to(ctx.device)
        self.disc = self.opt_d = None
        if losses.gan_weight > 0:
            self.disc = PatchDiscriminator().to(ctx.device)
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=losses.disc_lr, betas=(0.5, 0.9))
        self.sampler = StepSampler(train_set.sizes, train_set.weights, opt.batch_size, opt.seed)
        self._batches = None

    # ------------------------------------------------------------------ data
    def start(self, step: int) -> None:
        plan = _BatchPlan(self.sampler, step, self.opt_cfg.steps, self.opt_cfg.grad_accum, self.ctx)
        loader = DataLoader(
            self.train_set,
            batch_sampler=plan,
            collate_fn=collate_items,
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        self._batches = iter(loader)

    def epoch(self, step: int) -> float:
        return self.sampler.epoch_of(step)

    # ------------------------------------------------------------------ losses
    def _losses(
        self, images: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        lc = self.loss_cfg
        recon, _, h = self.ddp(images)
        terms: dict[str, torch.Tensor] = {}
        rec = images.new_zeros(())
        if lc.l1:
            terms["l1"] = (recon - images).abs().mean()
            rec = rec + lc.l1 * terms["l1"]
        if lc.l2:
            terms["l2"] = F.mse_loss(recon, images)
            rec = rec + lc.l2 * terms["l2"]
        if self.perceptual is not None and lc.perceptual_weight:
            terms["perceptual"] = self.perceptual(recon, images)
            rec = rec + lc.perceptual_weight * terms["perceptual"]
        q = entropy_losses(h, self.cfg.entropy_group_size, self.cfg.entropy_temperature)
        terms["entropy"], terms["commitment"] = q.entropy, q.commitment
        terms["codebook_entropy"] = q.codebook_entropy.detach()
        total = rec + lc.entropy_weight * q.entropy + lc.commit_weight * q.commitment
        if self.disc is not None and step >= lc.gan_start:
            self.disc.requires_grad_(False)
            g = hinge_g_loss(self.disc(recon))
            self.disc.requires_grad_(True)
            w = adaptive_weight(rec, g, self.model.decoder.conv_out.weight) * lc.gan_weight
            terms["gan_g"], terms["gan_w"] = g, w
            total = total + w * g
        return total, terms, recon

    def train_step(self, step: int) -> dict[str, float]:
        assert self._batches is not None, "call start() first"
        oc, ctx = self.opt_cfg, self.ctx
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        bad = False
        recon_images = []
        for a in range(oc.grad_accum):
            batch = next(self._batches)
            images = batch["image"].to(ctx.device, non_blocking=True)
            with no_sync(self.ddp, a < oc.grad_accum - 1):
                total, terms, recon = self._losses(images, step)
                (total / oc.grad_accum).backward()
            bad |= not bool(torch.isfinite(total.detach()))
            for k, v in {"loss": total, **terms}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / oc.grad_accum
            recon_images.append((images, recon.detach()))
        if ctx.any_true(bad):
            raise NonFiniteLoss(f"tokenizer loss is {sums['loss']} at step {step + 1}")
        lr = oc.lr_at(step)
        set_lr(self.optimizer, lr)
        gnorm = clip_grad_norm(self.model.parameters(), oc.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        if self.disc is not None and step >= self.loss_cfg.gan_start:
            sums["gan_d"] = self._disc_step(recon_images, step)
        return {**{k: ctx.all_mean(v) for k, v in sums.items()}, "lr": lr, "grad_norm": gnorm}

    def _disc_step(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], step: int) -> float:
        assert self.disc is not None and self.opt_d is not None
        self.opt_d.zero_grad(set_to_none=True)
        total = 0.0
        for images, recon in pairs:
            d = hinge_d_loss(self.disc(images), self.disc(recon)) / len(pairs)
            d.backward()
            total += float(d)
        if self.ctx.distributed:
            import torch.distributed as dist

            for p in self.disc.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.ctx.world_size
        set_lr(self.opt_d, self.loss_cfg.disc_lr)
        self.opt_d.step()
        return total

    # ------------------------------------------------------------------ eval / samples / export
    def ema_model(self) -> BinaryAutoencoder:
        m = BinaryAutoencoder(self.cfg)
        m.load_state_dict(ema_full_state(self.ema, self.model, m))
        if self.freeze_encoder:  # exact frozen weights (an EMA of a constant can differ in the last bit)
            m.encoder.load_state_dict(self.model.encoder.state_dict())
        return m.to(self.ctx.device).eval()

    def _eval_images(self) -> torch.Tensor | None:
        if self.eval_set is None or len(self.eval_set) == 0:
            return None
        n = min(self.eval_samples, len(self.eval_set))
        idx = torch.linspace(0, len(self.eval_set) - 1, n).round().long().tolist()
        return collate_items([self.eval_set[i] for i in idx])["image"]

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        if not self.ctx.is_main:
            return {}
        images = self._eval_images()
        if images is None:
            return {}
        model = self.ema_model()
        out = {"psnr": 0.0, "ssim": 0.0, "l1": 0.0}
        chunks = list(images.split(64))
        all_bits = []
        for chunk in chunks:
            chunk = chunk.to(self.ctx.device)
            bits = model.encode(chunk)
            rec = model.decode(bits).clamp(-1, 1)
            w = chunk.shape[0] / images.shape[0]
            out["psnr"] += float(psnr(rec, chunk)) * w
            out["ssim"] += float(ssim(rec, chunk)) * w
            out["l1"] += float((rec - chunk).abs().mean()) * w
            all_bits.append(bits.cpu())
        out.update(bit_usage(torch.cat(all_bits)))
        return out

    @torch.no_grad()
    def save_samples(self, step: int, folder: Path) -> Path | None:
        if not self.ctx.is_main:
            return None
        images = self._eval_images()
        if images is None:
            return None
        images = images[:16].to(self.ctx.device)
        model = self.ema_model()
        rec = model.decode(model.encode(images))
        return save_grid(
            torch.cat([images, rec.clamp(-1, 1)]), Path(folder) / f"recon-{step:06d}.png", ncol=len(images)
        )

    def export(self, folder: Path) -> Path:
        return save_pretrained(self.ema_model().cpu(), folder)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {
            "kind": "tokenizer",
            "config": self.cfg.to_dict(),
            "optim_config": self.opt_cfg.to_dict(),
            "model": model_state(self.ddp),
            "ema": self.ema.state_dict(),
            "optimizer": optim_state(self.ddp, self.optimizer),
            "rng": rng_state(),
        }
        if self.disc is not None:
            state["disc"] = {k: v.detach().cpu() for k, v in self.disc.state_dict().items()}
            state["opt_d"] = self.opt_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "tokenizer":
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} run, not a tokenizer run")
        if state["config"] != self.cfg.to_dict():
            raise ValueError(
                "checkpoint was made with a different tokenizer config; use the same --preset/--size "
                "or a new --out"
            )
        load_model_state(self.ddp, state["model"])
        self.ema.load_state_dict(state["ema"])
        load_optim_state(self.ddp, self.optimizer, state["optimizer"])
        load_rng_state(state["rng"])
        if self.disc is not None:
            if "disc" not in state:
                raise ValueError(
                    "checkpoint has no discriminator; resume without --gan-weight or start a new run"
                )
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
