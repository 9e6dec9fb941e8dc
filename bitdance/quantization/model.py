"""Quantize BitDance components, save them as safetensors + config.json, and load them back.

A quantized component folder is an ordinary one (`config.json` + `model.safetensors`) whose config carries
    "quantization": {"scheme": ..., "modules": [dotted names], "library": ..., "format": 1}
and whose safetensors file holds, for every listed module, `weight_int8`, `weight_scale` (and `bias`)
instead of `weight` (see `int8.py`). Nothing is pickled. `load_quantized` rebuilds the architecture,
swaps in empty int8 layers (freeing the fp32 ones) and then loads the int8 tensors.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    component_kinds,
    from_pretrained,
    load_into,
    load_weights,
    read_config,
    save_pretrained,
)
from ..core.atomic import atomic_folder
from .int8 import SCHEMES, check_scheme, int8_module

QUANT_FORMAT = 1
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
# Layers whose `.weight.dtype` the model code reads: never quantized, whatever the patterns say.
KEEP_FLOAT: tuple[str, ...] = ("proj_in.w1", "text_proj", "head.net.time_embed.mlp.0", "decoder.conv_in")
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


def _swap(model: nn.Module, names: Sequence[str], scheme: str, with_weights: bool) -> None:
    lookup = dict(model.named_modules())
    for name in names:
        if name not in lookup:
            raise CheckpointError(f"quantized module {name!r} does not exist in this architecture")
        if name in KEEP_FLOAT:
            raise ValueError(f"layer {name!r} must stay float (the model reads its weight dtype)")
        parent_name, _, child = name.rpartition(".")
        parent = lookup[parent_name] if parent_name else model
        setattr(parent, child, int8_module(scheme, lookup[name], with_weights))


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
        _swap(model, list(modules), scheme, with_weights=True)
    info = {
        "scheme": scheme,
        "modules": list(modules),
        "library": library_note(scheme),
        "format": QUANT_FORMAT,
    }
    model.quantization = info  # type: ignore[assignment]
    return info


def check_quantization_entry(entry: Any, where: str) -> dict[str, Any]:
    """Validate the `quantization` entry of a config.json; unknown schemes are refused by name."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: 'quantization' must be an object, got {entry!r}")
    scheme = entry.get("scheme")
    if scheme not in SCHEMES:
        raise CheckpointError(
            f"{where}: quantization scheme {scheme!r} is not supported by this version of bitdance; "
            f"supported: {list(SCHEMES)}"
        )
    if entry.get("format", QUANT_FORMAT) != QUANT_FORMAT:
        raise CheckpointError(
            f"{where}: quantization format {entry.get('format')!r}; supported: [{QUANT_FORMAT}]"
        )
    modules = entry.get("modules")
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise CheckpointError(f"{where}: quantization 'modules' must be a non-empty list of layer names")
    return entry


def release_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the OS (the replaced fp32 layers); no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load_quantized(folder: Path, config: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Build a quantized component from <folder>/config.json (already parsed) + model.safetensors."""
    folder = Path(folder)
    where = str(folder / CONFIG_NAME)
    entry = check_quantization_entry(config.get("quantization"), where)
    kind = config.get("kind")
    kinds = component_kinds()
    if kind not in kinds:
        raise CheckpointError(f"{where}: unknown component kind {kind!r}; allowed: {sorted(kinds)}")
    device = torch.device(device)
    if entry["scheme"] == "int8-dynamic" and device.type != "cpu":
        raise CheckpointError(
            f"{where}: scheme int8-dynamic runs on CPU only (PyTorch's quantized CPU kernels); "
            f"on {device.type} quantize with int8-weight-only"
        )
    cfg_cls, mod_cls = kinds[kind]
    skip = ("kind", "format_version", "quantization")
    try:
        cfg = cfg_cls.from_dict({k: v for k, v in config.items() if k not in skip})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid {kind} config: {e}") from None
    # Built on CPU and swapped right away: the replaced fp32 layers are freed before the weights load.
    # (The meta device would avoid that transient, but building there imports ~70 MiB of sympy/dynamo.)
    module = mod_cls(cfg)
    try:
        _swap(module, entry["modules"], entry["scheme"], with_weights=False)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    release_freed_memory()
    module = module.to(device)
    load_into(module, load_weights(folder / WEIGHTS_NAME), source=str(folder / WEIGHTS_NAME))
    module.quantization = dict(entry)  # type: ignore[assignment]
    return module.eval()


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
