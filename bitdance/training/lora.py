"""LoRA adapters for the generator through the `peft` library.

`add_lora(generator, rank)` wraps a BitDanceTransformer in a `peft.PeftModel` (only adapter weights train);
`save_adapter` writes ``adapter_config.json`` + ``adapter_model.safetensors`` (peft's format) plus
``bitdance_adapter.json`` (base generator hash and config); `load_lora(pipeline, adapter_dir)` applies an
adapter to a loaded pipeline, merged into the weights (default) or kept as a peft wrapper.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.atomic import atomic_folder

# Backbone attention + SwiGLU projections, the text projection (the prompt pathway of new captions) and the
# diffusion head's condition embedding, attention and MLP projections.
DEFAULT_TARGETS = (
    r".*(layers\.\d+\.(attention\.(wqkv|wo)|feed_forward\.(w1|w2))|text_proj"
    r"|head\.net\.(cond_embed|res_blocks\.\d+\.(attn\.(wqkv|wo)|w1|w2)))"
)
META_NAME = "bitdance_adapter.json"
INSTALL_HINT = "pip install peft  (it needs torch, which is already installed)"


def _peft():  # noqa: ANN202
    try:
        import peft
    except ImportError:
        raise ValueError(f"LoRA needs the `peft` library: {INSTALL_HINT}") from None
    return peft


def generator_hash(generator: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in generator.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def add_lora(
    generator: nn.Module,
    rank: int = 8,
    alpha: float | None = None,
    targets: str | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """Return a peft.PeftModel around `generator` with LoRA on `targets` (regex over module names)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"--lora-rank must be an integer >= 1, got {rank!r}")
    peft = _peft()
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        target_modules=targets or DEFAULT_TARGETS,
        lora_dropout=dropout,
        bias="none",
    )
    try:
        model = peft.get_peft_model(generator, config)
    except ValueError as e:
        raise ValueError(f"--lora-targets {targets or DEFAULT_TARGETS!r} matched no layer ({e})") from None
    return model


def adapter_parameters(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


def save_adapter(
    peft_model: nn.Module, folder: str | os.PathLike, base_hash: str, extra: dict | None = None
) -> Path:
    """peft's adapter files + our metadata, written into a temp folder then renamed into place."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        peft_model.save_pretrained(str(tmp))
        base = peft_model.get_base_model()
        meta = {
            "format": "bitdance-lora",
            "version": 1,
            "base_generator_hash": base_hash,
            "base_config": base.config.to_dict(),
            "adapter_parameters": adapter_parameters(peft_model),
            **(extra or {}),
        }
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def read_adapter_meta(folder: str | os.PathLike) -> dict[str, Any]:
    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
    meta_path = folder / META_NAME
    return json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}


def load_lora(
    pipeline: Any, adapter_dir: str | os.PathLike, merge: bool = True, strict_base: bool = False
) -> Any:
    """Apply the adapter in `adapter_dir` to `pipeline.generator` (in place) and return the pipeline.

    merge=True folds the low-rank update into the weights (plain BitDanceTransformer, no runtime cost);
    merge=False keeps a peft wrapper (`pipeline.generator.base_model...`) so the adapter can be disabled.
    A base-model hash mismatch raises with strict_base=True and warns otherwise.
    """
    peft = _peft()
    meta = read_adapter_meta(adapter_dir)
    gen = pipeline.generator
    base_cfg = meta.get("base_config")
    if base_cfg is not None and base_cfg != gen.config.to_dict():
        raise ValueError(f"adapter {adapter_dir} was trained on a different generator architecture")
    want = meta.get("base_generator_hash")
    if want and want != generator_hash(gen):
        msg = (
            f"adapter {adapter_dir} was trained on generator {want}, this pipeline's is {generator_hash(gen)}"
        )
        if strict_base:
            raise ValueError(msg)
        import warnings

        warnings.warn(msg, stacklevel=2)
    model = peft.PeftModel.from_pretrained(gen, str(adapter_dir))
    if merge:
        model = model.merge_and_unload()
        model.eval()
        pipeline.generator = model
    else:
        model.eval()
        pipeline.generator = _PeftGenerator(model)
    pipeline.model_hash = pipeline._hash()
    return pipeline


class _PeftGenerator(nn.Module):
    """Keeps the peft wrapper but exposes the generator's interface (config, forward, attributes)."""

    def __init__(self, peft_model: nn.Module) -> None:
        super().__init__()
        self.peft_model = peft_model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.peft_model.get_base_model(), name)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.peft_model.get_base_model()(*args, **kwargs)
