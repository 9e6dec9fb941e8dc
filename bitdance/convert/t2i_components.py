"""Pieces of the official text-to-image (14B) release other than the LLM.

- `MLPConnector`: bits -> LLM embedding projector (`projector.safetensors`, fc1 -> GELU(tanh) -> fc2).
- the bounded attention diffusion head (`vision_head.safetensors` + `vision_head_config.json`),
- the tokenizer (`ae.safetensors` + `ae_config.json`),
- 2-D sin-cos positions added to image-token inputs and to the head condition,
- the supported size list, special tokens and chat template.
`load_t2i_components` reads either the official folder or our converted one; `convert_t2i_folder`
writes the converted layout.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    from_pretrained,
    load_weights,
    save_pretrained,
    save_state_dict,
)
from ..core.configs import validate_parallel_num
from ..core.layers import sincos_1d, sincos_2d
from ..generator.diffusion_head import DiffusionHead
from ..generator.patches import patch_order
from ..tokenizer.autoencoder import BinaryAutoencoder
from .keymaps import PROJECTOR_RULES, T2I_HEAD_RULES, apply_key_map
from .official_checkpoints import (
    ConversionReport,
    assign_weights,
    load_official_tokenizer,
    on_meta,
    write_provenance,
)

# [H, W] pairs accepted by the official pipeline (reference section 5.4).
_BASE_SIZES = [
    (2048, 512),
    (1920, 512),
    (1536, 640),
    (1280, 768),
    (1152, 896),
    (1024, 1024),
    (1024, 256),
    (896, 256),
    (640, 384),
    (512, 512),
]
IMAGE_SIZE_LIST: tuple[tuple[int, int], ...] = tuple(
    sorted({s for h, w in _BASE_SIZES for s in ((h, w), (w, h))})
)
COND_TEMPLATE = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
UNCOND_PROMPT = "<|im_start|>assistant\n"
VISION_START = "<|vision_start|>"
HEAD_ATTENTION_WIDTH = 128  # the T2I head uses ch_latent // 128 attention heads
OFFICIAL_FILES = (
    "ae.safetensors",
    "ae_config.json",
    "vision_head.safetensors",
    "vision_head_config.json",
    "projector.safetensors",
)
CONVERTED_INDEX = "t2i_config.json"


def res_token(k: int) -> str:
    return f"<|res_{k}|>"


def query_token(k: int) -> str:
    return f"<|query_{k}|>"


class MLPConnector(nn.Module):
    """Bits (..., C) -> LLM input embeddings (..., D): fc2(gelu_tanh(fc1(x)))."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x.to(self.fc1.weight.dtype)), approximate="tanh"))


# ----------------------------------------------------------------------------- positions


def sincos_table(length: int, width: int) -> torch.Tensor:
    """The pipeline's 1-D table (length, width): row p = [sin(p w_k), cos(p w_k)], w_k = 1e4^(-2k/width)."""
    return sincos_1d(torch.arange(length), width)


def image_positions(grid: tuple[int, int], patch: int, hidden: int) -> torch.Tensor:
    """2-D sin-cos embedding (N, hidden) of a (h, w) token grid in patch order (patch side `patch`).

    Row of cell (r, c) = [table[c], table[r]] (column half first), as the official `get_2d_embed`.
    """
    h, w = grid
    order = patch_order(h, w, patch)
    return sincos_2d(order // w, order % w, hidden)


# ----------------------------------------------------------------------------- head config


@dataclass
class T2IHeadConfig:
    """Our description of the official T2I diffusion head (+ the model's P)."""

    bits: int
    cond_dim: int
    dim: int
    depth: int
    adaln_groups: int
    parallel_num: int
    head_dim: int = HEAD_ATTENTION_WIDTH
    P_mean: float = -0.8
    P_std: float = 0.8
    time_shift: float = 1.0

    def build(self) -> DiffusionHead:
        # diff_batch_mul = 1: the official T2I head only chunks its batch, it never tiles rows
        return DiffusionHead(
            self.bits,
            self.cond_dim,
            self.dim,
            self.depth,
            self.adaln_groups,
            "attention",
            self.head_dim,
            True,
            self.P_mean,
            self.P_std,
            self.time_shift,
            1,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "t2i_head", **self.__dict__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> T2IHeadConfig:
        return cls(**{k: v for k, v in data.items() if k != "kind"})


def head_config_from_official(
    cfg: Mapping[str, Any], source: str = "vision_head_config.json"
) -> T2IHeadConfig:
    """`DiffHead(**json)` kwargs -> T2IHeadConfig (validated)."""
    missing = [
        k
        for k in ("ch_target", "ch_cond", "ch_latent", "depth_latent", "depth_adanln", "parallel_num")
        if k not in cfg
    ]
    if missing:
        raise CheckpointError(f"{source} is missing {missing}")
    if not cfg.get("use_swiglu", True):
        raise CheckpointError(f"{source}: use_swiglu=false (SiLU-MLP head) is not supported; allowed: true")
    if int(cfg["ch_latent"]) % HEAD_ATTENTION_WIDTH:
        raise CheckpointError(f"{source}: ch_latent must be a multiple of {HEAD_ATTENTION_WIDTH}")
    if int(cfg["depth_latent"]) % int(cfg["depth_adanln"]):
        raise CheckpointError(f"{source}: depth_latent must be a multiple of depth_adanln")
    p = int(cfg["parallel_num"])
    if math.isqrt(p) ** 2 != p:
        raise CheckpointError(f"{source}: parallel_num {p} is not a square")
    return T2IHeadConfig(
        int(cfg["ch_target"]),
        int(cfg["ch_cond"]),
        int(cfg["ch_latent"]),
        int(cfg["depth_latent"]),
        int(cfg["depth_adanln"]),
        p,
        P_mean=float(cfg.get("P_mean", -0.8)),
        P_std=float(cfg.get("P_std", 0.8)),
        time_shift=float(cfg.get("time_shift", 1.0)),
    )


# ----------------------------------------------------------------------------- loading


@dataclass
class T2IComponents:
    """Tokenizer, head, projector and P of a T2I folder (no LLM)."""

    tokenizer: BinaryAutoencoder
    head: DiffusionHead
    projector: MLPConnector
    head_config: T2IHeadConfig
    report: ConversionReport

    @property
    def parallel_num(self) -> int:
        return self.head_config.parallel_num

    @property
    def hidden(self) -> int:
        return self.head_config.cond_dim

    def check(self) -> None:
        z, cfg = self.tokenizer.config.z_channels, self.head_config
        if cfg.bits != z or self.projector.fc1.in_features != z:
            raise CheckpointError(
                f"tokenizer has {z} bits but head/projector expect {cfg.bits}/"
                f"{self.projector.fc1.in_features}"
            )
        if self.projector.fc2.out_features != cfg.cond_dim:
            raise CheckpointError(
                f"projector width {self.projector.fc2.out_features} != head condition {cfg.cond_dim}"
            )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _load_official(folder: Path) -> T2IComponents:
    missing = [f for f in OFFICIAL_FILES if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not an official BitDance T2I folder: missing {missing}")
    report = ConversionReport()
    tok = load_official_tokenizer(folder / "ae.safetensors", folder / "ae_config.json", report)
    head_cfg = head_config_from_official(_read_json(folder / "vision_head_config.json"))
    report.config_sources["head"] = str(folder / "vision_head_config.json")
    head = on_meta(head_cfg.build)
    state = load_weights(folder / "vision_head.safetensors")
    out, cov = apply_key_map(
        state, T2I_HEAD_RULES, {"head": head.state_dict()}, source="vision_head.safetensors"
    )
    report.coverage.append(cov)
    assign_weights(head, out["head"], source="vision_head.safetensors")
    pstate = load_weights(folder / "projector.safetensors")
    if "fc1.weight" not in pstate or "fc2.weight" not in pstate:
        raise CheckpointError(
            "projector.safetensors: missing keys "
            f"{[k for k in ('fc1.weight', 'fc2.weight') if k not in pstate]}"
        )
    proj = on_meta(lambda: MLPConnector(pstate["fc1.weight"].shape[1], pstate["fc1.weight"].shape[0]))
    report.config_sources["projector"] = (
        "inferred from tensor shapes (fc1 in -> hidden, fc2 hidden -> hidden)"
    )
    out, cov = apply_key_map(
        pstate, PROJECTOR_RULES, {"projector": proj.state_dict()}, source="projector.safetensors"
    )
    report.coverage.append(cov)
    assign_weights(proj, out["projector"], source="projector.safetensors")
    comps = T2IComponents(tok, head.eval(), proj.eval(), head_cfg, report)
    comps.check()
    return comps


def _load_converted(folder: Path) -> T2IComponents:
    tok = from_pretrained(folder / "tokenizer")
    head_cfg = T2IHeadConfig.from_dict(_read_json(folder / "head" / "config.json"))
    head = on_meta(head_cfg.build)
    assign_weights(head, load_weights(folder / "head" / "model.safetensors"), source=str(folder / "head"))
    pcfg = _read_json(folder / "projector" / "config.json")
    proj = on_meta(lambda: MLPConnector(int(pcfg["in_dim"]), int(pcfg["hidden"])))
    assign_weights(proj, load_weights(folder / "projector" / "model.safetensors"), str(folder / "projector"))
    report = ConversionReport(config_sources={"all": f"converted folder {folder}"})
    comps = T2IComponents(tok, head.eval(), proj.eval(), head_cfg, report)
    comps.check()
    return comps


def is_converted_t2i(folder: str | os.PathLike) -> bool:
    return (Path(folder) / CONVERTED_INDEX).is_file()


def load_t2i_components(folder: str | os.PathLike) -> T2IComponents:
    """Tokenizer + head + projector of an official T2I folder or of our converted folder."""
    folder = Path(folder)
    return _load_converted(folder) if is_converted_t2i(folder) else _load_official(folder)


def llm_folder(folder: str | os.PathLike) -> Path:
    """Where the HF Qwen3 files (config, weights, text tokenizer) live."""
    folder = Path(folder)
    if is_converted_t2i(folder):
        return folder / _read_json(folder / CONVERTED_INDEX).get("llm", "llm")
    return folder


# ----------------------------------------------------------------------------- converting


def convert_t2i_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    llm: str = "symlink",
    image_sizes: tuple[tuple[int, int], ...] = IMAGE_SIZE_LIST,
) -> ConversionReport:
    """Official T2I folder -> `<out>/{t2i_config.json, tokenizer/, head/, projector/, llm/}`.

    The Qwen3 files keep the Hugging Face layout (transformers loads them); `llm` = 'symlink' | 'copy'.
    """
    if llm not in ("symlink", "copy"):
        raise ValueError(f"llm must be 'symlink' or 'copy', got {llm!r}")
    src, out = Path(src), Path(out)
    comps = _load_official(src)
    save_pretrained(comps.tokenizer, out / "tokenizer")
    save_state_dict(comps.head.state_dict(), out / "head" / "model.safetensors")
    atomic_write_bytes(
        out / "head" / "config.json", (json.dumps(comps.head_config.to_dict(), indent=2) + "\n").encode()
    )
    save_state_dict(comps.projector.state_dict(), out / "projector" / "model.safetensors")
    pcfg = {
        "kind": "t2i_projector",
        "in_dim": comps.projector.fc1.in_features,
        "hidden": comps.projector.fc2.out_features,
        "activation": "gelu_tanh",
    }
    atomic_write_bytes(out / "projector" / "config.json", (json.dumps(pcfg, indent=2) + "\n").encode())
    llm_dir = out / "llm"
    llm_dir.mkdir(parents=True, exist_ok=True)
    passed = []
    for f in sorted(src.iterdir()):
        if f.name in OFFICIAL_FILES or not f.is_file():
            continue
        target = llm_dir / f.name
        if target.exists() or target.is_symlink():
            target.unlink()
        if llm == "symlink":
            target.symlink_to(f.resolve())
        else:
            shutil.copy2(f, target)
        passed.append(f.name)
    if not (llm_dir / "config.json").exists():
        raise CheckpointError(f"{src} has no Hugging Face config.json for the Qwen3 backbone")
    comps.report.notes.append(f"LLM files passed through unchanged ({llm}): {', '.join(passed)}")
    index = {
        "format": "bitdance-official-t2i",
        "version": 1,
        "parallel_num": comps.parallel_num,
        "llm": "llm",
        "tokenizer": "tokenizer",
        "head": "head",
        "projector": "projector",
        "image_sizes": [list(s) for s in image_sizes],
    }
    atomic_write_bytes(out / CONVERTED_INDEX, (json.dumps(index, indent=2) + "\n").encode())
    write_provenance(out, src, comps.report)
    return comps.report


def converted_image_sizes(folder: str | os.PathLike) -> tuple[tuple[int, int], ...] | None:
    folder = Path(folder)
    if not is_converted_t2i(folder):
        return None
    sizes = _read_json(folder / CONVERTED_INDEX).get("image_sizes")
    return tuple((int(h), int(w)) for h, w in sizes) if sizes else None


def check_image_size(
    height: int, width: int, sizes: tuple[tuple[int, int], ...], downsample: int, parallel_num: int
) -> tuple[int, int]:
    """Validate [H, W] against the supported list; return the token grid (H/f, W/f)."""
    if (height, width) not in sizes:
        shown = ", ".join(f"{h}x{w}" for h, w in sizes)
        raise ValueError(f"unsupported size {height}x{width} (HxW); allowed: {shown}")
    if height % downsample or width % downsample:
        raise ValueError(f"size {height}x{width} is not a multiple of the tokenizer's factor {downsample}")
    grid = (height // downsample, width // downsample)
    validate_parallel_num(parallel_num, grid)
    return grid
