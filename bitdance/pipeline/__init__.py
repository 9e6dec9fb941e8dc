"""BitDancePipeline: prompt/class encoding -> next-patch generation -> tokenizer decode -> images.

Components are injected (tests build tiny ones); `from_pretrained` builds them from a folder:
    <folder>/model_index.json, <folder>/tokenizer/{config.json, model.safetensors},
    <folder>/generator/{config.json, model.safetensors}
A call runs the content filter on the prompts (mode "block" by default; `bitdance.safety`), samples with
one generator per image, decodes one image at a time, applies the optional post-processing and returns
per-image recipes that `provenance` writes into PNGs (inspect, replay). Editing lives in `editing`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..checkpoint import CheckpointError, atomic_write_bytes, from_pretrained, save_pretrained
from ..core.atomic import atomic_folder
from ..core.configs import TOKENIZER_PRESETS, get_preset
from ..core.random import GeneratorSource, PerItemSource, RandomSource
from ..generator.patches import from_sequence
from ..generator.text_encoder import build_text_encoder, check_prompts
from ..generator.transformer import BitDanceTransformer, Condition, TextCondition
from ..sampling.decode import KnownTokens, SamplingOptions, generate_bits
from ..sampling.presets import SAMPLER_PRESETS, sampler_settings
from ..tokenizer.autoencoder import BinaryAutoencoder
from . import editing
from .postprocess import apply_steps, build_steps
from .provenance import (
    check_model,
    is_marked,
    known_record,
    make_recipe,
    read_recipe,
    replay_arguments,
    save_png,
)
from .shared_encoder import share_with_filter

INDEX_NAME = "model_index.json"
DEFAULT_MODEL = "bitdance-mini"
DEFAULT_SOLVER = "euler_maruyama"  # the `reference` sampler setting: the official sampler
MAX_IMAGES = 64
MAX_PROMPT_CHARS = 2000
OUTPUT_TYPES = ("pil", "np", "pt", "bits")
FILTER_MODES = ("block", "warn", "off")


class PromptTruncatedWarning(UserWarning):
    """A prompt had more text than the model's text length; the message names the ignored words."""


def models_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / "models"


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
        f"model {str(name_or_path)!r} is neither a local folder nor a shipped model; shipped models: "
        f"{names}, or use 'random:<preset>' for random weights (testing)"
    )


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 with the official clamp(127.5 x + 128) mapping."""
    out = torch.clamp(127.5 * images.float() + 128.0, 0, 255).to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class PipelineOutput:
    """images: list[PIL] | (B, H, W, 3) uint8 | (B, 3, H, W) float in [-1, 1] | bits, by `output_type`.

    seeds, verdicts (content-filter Verdict, None for class models) and recipes have one entry per image.
    """

    images: Any
    seeds: list[int | None]
    bits: torch.Tensor  # (B, d, h, w) ±1
    verdicts: list[Any] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    recipes: list[dict[str, Any]] = field(default_factory=list)
    # AI-content marking (XMP, C2PA when configured) on save; False only for the replay of a PNG made before
    # marking existed, so that the replay reproduces that file byte for byte (it never carried the marking)
    marked: bool = True

    def save(self, path: str | os.PathLike, index: int = 0) -> Path:
        """Write image `index` as a PNG carrying its recipe (atomic). Needs output_type 'pil' or 'np'."""
        img = self.images[index]
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        if not isinstance(img, Image.Image):
            raise ValueError("save() needs output_type='pil' or 'np'")
        return save_png(img, path, self.recipes[index], mark=self.marked)


ProgressCallback = Callable[[dict[str, Any]], None]


class BitDancePipeline(editing.EditingMixin):
    """Generate images from prompts (text models) or class labels (class-conditional models)."""

    def __init__(
        self,
        tokenizer: BinaryAutoencoder,
        generator: BitDanceTransformer,
        text_encoder: torch.nn.Module | None = None,
        defaults: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        name: str = "custom",
        safety: Any = None,
        filter_mode: str = "block",
    ) -> None:
        self.tokenizer = tokenizer.eval()
        self.generator = generator.eval()
        self.text_encoder = text_encoder
        self.defaults = {
            "num_sampling_steps": 20,
            "guidance_scale": 1.0,
            "guidance_schedule": "constant",
            "parallel_num": generator.config.parallel_num,
            **(defaults or {}),
        }
        self.class_names = class_names
        self.name = name
        self.safety = safety  # ContentFilter-like (.check(prompt) -> Verdict); None: built-in rules
        self.filter_mode = _check_filter_mode(filter_mode)
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
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        filter_mode: str = "block",
        safety: Any = None,
    ) -> BitDancePipeline:
        """Load a pipeline folder or shipped model by name; 'random:<preset>' builds random weights."""
        if str(name_or_path).startswith("random:"):
            preset = str(name_or_path).split(":", 1)[1]
            return cls.from_preset(preset, device=device, filter_mode=filter_mode, safety=safety)
        folder = resolve_model(name_or_path)
        if safety is None and _check_filter_mode(filter_mode) != "off":
            from ..safety import ContentFilter  # noqa: PLC0415

            ContentFilter(None, filter_mode).warm_up(background=True)  # rules compile while weights load
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
            share_with_filter(te)  # the filter's semantic layer embeds with this MiniLM: no second copy
        return cls(
            tok,
            gen,
            te,
            index.get("defaults"),
            index.get("class_names"),
            name=folder.name,
            safety=safety,
            filter_mode=filter_mode,
        )

    @classmethod
    def from_preset(
        cls,
        preset: str,
        device: str | torch.device = "cpu",
        seed: int = 0,
        filter_mode: str = "block",
        safety: Any = None,
    ) -> BitDancePipeline:
        """Random-weight pipeline from generator/tokenizer presets (for tests and smoke runs)."""
        torch.manual_seed(seed)
        gcfg = get_preset("generator", preset)
        tok_preset = preset if preset in TOKENIZER_PRESETS else "tiny"
        tcfg = dataclasses.replace(get_preset("tokenizer", tok_preset), z_channels=gcfg.latent_bits)
        te = None
        if gcfg.cond_type == "text":
            te = build_text_encoder("hash", dim=gcfg.text_dim, max_len=gcfg.text_len)
        return cls(
            BinaryAutoencoder(tcfg).to(device),
            BitDanceTransformer(gcfg).to(device),
            te,
            name=f"random:{preset}",
            safety=safety,
            filter_mode=filter_mode,
        )

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        with atomic_folder(folder, keep_others=True) as tmp:  # complete old or new folder, never a mix
            self._write_folder(tmp)
        return Path(folder)

    def _write_folder(self, folder: Path) -> None:
        save_pretrained(self.tokenizer, folder / "tokenizer")
        save_pretrained(self.generator, folder / "generator")
        te = None
        if self.text_encoder is not None:
            te = {"name": self.text_encoder.name, "max_len": self.text_encoder.max_len}
            if te["name"] == "hash":
                te["dim"] = self.text_encoder.dim
        index = {
            "format": "bitdance-pipeline",
            "version": 1,
            "tokenizer": "tokenizer",
            "generator": "generator",
            "text_encoder": te,
            "defaults": self.defaults,
            "class_names": self.class_names,
        }
        atomic_write_bytes(folder / INDEX_NAME, (json.dumps(index, indent=2) + "\n").encode())

    def _hash(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for m in (self.tokenizer, self.generator):
            for k, v in m.state_dict().items():
                h.update(k.encode())
                h.update(memoryview(v.detach().float().cpu().contiguous().numpy()).cast("B"))  # no copy
        return h.hexdigest()[:12]

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.generator.norm.weight.device

    @property
    def is_text(self) -> bool:
        """True for text-to-image models (prompts), False for class-conditional ones."""
        return self.generator.config.cond_type == "text"

    @property
    def supported_sizes(self) -> list[tuple[int, int]]:
        """(height, width) pairs this model can generate."""
        cfg, f = self.generator.config, self.tokenizer.downsample
        if cfg.head_pos == "learned":
            return [(cfg.grid_size[0] * f, cfg.grid_size[1] * f)]
        side = max(int(math.isqrt(p)) for p in cfg.supported_parallel)
        base = cfg.grid_size
        rows, cols = range(side, 2 * base[0] + 1, side), range(side, 2 * base[1] + 1, side)
        return sorted({(h * f, w * f) for h in rows for w in cols})

    @property
    def default_size(self) -> tuple[int, int]:
        g, f = self.generator.config.grid_size, self.tokenizer.downsample
        return (g[0] * f, g[1] * f)

    # ------------------------------------------------------------------ content filter
    def content_filter(self, mode: str | None = None) -> Any:
        """The injected filter, or the built-in rules in `mode` (default: `filter_mode`)."""
        from ..safety import ContentFilter  # noqa: PLC0415

        mode = _check_filter_mode(mode or self.filter_mode)
        if self.safety is not None and mode == getattr(self.safety, "mode", mode):
            return self.safety
        return ContentFilter(getattr(self.safety, "rules", None), mode)

    def check_prompts_filter(self, prompts: Sequence[str], mode: str | None = None) -> list[Any]:
        """Verdicts for `prompts`; a blocked one raises PromptBlockedError (ValueError) naming the rule."""
        from ..safety import PromptBlockedError  # noqa: PLC0415

        flt = self.content_filter(mode)
        verdicts = [flt.check(p) for p in prompts]
        for i, v in enumerate(verdicts):
            if not v.allowed:
                err = PromptBlockedError(v)
                which = f"prompt {i} " if len(prompts) > 1 else "prompt "
                err.args = (f"{which}refused by the content filter: {v.reason}",)
                raise err
        return verdicts

    # ------------------------------------------------------------------ validation
    def check_inputs(
        self,
        prompt: Any,
        class_labels: Any,
        height: Any,
        width: Any,
        num_images_per_prompt: Any,
        output_type: str,
        negative_prompt: Any,
    ) -> tuple[list[str] | None, list[int] | None, tuple[int, int]]:
        cfg = self.generator.config
        prompts = labels = None
        if cfg.cond_type == "text":
            if prompt is None:
                raise ValueError("this is a text-to-image model: pass prompt=...")
            if class_labels is not None:
                raise ValueError("class_labels is for class-conditional models; this model takes prompts")
            prompts = check_prompts(prompt, MAX_PROMPT_CHARS)
            if negative_prompt is not None:
                negs = negative_prompt
                if isinstance(negative_prompt, str):
                    negs = [negative_prompt] * len(prompts)
                if (
                    not isinstance(negs, (list, tuple))
                    or len(negs) != len(prompts)
                    or not all(isinstance(n, str) and len(n) <= MAX_PROMPT_CHARS for n in negs)
                ):
                    raise ValueError("negative_prompt must be a string or a list of strings, one per prompt")
        else:
            if prompt is not None:
                raise ValueError("this is a class-conditional model: pass class_labels=... (not prompts)")
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
        return prompts, labels, self.check_size(height, width)

    def check_size(self, height: Any, width: Any) -> tuple[int, int]:
        """(height, width), None -> native size; an unsupported size raises ValueError listing the allowed."""
        sizes = self.supported_sizes
        h = self.default_size[0] if height is None else height
        w = self.default_size[1] if width is None else width
        if isinstance(h, bool) or isinstance(w, bool) or (h, w) not in sizes:
            shown = ", ".join(f"{a}x{b}" for a, b in sizes[:12]) + (" ..." if len(sizes) > 12 else "")
            raise ValueError(
                f"unsupported size {height}x{width} (height x width); this model supports: {shown}"
            )
        return h, w

    def resolve_settings(
        self,
        height: int | None = None,
        width: int | None = None,
        num_sampling_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_schedule: str | None = None,
        parallel_num: int | None = None,
        solver: str | None = None,
        upscale: int | None = None,
        upscale_method: str = "lanczos",
        color: str | None = None,
        sampler: str | None = None,
    ) -> dict[str, Any]:
        """Validated settings with defaults filled in: exactly what a call with these arguments records.

        `sampler` names a setting of `bitdance.sampling.presets` (reference, fast-exact, fast, fast4) and
        fixes the solver and head steps; without it the solver is `solver` or "euler_maruyama" (the
        `reference` setting) with the model's steps. The recipe records the resolved solver and steps.
        """
        h, w = self.check_size(height, width)
        d = self.defaults
        solver, num_sampling_steps = self._sampler_choice(sampler, solver, num_sampling_steps)

        def pick(value: Any, key: str) -> Any:
            return d[key] if value is None else value

        opts = SamplingOptions(
            parallel_num=pick(parallel_num, "parallel_num"),
            num_sampling_steps=pick(num_sampling_steps, "num_sampling_steps"),
            guidance_scale=pick(guidance_scale, "guidance_scale"),
            guidance_schedule=guidance_schedule or d["guidance_schedule"],
            solver=solver,
        )
        opts.check()
        if opts.parallel_num not in self.generator.config.supported_parallel:
            raise ValueError(
                f"parallel_num {opts.parallel_num} not supported by this model; allowed: "
                f"{list(self.generator.config.supported_parallel)}"
            )
        return {
            "model": self.name,
            "model_hash": self.model_hash,
            "height": h,
            "width": w,
            "num_sampling_steps": opts.num_sampling_steps,
            "guidance_scale": float(opts.guidance_scale),
            "guidance_schedule": opts.guidance_schedule,
            "parallel_num": opts.parallel_num,
            "solver": solver,
            "postprocess": build_steps(upscale, upscale_method, color),
            "bitdance_version": __version__,
        }

    def _sampler_choice(self, sampler: Any, solver: Any, steps: Any) -> tuple[str, int | None]:
        """(solver, head steps or None for the model's) of a call's sampler / solver / steps arguments."""
        if sampler is None:
            return DEFAULT_SOLVER if solver is None else solver, steps
        if solver is not None or steps is not None:
            raise ValueError(
                "give either sampler=NAME or solver / num_sampling_steps, not both (a sampler setting "
                f"fixes both; allowed settings: {', '.join(SAMPLER_PRESETS)})"
            )
        kw = sampler_settings(sampler, self.defaults["num_sampling_steps"])
        return kw["solver"], kw["num_sampling_steps"]

    def _class_index(self, c: int | str) -> int:
        n = self.generator.config.num_classes
        if isinstance(c, str):
            if not self.class_names or c not in self.class_names:
                known = self.class_names or "none (use integers)"
                raise ValueError(f"unknown class name {c!r}; known: {known}")
            return self.class_names.index(c)
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n:
            raise ValueError(f"class label must be an integer in 0..{n - 1}, got {c!r}")
        return c

    # ------------------------------------------------------------------ stages
    def encode_prompt(self, prompts: list[str]) -> TextCondition:
        assert self.text_encoder is not None
        dropped = getattr(self.text_encoder, "dropped_text", None)
        for i, p in enumerate(prompts if dropped is not None else []):
            rest = dropped(p)
            if rest:
                warnings.warn(
                    f"prompt {i} is longer than the model's {self.text_encoder.max_len} text tokens; "
                    f"ignored: {rest!r}",
                    PromptTruncatedWarning,
                    stacklevel=3,
                )
        c = self.text_encoder(prompts)
        return TextCondition(c.states.to(self.device), c.mask.to(self.device))

    def decode(self, bits: torch.Tensor, seeds: Sequence[int | None]) -> torch.Tensor:
        """Decode one image at a time so an image never depends on its batch position."""
        out = []
        for i in range(bits.shape[0]):
            g = None
            if self.tokenizer.config.gan_decoder:
                g = torch.Generator(device=self.device).manual_seed((seeds[i] or 0) + 1)
            # one memory layout for every image: a channels-last slice of a larger batch (its batch stride
            # differs from a batch of one) can take another conv kernel and change the last float bit
            one = bits[i : i + 1].contiguous()
            out.append(self.tokenizer.decode(one, generator=g))
        return torch.cat(out)

    def preview(self, partial_BNd: torch.Tensor, grid: tuple[int, int], parallel_num: int) -> list[Any]:
        """Decode the tokens made so far (generation order); unfilled tokens are 0, between -1 and +1."""
        b, k, d = partial_BNd.shape
        seq = torch.zeros(b, grid[0] * grid[1], d, device=partial_BNd.device)
        seq[:, :k] = partial_BNd
        bits = from_sequence(seq, grid, parallel_num).to(self.tokenizer.decoder.conv_in.weight.dtype)
        out = []
        for i in range(b):  # the decoder directly: check_bits would refuse the neutral 0
            one = bits[i : i + 1].contiguous()  # same layout for every image, as in decode()
            noise = torch.zeros_like(one) if self.tokenizer.config.gan_decoder else None
            out.append(Image.fromarray(tensor_to_uint8(self.tokenizer.decoder(one, noise))[0]))
        return out

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        class_labels: Any = None,
        negative_prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_images_per_prompt: int = 1,
        num_sampling_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_schedule: str | None = None,
        parallel_num: int | None = None,
        seed: int | list[int] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        callback: ProgressCallback | None = None,
        solver: str | None = None,
        known: KnownTokens | None = None,
        filter_mode: str | None = None,
        preview_every: int | None = None,
        upscale: int | None = None,
        upscale_method: str = "lanczos",
        color: str | None = None,
        sampler: str | None = None,
    ) -> PipelineOutput:
        """Generate images. Seeds: `seed` (int: image i uses seed + i; or one per image) or `generator`.

        With seeds (the default, seed 0) every image has its own generator, so an image is identical
        whether generated alone or inside a batch. `callback(dict)` gets step, total, elapsed, eta,
        partial_bits (B, k, d) and, every `preview_every` AR steps, `preview` (list of PIL images).
        `known` (bits (1|B, d, h, w), keep (1|B, h, w)) teacher-forces tokens. `filter_mode` overrides
        the pipeline's content-filter mode. `upscale` (2|4), `upscale_method`, `color` ("auto,warm", ...)
        post-process the decoded images; the steps are recorded in the recipes. `sampler` picks a named
        setting of `bitdance.sampling.presets` ("reference", the default, "fast-exact", "fast", "fast4")
        instead of `solver` / `num_sampling_steps`; the recipes record the solver and steps it stands for.
        """
        kw = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        return self._generate(**kw)

    def _generate(
        self,
        *,
        prompt: Any,
        class_labels: Any,
        negative_prompt: Any,
        height: Any,
        width: Any,
        num_images_per_prompt: Any,
        num_sampling_steps: Any,
        guidance_scale: Any,
        guidance_schedule: Any,
        parallel_num: Any,
        seed: Any,
        generator: Any,
        output_type: str,
        callback: ProgressCallback | None,
        solver: str | None,
        known: KnownTokens | None,
        filter_mode: str | None,
        preview_every: Any,
        upscale: Any,
        upscale_method: str,
        color: Any,
        edit_info: dict[str, Any] | None = None,
        sampler: str | None = None,
    ) -> PipelineOutput:
        prompts, labels, (h, w) = self.check_inputs(
            prompt, class_labels, height, width, num_images_per_prompt, output_type, negative_prompt
        )
        settings = self.resolve_settings(
            h,
            w,
            num_sampling_steps,
            guidance_scale,
            guidance_schedule,
            parallel_num,
            solver,
            upscale,
            upscale_method,
            color,
            sampler,
        )
        if settings["postprocess"] and output_type == "bits":
            raise ValueError("post-processing (upscale / color) needs images, not output_type='bits'")
        pe = preview_every
        if pe is not None and (isinstance(pe, bool) or not isinstance(pe, int) or pe < 1):
            raise ValueError(f"preview_every must be a positive integer (AR steps) or None, got {pe!r}")
        grid = (h // self.tokenizer.downsample, w // self.tokenizer.downsample)
        s = settings
        opts = SamplingOptions(
            s["parallel_num"],
            s["num_sampling_steps"],
            s["guidance_scale"],
            s["guidance_schedule"],
            s["solver"],
            grid,
            bool(self.defaults.get("independent_unguided_streams", False)),
        )
        n = num_images_per_prompt
        items = [x for x in (prompts or labels or []) for _ in range(n)]
        count = len(items)
        seeds, rng = self._seeds(seed, generator, count)
        known = editing.expand_known(known, count)
        negs: list[str | None] = [None] * count
        if negative_prompt is not None and prompts is not None:
            per = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
            negs = [x for x in per for _ in range(n)]
        verdicts: list[Any] = [None] * count
        if prompts is not None:  # the filter runs before any work; a blocked prompt raises here
            mode = settings["filter_mode"] = _check_filter_mode(filter_mode or self.filter_mode)
            verdicts = [v for v in self.check_prompts_filter(prompts, mode) for _ in range(n)]
        cond: Condition
        if prompts is not None:
            cond = self.encode_prompt(items)  # type: ignore[arg-type]
        else:
            cond = torch.tensor(items, dtype=torch.long, device=self.device)
        neg = self.encode_prompt([x or " " for x in negs]) if any(x is not None for x in negs) else None
        start = time.perf_counter()

        def on_step(step: int, total: int, partial: torch.Tensor) -> None:
            if callback is not None:
                el = time.perf_counter() - start
                info = {
                    "step": step,
                    "total": total,
                    "elapsed": el,
                    "eta": el / step * (total - step),
                    "partial_bits": partial,
                }
                if preview_every is not None and (step % preview_every == 0 or step == total):
                    info["preview"] = self.preview(partial, grid, opts.parallel_num)  # type: ignore[arg-type]
                callback(info)

        bits = generate_bits(self.generator, cond, opts, rng, known=known, callback=on_step, negative=neg)
        recipes = []
        for i in range(count):
            label = labels[i // n] if labels is not None else None
            name = self.class_names[label] if label is not None and self.class_names else None
            recipes.append(
                make_recipe(
                    settings,
                    prompt=items[i] if prompts is not None else None,
                    negative_prompt=negs[i],
                    class_label=label,
                    class_name=name,
                    seed=seeds[i],
                    verdict=verdicts[i],
                    edit=edit_info,
                    known=dict(known_record(known.bits[i], known.keep[i]), method=known.method)
                    if known is not None
                    else None,
                )
            )
        if output_type == "bits":
            return PipelineOutput(bits, seeds, bits, verdicts, settings, recipes)
        images = self.decode(bits, seeds)
        arr = tensor_to_uint8(images)
        if settings["postprocess"]:
            arr = np.stack([np.asarray(apply_steps(Image.fromarray(a), s["postprocess"])) for a in arr])
            images = torch.from_numpy(arr).permute(0, 3, 1, 2).float().sub(128.0).div(127.5)
        out: Any = [Image.fromarray(a) for a in arr]
        if output_type in ("np", "pt"):
            out = arr if output_type == "np" else images
        return PipelineOutput(out, seeds, bits, verdicts, settings, recipes)

    # ------------------------------------------------------------------ replay (editing: EditingMixin)
    def replay(
        self,
        recipe_or_png: dict[str, Any] | str | os.PathLike,
        force: bool = False,
        filter_mode: str | None = None,
    ) -> PipelineOutput:
        """Regenerate an image from its recipe (dict or PNG path); a different model hash is refused unless
        `force`. The recorded filter mode is used unless `filter_mode` is given."""
        recipe = recipe_or_png if isinstance(recipe_or_png, dict) else read_recipe(recipe_or_png)
        check_model(recipe, self.model_hash, force)
        kw = replay_arguments(recipe)
        kw["filter_mode"] = filter_mode or (recipe.get("filter") or {}).get("mode") or self.filter_mode
        size = (kw.pop("height"), kw.pop("width"))
        if kw.get("known") is not None:  # recipes from before edit methods were recorded: "substitute"
            kw["known"].method = editing.check_method(recipe["known"].get("method", "substitute"))
        out = self.generate_with_known(
            kw.pop("prompt", None),
            kw.pop("class_labels", None),
            size,
            kw.pop("known", None),
            recipe.get("edit"),
            kw,
        )
        if not isinstance(recipe_or_png, dict):  # a PNG made before marking existed is reproduced as it was
            out.marked = is_marked(recipe_or_png)
        return out

    def _seeds(self, seed: Any, generator: Any, count: int) -> tuple[list[int | None], RandomSource]:
        if generator is not None and seed is not None:
            raise ValueError("pass either seed or generator, not both")
        if generator is not None:
            if isinstance(generator, torch.Generator):
                return [None] * count, GeneratorSource(generator)
            gens = list(generator)
            if len(gens) != count or not all(isinstance(g, torch.Generator) for g in gens):
                raise ValueError(f"generator must be one torch.Generator or a list of {count}, one per image")
            return [None] * count, PerItemSource(gens)
        seed = 0 if seed is None else seed
        if isinstance(seed, (list, tuple)):
            seeds = list(seed)
            if len(seeds) != count:
                raise ValueError(f"seed list has {len(seeds)} entries; {count} images requested")
        else:  # an int: image i uses seed + i (anything else is reported below)
            ok = isinstance(seed, int) and not isinstance(seed, bool)
            seeds = [seed + i for i in range(count)] if ok else [seed]
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63:
                raise ValueError(f"seed must be an integer in [0, 2^63), got {s!r}")
        gens = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        return seeds, PerItemSource(gens)


def _check_filter_mode(mode: Any) -> str:
    if mode not in FILTER_MODES:
        raise ValueError(f"filter mode must be one of {', '.join(FILTER_MODES)}; got {mode!r}")
    return mode
