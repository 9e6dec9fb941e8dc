"""BitDancePipeline: prompt/class encoding -> next-patch generation -> tokenizer decode -> images.

Components are injected (tests build tiny ones); `from_pretrained` builds them from a folder:
    <folder>/model_index.json, <folder>/tokenizer/{config.json, model.safetensors},
    <folder>/generator/{config.json, model.safetensors}
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import __version__
from .checkpoint import CheckpointError, from_pretrained, save_pretrained
from .configs import get_preset
from .generator.text_encoder import build_text_encoder, check_prompts
from .generator.transformer import BitDanceTransformer, Condition, TextCondition
from .random import GeneratorSource, PerItemSource, RandomSource
from .sampling.decode import KnownTokens, SamplingOptions, generate_bits
from .tokenizer.autoencoder import BinaryAutoencoder

INDEX_NAME = "model_index.json"
DEFAULT_MODEL = "bitdance-mini"
MAX_IMAGES = 64
MAX_PROMPT_CHARS = 2000
OUTPUT_TYPES = ("pil", "np", "pt", "bits")


def models_dir() -> Path:
    return Path(__file__).resolve().parent / "assets" / "models"


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A local folder, or the name of a model shipped in `bitdance/assets/models/`. Never downloads."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = models_dir() / str(name_or_path)
    if shipped.is_dir():
        return shipped
    names = sorted(x.name for x in models_dir().iterdir()) if models_dir().is_dir() else []
    raise ValueError(
        f"model {str(name_or_path)!r} is neither a local folder nor a shipped model; shipped models: {names}, "
        "or use 'random:<preset>' for random weights (testing)"
    )


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 with the official clamp(127.5 x + 128) mapping."""
    return torch.clamp(127.5 * images.float() + 128.0, 0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class PipelineOutput:
    images: Any  # list[PIL.Image] | np.ndarray (B,H,W,3) uint8 | torch.Tensor (B,3,H,W) in [-1,1] | bits
    seeds: list[int | None]
    bits: torch.Tensor  # (B, d, h, w) ±1
    verdicts: list[Any] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[dict[str, Any]], None]


class BitDancePipeline:
    """Generate images from prompts (text models) or class labels (class-conditional models)."""

    def __init__(
        self, tokenizer: BinaryAutoencoder, generator: BitDanceTransformer, text_encoder: torch.nn.Module | None = None,
        defaults: dict[str, Any] | None = None, class_names: list[str] | None = None, name: str = "custom",
        safety: Any = None,
    ) -> None:
        self.tokenizer = tokenizer.eval()
        self.generator = generator.eval()
        self.text_encoder = text_encoder
        self.defaults = {"num_sampling_steps": 20, "guidance_scale": 1.0, "guidance_schedule": "constant",
                         "parallel_num": generator.config.parallel_num, **(defaults or {})}
        self.class_names = class_names
        self.name = name
        self.safety = safety
        self.model_hash = self._hash()
        if generator.config.latent_bits != tokenizer.config.z_channels:
            raise ValueError(
                f"generator predicts {generator.config.latent_bits} bits per token but the tokenizer uses "
                f"{tokenizer.config.z_channels}"
            )
        if generator.config.cond_type == "text" and text_encoder is None:
            raise ValueError("a text-conditioned generator needs a text_encoder")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> BitDancePipeline:
        """Load a pipeline folder or shipped model by name; 'random:<preset>' builds random weights."""
        if str(name_or_path).startswith("random:"):
            return cls.from_preset(str(name_or_path).split(":", 1)[1], device=device)
        folder = resolve_model(name_or_path)
        index_path = folder / INDEX_NAME
        if not index_path.is_file():
            raise CheckpointError(f"{folder} has no {INDEX_NAME}; expected a BitDance pipeline folder")
        index = json.loads(index_path.read_text())
        if dtype is not None and dtype != torch.float32 and torch.device(device).type == "cpu":
            raise ValueError("on CPU use float32 (bf16 matmul is ~300x slower there); bf16 is for CUDA")
        tok = from_pretrained(folder / index.get("tokenizer", "tokenizer"), device=device, dtype=dtype)
        gen = from_pretrained(folder / index.get("generator", "generator"), device=device, dtype=dtype)
        te = None
        if index.get("text_encoder"):
            spec = dict(index["text_encoder"])
            te = build_text_encoder(spec.pop("name"), **spec).to(device)
        return cls(tok, gen, te, index.get("defaults"), index.get("class_names"), name=folder.name)

    @classmethod
    def from_preset(cls, preset: str, device: str | torch.device = "cpu", seed: int = 0) -> BitDancePipeline:
        """Random-weight pipeline from generator/tokenizer presets (for tests and smoke runs)."""
        torch.manual_seed(seed)
        gcfg = get_preset("generator", preset)
        tcfg = get_preset("tokenizer", "tiny" if gcfg.grid_size == (4, 4) else "mini")
        tcfg.z_channels = gcfg.latent_bits
        te = None
        if gcfg.cond_type == "text":
            te = build_text_encoder("hash", dim=gcfg.text_dim, max_len=gcfg.text_len)
        return cls(BinaryAutoencoder(tcfg).to(device), BitDanceTransformer(gcfg).to(device), te, name=f"random:{preset}")

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        save_pretrained(self.tokenizer, folder / "tokenizer")
        save_pretrained(self.generator, folder / "generator")
        te = None
        if self.text_encoder is not None:
            te = {"name": self.text_encoder.name, "max_len": self.text_encoder.max_len}
            if te["name"] == "hash":
                te["dim"] = self.text_encoder.dim
        index = {"format": "bitdance-pipeline", "version": 1, "tokenizer": "tokenizer", "generator": "generator",
                 "text_encoder": te, "defaults": self.defaults, "class_names": self.class_names}
        (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return folder

    def _hash(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for m in (self.tokenizer, self.generator):
            for k, v in m.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:12]

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.generator.norm.weight.device

    @property
    def supported_sizes(self) -> list[tuple[int, int]]:
        """(height, width) pairs this model can generate."""
        cfg, f = self.generator.config, self.tokenizer.downsample
        if cfg.head_pos == "learned":
            return [(cfg.grid_size[0] * f, cfg.grid_size[1] * f)]
        side = max(int(math.isqrt(p)) for p in cfg.supported_parallel)
        base = cfg.grid_size
        sizes = {(h * f, w * f) for h in range(side, 2 * base[0] + 1, side) for w in range(side, 2 * base[1] + 1, side)}
        return sorted(sizes)

    # ------------------------------------------------------------------ validation
    def check_inputs(
        self, prompt: Any, class_labels: Any, height: Any, width: Any, num_images_per_prompt: Any, output_type: str,
        negative_prompt: Any,
    ) -> tuple[list[str] | None, list[int] | None, tuple[int, int]]:
        cfg = self.generator.config
        prompts = labels = None
        if cfg.cond_type == "text":
            if prompt is None:
                raise ValueError("this is a text-to-image model: pass prompt=...")
            if class_labels is not None:
                raise ValueError("class_labels is only for class-conditional models; this model takes prompts")
            prompts = check_prompts(prompt, MAX_PROMPT_CHARS)
            if negative_prompt is not None:
                negs = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
                if not isinstance(negs, (list, tuple)) or len(negs) != len(prompts) or \
                        not all(isinstance(n, str) and len(n) <= MAX_PROMPT_CHARS for n in negs):
                    raise ValueError("negative_prompt must be a string or a list of strings, one per prompt")
        else:
            if prompt is not None:
                raise ValueError("this is a class-conditional model: pass class_labels=... (prompts are not used)")
            if negative_prompt is not None:
                raise ValueError("negative_prompt needs a text-conditioned model")
            raw = [class_labels] if isinstance(class_labels, (int, str)) else class_labels
            if raw is None or not isinstance(raw, (list, tuple)) or not raw:
                raise ValueError("class_labels must be an int, a class name, or a non-empty list of them")
            labels = [self._class_index(c) for c in raw]
        n = num_images_per_prompt
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise ValueError(f"num_images_per_prompt must be an integer in 1..{MAX_IMAGES}, got {n!r}")
        count = len(prompts or labels or []) * n
        if count > MAX_IMAGES:
            raise ValueError(f"{count} images requested; at most {MAX_IMAGES} per call")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {list(OUTPUT_TYPES)}, got {output_type!r}")
        sizes = self.supported_sizes
        default = sizes[0] if len(sizes) == 1 else (cfg.grid_size[0] * self.tokenizer.downsample,
                                                    cfg.grid_size[1] * self.tokenizer.downsample)
        h = default[0] if height is None else height
        w = default[1] if width is None else width
        if (h, w) not in sizes or isinstance(h, bool) or isinstance(w, bool):
            shown = ", ".join(f"{a}x{b}" for a, b in sizes[:12]) + (" ..." if len(sizes) > 12 else "")
            raise ValueError(f"unsupported size {height}x{width} (height x width); this model supports: {shown}")
        return prompts, labels, (h, w)

    def _class_index(self, c: int | str) -> int:
        n = self.generator.config.num_classes
        if isinstance(c, str):
            if not self.class_names or c not in self.class_names:
                raise ValueError(f"unknown class name {c!r}; known: {self.class_names or 'none (use integers)'}")
            return self.class_names.index(c)
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n:
            raise ValueError(f"class label must be an integer in 0..{n - 1}, got {c!r}")
        return c

    # ------------------------------------------------------------------ stages
    def encode_prompt(self, prompts: list[str]) -> TextCondition:
        assert self.text_encoder is not None
        c = self.text_encoder(prompts)
        return TextCondition(c.states.to(self.device), c.mask.to(self.device))

    def decode(self, bits: torch.Tensor, seeds: Sequence[int | None]) -> torch.Tensor:
        """Decode one image at a time so an image never depends on its batch position."""
        out = []
        for i in range(bits.shape[0]):
            g = None
            if self.tokenizer.config.gan_decoder:
                g = torch.Generator(device=self.device).manual_seed((seeds[i] or 0) + 1)
            out.append(self.tokenizer.decode(bits[i:i + 1], generator=g))
        return torch.cat(out)

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self, prompt: str | list[str] | None = None, class_labels: Any = None, negative_prompt: str | list[str] | None = None,
        height: int | None = None, width: int | None = None, num_images_per_prompt: int = 1,
        num_sampling_steps: int | None = None, guidance_scale: float | None = None, guidance_schedule: str | None = None,
        parallel_num: int | None = None, seed: int | list[int] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None, output_type: str = "pil",
        callback: ProgressCallback | None = None, solver: str = "euler_maruyama", known: KnownTokens | None = None,
    ) -> PipelineOutput:
        """Generate images. Seeds: `seed` (int: image i uses seed + i; or one per image) or `generator`.

        With seeds (the default, seed 0) every image has its own generator, so an image is identical
        whether generated alone or inside a batch.
        """
        prompts, labels, (h, w) = self.check_inputs(
            prompt, class_labels, height, width, num_images_per_prompt, output_type, negative_prompt
        )
        d = self.defaults
        opts = SamplingOptions(
            parallel_num=parallel_num if parallel_num is not None else d["parallel_num"],
            num_sampling_steps=num_sampling_steps if num_sampling_steps is not None else d["num_sampling_steps"],
            guidance_scale=guidance_scale if guidance_scale is not None else d["guidance_scale"],
            guidance_schedule=guidance_schedule or d["guidance_schedule"], solver=solver,
            grid=(h // self.tokenizer.downsample, w // self.tokenizer.downsample),
        )
        opts.check()
        if opts.parallel_num not in self.generator.config.supported_parallel:
            raise ValueError(
                f"parallel_num {opts.parallel_num} not supported by this model; allowed: "
                f"{list(self.generator.config.supported_parallel)}"
            )
        items = [x for x in (prompts or labels or []) for _ in range(num_images_per_prompt)]
        count = len(items)
        seeds, rng = self._seeds(seed, generator, count)
        verdicts = self._filter(prompts)
        cond: Condition
        if prompts is not None:
            cond = self.encode_prompt(items)  # type: ignore[arg-type]
        else:
            cond = torch.tensor(items, dtype=torch.long, device=self.device)
        neg = None
        if negative_prompt is not None and prompts is not None:
            negs = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
            neg = self.encode_prompt([n for n in negs for _ in range(num_images_per_prompt)] if all(negs) else
                                     [n or " " for n in negs for _ in range(num_images_per_prompt)])
        start = time.perf_counter()

        def on_step(step: int, total: int, partial: torch.Tensor) -> None:
            if callback is not None:
                el = time.perf_counter() - start
                callback({"step": step, "total": total, "elapsed": el, "eta": el / step * (total - step),
                          "partial_bits": partial})

        bits = generate_bits(self.generator, cond, opts, rng, known=known, callback=on_step, negative=neg)
        settings = {
            "model": self.name, "model_hash": self.model_hash, "height": h, "width": w,
            "num_sampling_steps": opts.num_sampling_steps, "guidance_scale": opts.guidance_scale,
            "guidance_schedule": opts.guidance_schedule, "parallel_num": opts.parallel_num, "solver": solver,
            "bitdance_version": __version__,
        }
        if output_type == "bits":
            return PipelineOutput(bits, seeds, bits, verdicts, settings)
        images = self.decode(bits, seeds)
        if output_type == "pt":
            out: Any = images
        elif output_type == "np":
            out = tensor_to_uint8(images)
        else:
            out = [Image.fromarray(a) for a in tensor_to_uint8(images)]
        return PipelineOutput(out, seeds, bits, verdicts, settings)

    def _seeds(self, seed: Any, generator: Any, count: int) -> tuple[list[int | None], RandomSource]:
        if generator is not None and seed is not None:
            raise ValueError("pass either seed or generator, not both")
        if generator is not None:
            if isinstance(generator, torch.Generator):
                return [None] * count, GeneratorSource(generator)
            gens = list(generator)
            if len(gens) != count or not all(isinstance(g, torch.Generator) for g in gens):
                raise ValueError(f"generator must be one torch.Generator or a list of {count} (one per image)")
            return [None] * count, PerItemSource(gens)
        if seed is None:
            seed = 0
        if isinstance(seed, (list, tuple)):
            seeds = list(seed)
            if len(seeds) != count:
                raise ValueError(f"seed list has {len(seeds)} entries; {count} images requested")
        else:
            seeds = [seed + i for i in range(count)] if isinstance(seed, int) and not isinstance(seed, bool) else [seed]
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63:
                raise ValueError(f"seed must be an integer in [0, 2^63), got {s!r}")
        gens = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        return seeds, PerItemSource(gens)

    def _filter(self, prompts: list[str] | None) -> list[Any]:
        if self.safety is None or prompts is None:
            return []
        verdicts = [self.safety.check(p) for p in prompts]
        for v in verdicts:
            if not v.allowed:
                raise ValueError(f"prompt refused by the content filter: {v.reason}")
        return verdicts
