"""Export a BitDancePipeline to ONNX graphs + lookup tables for edge runtimes.

Output folder (written to a temp folder, then renamed into place):
    manifest.json        model facts the runner needs (grid, P, shapes, defaults, graph names)
    tables.npz           generation order, RoPE table, attention groups, head positions (no pickle)
    prefix.onnx, embed_tokens.onnx, backbone_step.onnx, head.onnx, decoder.onnx   (see wrappers.py)

Uses the torch.export-based exporter (`torch.onnx.export(..., dynamo=True)`, needs onnxscript); the
legacy TorchScript exporter is deprecated.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..core.atomic import atomic_folder
from ..core.configs import validate_parallel_num
from ..generator.patches import order_for
from ..generator.transformer import attention_groups
from . import wrappers

EXPORT_FORMAT = "bitdance-onnx"
EXPORT_VERSION = 1
GRAPHS = ("prefix", "embed_tokens", "backbone_step", "head", "decoder")
DEFAULT_OPSET = 18
EXTERNAL_DATA_BYTES = 1_500_000_000


def _require_onnx() -> None:
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ModuleNotFoundError:
            raise ValueError(
                f"ONNX export needs the optional package {name!r}: pip install 'bitdance[export]'"
            ) from None


def _export(
    module: torch.nn.Module,
    args: tuple,
    names: list[str],
    outputs: list[str],
    dynamic: dict,
    path: Path,
    opset: int,
) -> None:
    # One self-contained file per graph unless it would pass protobuf's 2 GiB limit.
    size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter(
            "ignore"
        )  # exporter chatter (progress lines, axis renames, pytree deprecations)
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=True,
            input_names=names,
            output_names=outputs,
            dynamic_shapes=dynamic,
            opset_version=opset,
            external_data=size > EXTERNAL_DATA_BYTES,
            optimize=False,
            verbose=False,
        )


def export_tables(pipe: Any, grid: tuple[int, int], p: int) -> dict[str, np.ndarray]:
    """Sequence tables for one (grid, P): order (N,), rope (S, hd/2, 2), groups (S,), head_pos (N, D)."""
    model = pipe.generator
    lp = model.config.prefix_len
    n = grid[0] * grid[1]
    order = order_for(grid, p)
    with torch.no_grad():
        head_pos = model.head_positions(grid, order).float()
    return {
        "order": order.numpy().astype(np.int64),
        "rope": model.rope_for(grid, p, lp + p - 1).float().numpy(),
        "groups": attention_groups(lp, n, p).numpy().astype(np.int64),
        "head_pos": head_pos.cpu().numpy(),
    }


def export_onnx(
    pipe: Any,
    folder: str | os.PathLike,
    parallel_num: int | None = None,
    size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Path:
    """Write the ONNX graphs, tables and manifest of `pipe` for one image size and P. Returns the folder."""
    _require_onnx()
    from torch.export import Dim

    gen, tok = pipe.generator, pipe.tokenizer
    q = getattr(gen, "quantization", None)
    if q and q.get("scheme") == "int8-dynamic":
        raise ValueError(
            "an int8-dynamic generator runs on PyTorch's quantized CPU kernels and cannot be exported "
            "to ONNX; export the fp32 (or int8-weight-only) model"
        )
    cfg = gen.config
    p = parallel_num or pipe.defaults.get("parallel_num") or cfg.parallel_num
    if p not in cfg.supported_parallel:
        raise ValueError(
            f"parallel_num {p} not supported by this model; allowed: {list(cfg.supported_parallel)}"
        )
    f = tok.downsample
    h_img, w_img = size or (cfg.grid_size[0] * f, cfg.grid_size[1] * f)
    if (h_img, w_img) not in pipe.supported_sizes:
        raise ValueError(f"unsupported size {h_img}x{w_img}; this model supports: {pipe.supported_sizes}")
    grid = (h_img // f, w_img // f)
    validate_parallel_num(p, grid)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise ValueError(f"output folder {folder} exists and is not empty; pass --force to replace it")
    with atomic_folder(folder) as tmp:  # the old folder stays until the new one is complete
        _write_all(pipe, tmp, grid, p, opset, Dim)
    return folder


def _write_all(pipe: Any, out: Path, grid: tuple[int, int], p: int, opset: int, Dim: Any) -> None:  # noqa: N803
    gen, tok = pipe.generator, pipe.tokenizer
    cfg = gen.config
    d, dim, hd = cfg.latent_bits, cfg.dim, cfg.dim // cfg.n_head
    batch, new, past = (
        Dim("batch", min=1, max=4096),
        Dim("new", min=1, max=65536),
        Dim("past", min=0, max=65536),
    )
    rows, toks = Dim("rows", min=1, max=1 << 20), Dim("tokens", min=1, max=4096)

    if cfg.cond_type == "class":
        _export(
            wrappers.ClassPrefix(gen, p),
            (torch.tensor([0, cfg.num_classes]),),
            ["labels"],
            ["x0"],
            {"labels": {0: batch}},
            out / "prefix.onnx",
            opset,
        )
    else:
        states = torch.randn(2, cfg.text_len, cfg.text_dim)
        mask = torch.ones(2, cfg.text_len, dtype=torch.bool)
        _export(
            wrappers.TextPrefix(gen, p),
            (states, mask),
            ["states", "mask"],
            ["x0"],
            {"states": {0: batch}, "mask": {0: batch}},
            out / "prefix.onnx",
            opset,
        )
    _export(
        wrappers.TokenEmbed(gen),
        (torch.ones(2, 3, d),),
        ["bits"],
        ["x"],
        {"bits": {0: batch, 1: toks}},
        out / "embed_tokens.onnx",
        opset,
    )
    lq, lk = 3, 5
    kv = torch.randn(cfg.n_layer, 2, cfg.n_head, lk, hd)
    _export(
        wrappers.BackboneStep(gen),
        (
            torch.randn(2, lq, dim),
            torch.randn(lq, hd // 2, 2),
            torch.arange(lq),
            torch.arange(lk) - lk,
            kv,
            kv,
        ),
        ["x", "rope", "groups", "past_groups", "past_keys", "past_values"],
        ["hidden", "present_keys", "present_values"],
        {
            "x_BLD": {0: batch, 1: new},
            "rope": {0: new},
            "groups": {0: new},
            "past_groups": {0: past},
            "past_keys": {1: batch, 3: past},
            "past_values": {1: batch, 3: past},
        },
        out / "backbone_step.onnx",
        opset,
    )
    pe = max(p, 2)  # trace with a non-1 size so the axis stays symbolic
    _export(
        wrappers.HeadNet(gen),
        (torch.randn(4, pe, d), torch.rand(4), torch.randn(4, pe, dim)),
        ["z", "t", "cond"],
        ["x_hat"],
        {"z": {0: rows, 1: toks}, "t": {0: rows}, "cond": {0: rows, 1: toks}},
        out / "head.onnx",
        opset,
    )
    bits = torch.ones(2, d, *grid)
    if tok.config.gan_decoder:
        _export(
            wrappers.Decoder(tok),
            (bits, torch.randn_like(bits)),
            ["bits", "noise"],
            ["image"],
            {"bits": {0: batch}, "noise": {0: batch}},
            out / "decoder.onnx",
            opset,
        )
    else:
        _export(
            wrappers.Decoder(tok),
            (bits,),
            ["bits"],
            ["image"],
            {"bits": {0: batch}},
            out / "decoder.onnx",
            opset,
        )

    tables = export_tables(pipe, grid, p)
    with open(out / "tables.npz", "wb") as fh:
        np.savez(fh, **tables)
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "bitdance_version": __version__,
        "model": pipe.name,
        "model_hash": pipe.model_hash,
        "opset": opset,
        "graphs": {g: f"{g}.onnx" for g in GRAPHS},
        "cond_type": cfg.cond_type,
        "num_classes": cfg.num_classes,
        "text_len": cfg.text_len,
        "text_dim": cfg.text_dim,
        "text_encoder": _text_encoder_spec(pipe),
        "latent_bits": d,
        "dim": dim,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "head_dim": hd,
        "prefix_len": cfg.prefix_len,
        "parallel_num": p,
        "grid": list(grid),
        "image_size": [grid[0] * tok.downsample, grid[1] * tok.downsample],
        "time_shift": cfg.time_shift,
        "gan_decoder": tok.config.gan_decoder,
        "defaults": {k: v for k, v in pipe.defaults.items() if k != "parallel_num"},
        "quantization": getattr(gen, "quantization", None),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _text_encoder_spec(pipe: Any) -> dict[str, Any] | None:
    te = pipe.text_encoder
    if te is None:
        return None
    spec = {"name": getattr(te, "name", type(te).__name__), "max_len": getattr(te, "max_len", None)}
    if spec["name"] == "hash":
        spec["dim"] = te.dim
    return spec
