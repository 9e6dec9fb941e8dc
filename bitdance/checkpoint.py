"""save_pretrained / from_pretrained: <folder>/config.json + <folder>/model.safetensors per component.

Loading never unpickles. Missing, unexpected and mis-shaped tensors are reported by name.
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .core.atomic import (
    atomic_folder,
    atomic_write_bytes,
    atomic_write_with,
    default_file_mode,  # noqa: F401  (re-exported for older call sites)
)
from .core.configs import GeneratorConfig, TokenizerConfig
from .core.init_free import adopt_state, build_on_meta
from .core.int8 import SCHEMES, int8_module

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
QUANT_FORMAT = 1
# Layers whose `.weight.dtype` the model code reads: never quantized, whatever the patterns say.
KEEP_FLOAT: tuple[str, ...] = ("proj_in.w1", "text_proj", "head.net.time_embed.mlp.0", "decoder.conv_in")


class CheckpointError(ValueError):
    """A weights folder/file that cannot be loaded; the message names the problem."""


def component_kinds() -> dict[str, tuple[type, type]]:
    """kind name -> (config class, module class) of the savable components."""
    from .generator.transformer import BitDanceTransformer
    from .tokenizer.autoencoder import BinaryAutoencoder

    return {
        "tokenizer": (TokenizerConfig, BinaryAutoencoder),
        "generator": (GeneratorConfig, BitDanceTransformer),
    }


def kind_of(module: nn.Module) -> str:
    for kind, (_, cls) in component_kinds().items():
        if isinstance(module, cls):
            return kind
    raise TypeError(f"cannot save {type(module).__name__}: not a BitDance component")


def save_state_dict(
    state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Atomic safetensors write (tensors made contiguous and de-aliased)."""
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    atomic_write_with(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def save_pretrained(
    module: nn.Module, folder: str | os.PathLike, extra: dict[str, Any] | None = None
) -> Path:
    """Write config.json (with `kind`) and model.safetensors for a tokenizer or generator; the folder is
    replaced atomically (``core.atomic.atomic_folder``), never left half-written."""
    folder = Path(folder)
    kind = kind_of(module)
    quant = getattr(module, "quantization", None)
    config = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        **module.config.to_dict(),
        **({"quantization": quant} if quant else {}),
        **(extra or {}),
    }
    with atomic_folder(folder, keep_others=True) as tmp:  # other files in the folder are kept
        save_state_dict(module.state_dict(), tmp / WEIGHTS_NAME, metadata={"kind": kind})
        atomic_write_bytes(tmp / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a component folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a truncated or corrupt file raises CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"weights file {path} is truncated or corrupt ({e})") from None


def load_into(
    module: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint", assign: bool = False
) -> None:
    """Strict load with one error listing every missing, unexpected and mis-shaped key.

    assign: `module` was built on the meta device (`core.init_free`) and takes `state`'s tensors as its own.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:10]))
    if problems:
        raise CheckpointError(f"{source} does not match the model: " + " | ".join(problems))
    if assign:
        adopt_state(module, state)
    else:
        module.load_state_dict(state, strict=True)


def from_pretrained(
    folder: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
):
    """Build the component described by <folder>/config.json and load <folder>/model.safetensors."""
    folder = Path(folder)
    config = read_config(folder)
    kind = config.get("kind")
    kinds = component_kinds()
    if kind not in kinds:
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: unknown component kind {kind!r}; allowed: {sorted(kinds)}"
        )
    if "quantization" in config:
        return load_quantized(folder, config, device)
    cfg_cls, mod_cls = kinds[kind]
    try:
        cfg = cfg_cls.from_dict({k: v for k, v in config.items() if k not in ("kind", "format_version")})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: invalid {kind} config: {e}") from None
    state = load_weights(folder / WEIGHTS_NAME)
    module = build_on_meta(lambda: mod_cls(cfg))  # every weight comes from the file: no random init
    load_into(module, state, source=str(folder / WEIGHTS_NAME), assign=True)
    module.to(device=device, dtype=dtype) if dtype is not None else module.to(device)
    return module.eval()


# ----------------------------------------------------------------------------- int8 components
# A quantized component folder's config carries a `quantization` entry (see quantization/model.py, which
# writes them); loading one lives here so that from_pretrained needs nothing above this layer.


def swap_int8_modules(model: nn.Module, names: Sequence[str], scheme: str, with_weights: bool) -> None:
    lookup = dict(model.named_modules())
    for name in names:
        if name not in lookup:
            raise CheckpointError(f"quantized module {name!r} does not exist in this architecture")
        if name in KEEP_FLOAT:
            raise ValueError(f"layer {name!r} must stay float (the model reads its weight dtype)")
        parent_name, _, child = name.rpartition(".")
        parent = lookup[parent_name] if parent_name else model
        setattr(parent, child, int8_module(scheme, lookup[name], with_weights))


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
        swap_int8_modules(module, entry["modules"], entry["scheme"], with_weights=False)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    release_freed_memory()
    module = module.to(device)
    load_into(module, load_weights(folder / WEIGHTS_NAME), source=str(folder / WEIGHTS_NAME))
    module.quantization = dict(entry)  # type: ignore[assignment]
    return module.eval()
