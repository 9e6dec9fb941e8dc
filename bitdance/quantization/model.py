"""Quantize BitDance components, save them as safetensors + config.json, and load them back.

A quantized component folder is an ordinary one (`config.json` + `model.safetensors`) whose config carries
    "quantization": {"scheme": ..., "modules": [dotted names], "library": ..., "format": 1}
and whose safetensors file holds, for every listed module, `weight_int8`, `weight_scale` (and `bias`)
instead of `weight` (see `int8.py`). Nothing is pickled. `load_quantized` rebuilds the architecture,
swaps in empty int8 layers (freeing the fp32 ones) and then loads the int8 tensors.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import (
    KEEP_FLOAT,
    QUANT_FORMAT,
    from_pretrained,
    load_quantized,
    read_config,
    save_pretrained,
    swap_int8_modules,
)
from ..core.atomic import atomic_folder
from ..core.int8 import check_scheme

# Linear layers of the backbone blocks and of the diffusion head that run every AR step / every NFE.
# Left fp32: embeddings, norms, the 16-bit-wide input/output layers (proj_in, head input_proj and
# final_layer.linear: tiny and closest to the bits), text_proj and the time MLP (run once per call /
# cheap, and read for their weight dtype by the model code).
GENERATOR_PATTERNS: tuple[str, ...] = (
    "layers.*.attention.wqkv",
    "layers.*.attention.wo",
    "layers.*.feed_forward.w1",
    "layers.*.feed_forward.w2",
    "head.net.cond_embed",
    "head.net.res_blocks.*",
    "head.net.ada_ln_blocks.*",
    "head.net.final_layer.ada_ln_modulation",
)
# Tokenizer decoder convolutions (opt-in, weight-only): everything but the first and last conv.
DECODER_PATTERNS: tuple[str, ...] = ("decoder.mid_block.*", "decoder.up.*")
# Tokenizer encoder convolutions (opt-in, weight-only; used by editing only): all but conv_in and the
# conv_out whose signs are the bits.
ENCODER_PATTERNS: tuple[str, ...] = ("encoder.down.*", "encoder.mid_block.*")


def library_note(scheme: str) -> str:
    if scheme == "int8-dynamic":
        engine = torch.backends.quantized.engine
        return (
            f"torch {torch.__version__} quantized CPU kernels (torch.ops.quantized.linear_dynamic, {engine})"
        )
    return f"torch {torch.__version__} (int8 storage, widened to fp32 on use)"


def select_modules(model: nn.Module, patterns: Sequence[str], scheme: str) -> list[str]:
    """Dotted names of the layers matched by `patterns` (fnmatch) that `scheme` can quantize."""
    kinds: tuple[type, ...] = (nn.Linear,) if scheme == "int8-dynamic" else (nn.Linear, nn.Conv2d)
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, kinds) and n not in KEEP_FLOAT and any(fnmatch.fnmatch(n, p) for p in patterns)
    ]
    if not names:
        raise ValueError(f"no {'/'.join(k.__name__ for k in kinds)} layer matches {list(patterns)}")
    return names


def quantize_model(
    model: nn.Module, scheme: str, patterns: Sequence[str] | None = None, modules: Sequence[str] | None = None
) -> dict[str, Any]:
    """Replace layers of `model` in place by int8 layers; returns the `quantization` config entry.

    `modules` (exact names) wins over `patterns`; the default patterns depend on the component kind.
    """
    check_scheme(scheme)
    if getattr(model, "quantization", None):
        raise ValueError("this model is already quantized")
    from ..generator.transformer import BitDanceTransformer

    if modules is None:
        if patterns is None:
            patterns = GENERATOR_PATTERNS if isinstance(model, BitDanceTransformer) else DECODER_PATTERNS
        modules = select_modules(model, patterns, scheme)
    with torch.no_grad():
        swap_int8_modules(model, list(modules), scheme, with_weights=True)
    info = {
        "scheme": scheme,
        "modules": list(modules),
        "library": library_note(scheme),
        "format": QUANT_FORMAT,
    }
    model.quantization = info  # type: ignore[assignment]
    return info


def save_quantized(module: nn.Module, folder: str | os.PathLike) -> Path:
    """Write a quantized component folder (config.json with its `quantization` entry + safetensors)."""
    entry = getattr(module, "quantization", None)
    if not entry:
        raise ValueError("module is not quantized; call quantize_model first")
    return save_pretrained(module, folder, extra={"quantization": entry})


def quantize_pipeline(
    pipe: Any,
    scheme: str,
    decoder: str = "fp32",
    patterns: Sequence[str] | None = None,
    encoder: str = "fp32",
) -> Any:
    """Quantize a BitDancePipeline's generator in place and, with decoder / encoder 'int8', the tokenizer's
    decoder / encoder convolutions (weight-only). Returns the pipeline."""
    parts = (("decoder", decoder, DECODER_PATTERNS), ("encoder", encoder, ENCODER_PATTERNS))
    for part, choice, _ in parts:
        if choice not in ("fp32", "int8"):
            raise ValueError(f"{part} must be 'fp32' or 'int8', got {choice!r}")
    tok_modules: list[str] = []
    for part, choice, part_patterns in parts:
        if choice != "int8":
            continue
        try:
            tok_modules += select_modules(pipe.tokenizer, part_patterns, "int8-weight-only")
        except ValueError:
            raise ValueError(
                f"this tokenizer has no {part} convolutions to quantize (none match {list(part_patterns)}); "
                f"keep its {part} fp32 (--{part} fp32)"
            ) from None
    quantize_model(pipe.generator, scheme, patterns)
    if tok_modules:
        quantize_model(pipe.tokenizer, "int8-weight-only", modules=tok_modules)
    pipe.model_hash = pipe._hash()
    return pipe


def save_quantized_pipeline(pipe: Any, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a whole pipeline folder; quantized components keep their entry. Built in a temp folder and
    renamed into place, so a failure never leaves a half-written model."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise ValueError(
            f"output folder {folder} exists and is not empty; pass overwrite (--force) to replace it"
        )
    with atomic_folder(folder) as tmp:  # the old folder stays until the new one is complete
        pipe.save_pretrained(tmp)
        for sub, comp in (("generator", pipe.generator), ("tokenizer", pipe.tokenizer)):
            if getattr(comp, "quantization", None):
                save_quantized(comp, tmp / sub)
    return folder


def folder_bytes(folder: str | os.PathLike) -> int:
    """Total size of the files under a folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def load_component(folder: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a component folder, quantized or not."""
    config = read_config(folder)
    if "quantization" in config:
        return load_quantized(Path(folder), config, device)
    return from_pretrained(folder, device=device)


def load_pipeline(folder: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Load a pipeline folder whose components may be quantized (alias of `BitDancePipeline.from_pretrained`,
    which dispatches quantized component configs to `load_quantized` through `checkpoint.from_pretrained`)."""
    from ..pipeline import BitDancePipeline

    return BitDancePipeline.from_pretrained(folder, device=device)
