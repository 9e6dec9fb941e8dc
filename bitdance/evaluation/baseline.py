"""Diffusion baseline: a small class x tint conditioned pixel-space diffusers ``UNet2DModel`` with diffusers
schedulers (DDPM training, DPM-Solver++ / DDIM sampling).

    bitdance train-baseline train --budget-minutes 70 --out runs/baseline-v2
    bitdance train-baseline sample --baseline runs/baseline-v2 --sampler dpmpp --steps 20 --out grid.png

Conditioning: our text model is conditioned on captions of tinted Fashion-MNIST items, and a caption carries
exactly (class, tint) (the noun and template wording vary, nothing else). The baseline gets the same
information as one label ``class * 9 + tint`` (tint 0 = plain, 1..8 = COLOURS in order); label 90 is the null
label used for 10 % label dropout (classifier-free guidance).

Pixel space, not latent: at 32 x 32 x 3 the pixels are already small (DDPM's CIFAR-10 setting), and a
continuous autoencoder of our tokenizer's size would need its own training out of the same CPU budget. The
UNet is sized for the data (default channels 32, 64, 64, one res block per level, attention at 8 x 8).

Training lives in ``baseline_train.py`` (the shared training loop), the verb in ``baseline_cli.py``; this
module holds the architecture, the samplers and the inference folder (``<run>/export/``: ``unet/`` in
diffusers format with the EMA weights + ``baseline.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.vocabulary import COLOURS

TINTS: tuple[str | None, ...] = (None, *COLOURS)
META_NAME, UNET_DIR, DATA_CACHE = "baseline.json", "unet", "data_cache.pt"
EXPORT_DIR, RUN_NAME = "export", "run.json"  # <out>/export/ is the inference folder; run.json the recipe
# DPM-Solver++ (2M) and DDIM (eta 0), both clipping the x0 prediction to the data range [-1, 1] (dynamic
# thresholding / clip_sample): with epsilon prediction on the cosine schedule the first step starts at
# alpha_bar(999) = 2.4e-9, where x0 = (x - sqrt(1 - a) eps) / sqrt(a) amplifies any eps error 2e4-fold.
# diffusers' Euler scheduler has no x0 clipping and diverges from that first step (measured: noise images),
# so it is not offered.
SAMPLERS = ("dpmpp", "ddim")


def _quiet_diffusers() -> None:
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def label_of(class_index: int, colour: str | None, tinted: bool) -> int:
    """Baseline label of a (class, tint) pair; plain class index when the data is not tinted."""
    return class_index * len(TINTS) + TINTS.index(colour) if tinted else class_index


def labels_for_items(metas: list[dict[str, Any]], labels: list[int], tinted: bool) -> list[int]:
    return [label_of(lab, m.get("colour") if tinted else None, tinted) for lab, m in zip(labels, metas)]


@dataclass
class BaselineConfig:
    """The UNet and its noise schedule (saved in ``baseline.json``)."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (2,)  # levels (0 = full resolution) with self-attention
    norm_num_groups: int = 8
    num_labels: int = 90
    size: int = 32
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        ch = self.block_out_channels
        if not ch or any(c < 1 or c % self.norm_num_groups for c in ch):
            raise ValueError(
                f"channels {ch} must be positive multiples of norm groups {self.norm_num_groups}"
            )
        if self.size % 2 ** (len(ch) - 1):
            raise ValueError(f"size {self.size} must be divisible by 2^{len(ch) - 1} (one per down level)")
        if any(not 0 <= lv < len(ch) for lv in self.attention_levels):
            raise ValueError(f"attention levels {self.attention_levels} must be in 0..{len(ch) - 1}")
        if self.layers_per_block < 1:
            raise ValueError(f"layers_per_block must be >= 1, got {self.layers_per_block}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaselineConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("block_out_channels", "attention_levels"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_unet(cfg: BaselineConfig):  # noqa: ANN201
    """diffusers UNet2DModel (3 -> 3 channels) with ``num_labels + 1`` class embeddings (the last = null)."""
    _quiet_diffusers()
    from diffusers import UNet2DModel

    cfg.check()
    attn = set(cfg.attention_levels)
    n = len(cfg.block_out_channels)
    down = tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(n)))
    return UNet2DModel(
        sample_size=cfg.size,
        in_channels=3,
        out_channels=3,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=cfg.num_labels + 1,
    )


def train_scheduler_config(cfg: BaselineConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_schedule": cfg.beta_schedule,
        "prediction_type": cfg.prediction_type,
    }


def build_sampler(name: str, cfg: BaselineConfig):  # noqa: ANN201
    """A diffusers scheduler for sampling, picked by name (``SAMPLERS``); trailing timestep spacing, which
    keeps the first step at the highest noise level (matters at 5-10 steps)."""
    _quiet_diffusers()
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    base = train_scheduler_config(cfg)
    if name == "dpmpp":
        return DPMSolverMultistepScheduler(
            **base,
            algorithm_type="dpmsolver++",
            solver_order=2,
            timestep_spacing="trailing",
            thresholding=True,
            sample_max_value=1.0,
        )
    if name == "ddim":
        return DDIMScheduler(**base, clip_sample=True, timestep_spacing="trailing", set_alpha_to_one=False)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def unet_flops(unet: Any, size: int, batch: int = 1) -> int:
    """FLOPs (2 x multiply-adds, as counted by torch.utils.flop_counter) of one UNet call per image."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(batch, 3, size, size)
    y = torch.zeros(batch, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(x, torch.tensor([500] * batch), class_labels=y)
    return int(fc.get_total_flops() // batch)


class DiffusionBaseline:
    """A trained baseline folder: ``sample(labels, steps, seeds, guidance_scale, sampler)`` -> images
    (B, 3, S, S) in [-1, 1]."""

    def __init__(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        if (folder / EXPORT_DIR / META_NAME).is_file():  # a run folder: its export
            folder = folder / EXPORT_DIR
        meta_path = folder / META_NAME
        if not meta_path.is_file() or not (folder / UNET_DIR).is_dir():
            raise FileNotFoundError(
                f"{folder} is not a trained baseline (needs {META_NAME} and {UNET_DIR}/); train "
                "one with: bitdance train-baseline train --out FOLDER --budget-minutes N"
            )
        self.meta = json.loads(meta_path.read_text())
        if "config" not in self.meta:
            raise ValueError(
                f"{folder} is an older baseline format (no 'config' in {META_NAME}); retrain it with "
                "bitdance train-baseline train"
            )
        _quiet_diffusers()
        from diffusers import UNet2DModel

        self.config = BaselineConfig.from_dict(self.meta["config"])
        self.unet = UNet2DModel.from_pretrained(folder / UNET_DIR).eval()
        self.params = sum(p.numel() for p in self.unet.parameters())
        from .features import weights_hash

        self.weights_hash = weights_hash(self.unet)
        self._flops: int | None = None

    def flops_per_call(self) -> int:
        """FLOPs of one UNet evaluation for one image (cached)."""
        if self._flops is None:
            self._flops = unet_flops(self.unet, self.config.size)
        return self._flops

    @torch.no_grad()
    def sample(
        self,
        labels: list[int],
        steps: int = 20,
        seeds: list[int] | None = None,
        guidance_scale: float = 1.0,
        sampler: str = "dpmpp",
    ) -> torch.Tensor:
        """Item i starts from noise of seed seeds[i]; CFG (one doubled batch) when scale != 1."""
        return sample_unet(self.unet, self.config, labels, steps, seeds, guidance_scale, sampler)


@torch.no_grad()
def sample_unet(
    unet: Any,
    cfg: BaselineConfig,
    labels: list[int],
    steps: int = 20,
    seeds: list[int] | None = None,
    guidance_scale: float = 1.0,
    sampler: str = "dpmpp",
) -> torch.Tensor:
    """Pure sampling: (unet, labels, options, seeds) -> (B, 3, S, S) in [-1, 1]; deterministic per seed."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise ValueError(f"sampling steps must be an integer in 1..1000, got {steps!r}")
    bad = [lab for lab in labels if not 0 <= lab < cfg.num_labels]
    if bad:
        raise ValueError(f"baseline labels must be in 0..{cfg.num_labels - 1}, got {bad[:5]}")
    seeds = list(range(len(labels))) if seeds is None else list(seeds)
    if len(seeds) != len(labels):
        raise ValueError(f"need one seed per label, got {len(seeds)} seeds for {len(labels)} labels")
    sched = build_sampler(sampler, cfg)
    s = cfg.size
    sched.set_timesteps(steps)
    x = torch.stack([torch.randn(3, s, s, generator=torch.Generator().manual_seed(sd)) for sd in seeds])
    x = x * sched.init_noise_sigma
    y = torch.tensor(labels, dtype=torch.long)
    guided = guidance_scale != 1.0
    if guided:
        y = torch.cat([y, torch.full_like(y, cfg.num_labels)])
    for t in sched.timesteps:
        inp = torch.cat([x, x]) if guided else x
        inp = sched.scale_model_input(inp, t)
        eps = unet(inp, t, class_labels=y).sample
        if guided:
            c, u = eps.chunk(2)
            eps = u + guidance_scale * (c - u)
        x = sched.step(eps, t, x).prev_sample
    return x.clamp(-1, 1)


def sample_grid_png(
    base: DiffusionBaseline, n: int, steps: int, cfg: float, sampler: str, seed: int = 0
) -> bytes:
    """PNG grid of ``n`` samples: rows walk the classes, columns the tints (label (i * 9 + i // 10) % 90)."""
    from ..core.vocabulary import FASHION_CLASSES
    from .report import image_grid_png

    tints = len(TINTS) if base.meta.get("tinted", True) else 1
    labels = [(i % 10) * tints + (i // 10 + i) % tints for i in range(n)]
    imgs = base.sample(labels, steps, [seed + i for i in range(n)], cfg, sampler)
    titles = [f"{TINTS[lab % tints] or 'plain'} {FASHION_CLASSES[lab // tints]}"[:18] for lab in labels]
    return image_grid_png(list(imgs), titles, cols=10)
