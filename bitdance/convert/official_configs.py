"""Official configuration formats -> our `TokenizerConfig` / `GeneratorConfig`.

Sources, in order of preference: a preset name, an official args JSON (`constructor_kwargs` with the
official constructor names, optional `vae_substitute`), an official `ae_config.json`, or inference
from tensor shapes. Every result says which source it came from (`ConfigChoice.source`) and what was
assumed (`notes`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.configs import GENERATOR_PRESETS, GeneratorConfig, TokenizerConfig, get_preset
from ..core.layers import ffn_hidden_size

# Released guidance scales (official README); used as converted-folder defaults.
OFFICIAL_CFG_SCALES = {
    "BitDance-B-1x": 3.2,
    "BitDance-B-4x": 3.9,
    "BitDance-B-16x": 6.1,
    "BitDance-L-1x": 4.0,
    "BitDance-H-1x": 4.55,
}
OFFICIAL_SAMPLE_STEPS = 100  # official ImageNet evaluation default (`--sample-steps`)
IMAGENET_TOKENIZER_PRESET = "ae_d16c32"  # hard-coded by the official ImageNet constructors
DEFAULT_NUM_CODEBOOKS = 4  # official GFQ groups for the ImageNet tokenizer
_DDCONFIG_KEYS = {
    "ch",
    "ch_mult",
    "num_res_blocks",
    "z_channels",
    "in_channels",
    "out_ch",
    "double_z",
    "resolution",
    "dropout",
    "attn_resolutions",
}
# official constructor kwargs that do not change the architecture or inference numerics
_IGNORED_KWARGS = {"grad_checkpointing", "trained_vae", "perturb_rate_max", "drop_rate"}


@dataclass
class ConfigChoice:
    """A config plus where it came from and what was assumed."""

    config: Any
    source: str
    notes: list[str] = field(default_factory=list)


def parse_grid(text: str | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """'16x16' / '4x8' / (h, w) -> (h, w) token grid."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        h, w = (int(v) for v in text)
        return h, w
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"grid must look like HxW (token rows x columns), e.g. 16x16, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _group_size(z: int, num_codebooks: int | None, notes: list[str]) -> int:
    g = num_codebooks or DEFAULT_NUM_CODEBOOKS
    if z % g == 0 and 1 <= z // g <= 10:
        return z // g
    size = max(s for s in range(1, 11) if z % s == 0)
    notes.append(
        f"entropy groups: {z} bits do not split into {g} groups of <= 10; using groups of {size} "
        "(affects training losses only)"
    )
    return size


# ----------------------------------------------------------------------------- tokenizer


def tokenizer_config_from_official(
    ae_config: Mapping[str, Any], num_codebooks: int | None = None, source: str = "ae_config.json"
) -> ConfigChoice:
    """`{"ddconfig": {...}, "gan_decoder": bool}` (official `VQModel(**json)`) -> TokenizerConfig."""
    if "ddconfig" not in ae_config:
        raise ValueError(f"{source}: an official tokenizer config needs a 'ddconfig' entry")
    dd = dict(ae_config["ddconfig"])
    notes: list[str] = []
    unknown = sorted(set(dd) - _DDCONFIG_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown ddconfig field(s) {unknown}; known: {sorted(_DDCONFIG_KEYS)}")
    if dd.get("double_z"):
        raise ValueError(f"{source}: double_z=true is not supported (BitDance tokenizers use double_z=false)")
    for k in ("ch", "ch_mult", "num_res_blocks", "z_channels"):
        if k not in dd:
            raise ValueError(f"{source}: ddconfig is missing {k!r}")
    z = int(dd["z_channels"])
    cfg = TokenizerConfig(
        in_channels=int(dd.get("in_channels", 3)),
        out_channels=int(dd.get("out_ch", 3)),
        ch=int(dd["ch"]),
        ch_mult=tuple(int(m) for m in dd["ch_mult"]),
        num_res_blocks=int(dd["num_res_blocks"]),
        z_channels=z,
        gan_decoder=bool(ae_config.get("gan_decoder", False)),
        entropy_group_size=_group_size(z, num_codebooks or ae_config.get("num_codebooks"), notes),
        image_size=int(dd.get("resolution") or 256),
    )
    return ConfigChoice(cfg, source, notes)


def tokenizer_config_from_shapes(state: Mapping[str, torch.Tensor], prefix: str = "") -> ConfigChoice:
    """Infer the tokenizer config from `encoder.*` / `decoder.*` tensor shapes."""

    def shape(key: str) -> tuple[int, ...]:
        if prefix + key not in state:
            raise ValueError(f"cannot infer the tokenizer config: tensor {prefix + key!r} is missing")
        return tuple(state[prefix + key].shape)

    ch, cin = shape("encoder.conv_in.weight")[:2]
    z = shape("encoder.conv_out.weight")[0]
    levels = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"encoder\.down\.(\d+)\.", k))
    )
    blocks = 1 + max(
        int(m.group(1))
        for k in state
        if (m := re.match(re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.", k))
    )
    mult = tuple(shape(f"encoder.down.{i}.block.0.conv1.weight")[0] // ch for i in range(levels))
    gan = shape("decoder.conv_in.weight")[1] == 2 * z
    notes = ["tokenizer config inferred from tensor shapes"]
    cfg = TokenizerConfig(
        in_channels=cin,
        out_channels=shape("decoder.conv_out.weight")[0],
        ch=ch,
        ch_mult=mult,
        num_res_blocks=blocks,
        z_channels=z,
        gan_decoder=gan,
        entropy_group_size=_group_size(z, None, notes),
        image_size=256,
    )
    return ConfigChoice(cfg, "inferred from tensor shapes", notes)


# ----------------------------------------------------------------------------- generator


def _ffn_multiple_of(dim: int, hidden: int) -> int:
    if ffn_hidden_size(dim, 256) == hidden:
        return 256
    if hidden >= int(8 * dim / 3):
        return hidden  # round_up(int(8D/3), hidden) == hidden
    raise ValueError(f"FFN width {hidden} is smaller than int(8*{dim}/3); not a BitDance backbone")


def generator_config_from_args(
    kwargs: Mapping[str, Any],
    grid: tuple[int, int] | None = None,
    model_file: str | None = None,
    source: str = "args JSON",
) -> ConfigChoice:
    """Official ImageNet constructor kwargs (`BitDance(**kwargs)`) -> GeneratorConfig."""
    kw = dict(kwargs)
    notes: list[str] = []
    required = ("dim", "n_layer", "n_head", "latent_dim", "diff_dim", "diff_layers", "diff_adanln_layers")
    missing = [k for k in required if k not in kw]
    if missing:
        raise ValueError(f"{source}: constructor_kwargs is missing {missing}")
    if kw.get("parallel_mode", "patch") != "patch":
        raise ValueError(
            f"{source}: parallel_mode {kw['parallel_mode']!r} is not supported; allowed: 'patch'"
        )
    if int(kw.get("patch_size", 1)) != 1:
        raise ValueError(f"{source}: patch_size {kw['patch_size']} is not supported; allowed: 1")
    if kw.get("time_schedule", "logit_normal") != "logit_normal":
        notes.append(
            f"time_schedule {kw['time_schedule']!r} ignored: training uses logit-normal "
            "(inference unaffected)"
        )
    if kw.get("perturb_schedule", "constant") != "constant":
        notes.append(f"perturb_schedule {kw['perturb_schedule']!r} ignored: training uses a constant rate")
    parallel = "parallel_num" in kw or (model_file or "").endswith("model_parallel.py")
    p = int(kw.get("parallel_num", 1))
    if grid is None:
        res = kw.get("resolution", 256)
        down = int(kw.get("down_size", 16))
        res_hw = (int(res), int(res)) if not isinstance(res, (list, tuple)) else (int(res[0]), int(res[1]))
        grid = (res_hw[0] // down, res_hw[1] // down)
    known = (
        set(required)
        | {
            "parallel_num",
            "parallel_mode",
            "patch_size",
            "time_schedule",
            "perturb_schedule",
            "resolution",
            "down_size",
            "cls_token_num",
            "num_classes",
            "diff_batch_mul",
            "P_mean",
            "P_std",
            "time_shift",
            "perturb_rate",
            "class_dropout_prob",
        }
        | _IGNORED_KWARGS
    )
    unknown = sorted(set(kw) - known)
    if unknown:
        notes.append(f"ignored constructor kwargs {unknown}")
    dim = int(kw["dim"])
    cfg = GeneratorConfig(
        latent_bits=int(kw["latent_dim"]),
        grid_size=grid,
        dim=dim,
        n_layer=int(kw["n_layer"]),
        n_head=int(kw["n_head"]),
        ffn_multiple_of=256,
        cond_type="class",
        num_classes=int(kw.get("num_classes", 1000)),
        cls_token_num=int(kw.get("cls_token_num", 64)),
        parallel_num=p,
        head_type="attention" if parallel else "mlp",
        head_width=int(kw["diff_dim"]),
        head_depth=int(kw["diff_layers"]),
        head_adaln_groups=int(kw["diff_adanln_layers"]),
        head_attn_dim=64,
        P_mean=float(kw.get("P_mean", -0.8)),
        P_std=float(kw.get("P_std", 0.8)),
        time_shift=float(kw.get("time_shift", 1.0)),
        diff_batch_mul=int(kw.get("diff_batch_mul", 4)),
        perturb_rate=float(kw.get("perturb_rate", 0.1)),
        cond_dropout=float(kw.get("class_dropout_prob", 0.1)),
    )
    return ConfigChoice(cfg, source, notes)


def generator_config_from_shapes(
    state: Mapping[str, torch.Tensor], grid: tuple[int, int] | None = None, n_head: int | None = None
) -> ConfigChoice:
    """Infer the backbone/head config from official tensor shapes (non-`vae.` keys)."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise ValueError(f"cannot infer the model config: tensor {key!r} is missing")
        return tuple(state[key].shape)

    notes = ["generator config inferred from tensor shapes"]
    dim = shape("emb_norm.weight")[0]
    n_layer = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k)))
    cls_rows, cls_width = shape("cls_embedding.weight")
    if cls_width % dim:
        raise ValueError(f"cls_embedding width {cls_width} is not a multiple of the model width {dim}")
    p = shape("query_token")[1] + 1 if "query_token" in state else 1
    attn_head = "head.net.res_blocks.0.attn.wqkv.weight" in state
    head_depth = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"head\.net\.res_blocks\.(\d+)\.", k))
    )
    adaln = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"head\.net\.ada_ln_blocks\.(\d+)\.", k))
    )
    n = shape("pos_for_diff.weight")[0]
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(
                f"pos_for_diff has {n} rows (not a square grid): pass the token grid, e.g. --grid HxW"
            )
        grid = (side, side)
        notes.append(f"token grid {side}x{side} from pos_for_diff rows")
    if n_head is None:
        if dim % 64:
            raise ValueError(f"cannot infer the number of attention heads for width {dim}: pass --n-head")
        n_head = dim // 64
        notes.append(f"n_head cannot be read from the weights: assumed head_dim 64 -> n_head {n_head}")
    notes.append(
        "training-only settings (diff_batch_mul 4, P_mean -0.8, P_std 0.8, perturb 0.1, class dropout "
        "0.1) are the official defaults, not read from the checkpoint"
    )
    cfg = GeneratorConfig(
        latent_bits=shape("proj_in.w1.weight")[1],
        grid_size=grid,
        dim=dim,
        n_layer=n_layer,
        n_head=n_head,
        ffn_multiple_of=_ffn_multiple_of(dim, shape("layers.0.feed_forward.w2.weight")[1]),
        cond_type="class",
        num_classes=cls_rows - 1,
        cls_token_num=cls_width // dim,
        parallel_num=p,
        head_type="attention" if attn_head else "mlp",
        head_width=shape("head.net.input_proj.weight")[0],
        head_depth=head_depth,
        head_adaln_groups=adaln,
        head_attn_dim=64,
        diff_batch_mul=4,
    )
    return ConfigChoice(cfg, "inferred from tensor shapes", notes)


def generator_config_from_preset(name: str, grid: tuple[int, int] | None = None) -> ConfigChoice:
    if name not in GENERATOR_PRESETS or not name.startswith("BitDance-"):
        allowed = sorted(k for k in GENERATOR_PRESETS if k.startswith("BitDance-"))
        raise ValueError(f"unknown official preset {name!r}; allowed: {allowed}")
    cfg = get_preset("generator", name)
    if grid is not None:
        cfg = dataclasses.replace(cfg, grid_size=grid)
    return ConfigChoice(cfg, f"preset {name}")


def read_args_json(path: str | Path) -> dict[str, Any]:
    """Args JSON {"constructor_kwargs": {...}, "vae_substitute"?: {...}, "model_file"?: ...} (or bare)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if "constructor_kwargs" not in data:
        data = {"constructor_kwargs": data}
    return data


def matching_preset(cfg: GeneratorConfig) -> str | None:
    """The official preset with this architecture (width, depth, P), if any."""
    for name in OFFICIAL_CFG_SCALES:
        p = GENERATOR_PRESETS[name]
        if (p.dim, p.n_layer, p.parallel_num, p.latent_bits) == (
            cfg.dim,
            cfg.n_layer,
            cfg.parallel_num,
            cfg.latent_bits,
        ):
            return name
    return None
