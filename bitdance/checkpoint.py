"""save_pretrained / from_pretrained: <folder>/config.json + <folder>/model.safetensors per component.

Loading never unpickles. Missing, unexpected and mis-shaped tensors are reported by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .configs import GeneratorConfig, TokenizerConfig
from .core.atomic import (
    atomic_folder,
    atomic_write_bytes,
    atomic_write_with,
    default_file_mode,  # noqa: F401  (re-exported for older call sites)
)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


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


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load with one error listing every missing, unexpected and mis-shaped key."""
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
        from .quantization import load_quantized

        return load_quantized(folder, config, device)
    cfg_cls, mod_cls = kinds[kind]
    try:
        cfg = cfg_cls.from_dict({k: v for k, v in config.items() if k not in ("kind", "format_version")})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: invalid {kind} config: {e}") from None
    module = mod_cls(cfg)
    load_into(module, load_weights(folder / WEIGHTS_NAME), source=str(folder / WEIGHTS_NAME))
    module.to(device=device, dtype=dtype) if dtype is not None else module.to(device)
    return module.eval()
