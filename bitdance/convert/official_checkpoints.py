"""Read official BitDance tokenizer and ImageNet checkpoints and convert them to our components/folders.

Official `.pt` files are read with `torch.load(weights_only=True)`: tensors and plain containers
only (plus `argparse.Namespace`, which official training checkpoints store under 'args'). A file that
needs any other Python object is refused, because unpickling it could run code.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, atomic_write_bytes, load_weights
from ..core.configs import get_preset
from ..generator.transformer import BitDanceTransformer
from ..tokenizer.autoencoder import BinaryAutoencoder
from .keymaps import IMAGENET_RULES, TOKENIZER_RULES, CoverageReport, apply_key_map
from .official_configs import (
    IMAGENET_TOKENIZER_PRESET,
    OFFICIAL_CFG_SCALES,
    OFFICIAL_SAMPLE_STEPS,
    ConfigChoice,
    generator_config_from_args,
    generator_config_from_preset,
    generator_config_from_shapes,
    matching_preset,
    read_args_json,
    tokenizer_config_from_official,
    tokenizer_config_from_shapes,
)

PT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


@dataclass
class ConversionReport:
    """Key-map coverage, config sources and assumptions of one conversion."""

    coverage: list[CoverageReport] = field(default_factory=list)
    config_sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_config(self, component: str, choice: ConfigChoice) -> None:
        self.config_sources[component] = choice.source
        self.notes += choice.notes

    def lines(self) -> list[str]:
        out = [line for c in self.coverage for line in c.lines()]
        out += [f"{c} config: {s}" for c, s in self.config_sources.items()]
        out += [f"note: {n}" for n in self.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverage": [c.lines() for c in self.coverage],
            "config_sources": self.config_sources,
            "notes": self.notes,
        }


# ----------------------------------------------------------------------------- reading files


def read_official_pt(path: str | Path) -> dict[str, Any]:
    """Load an official `.pt` checkpoint without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} contains pickled Python objects other than tensors and plain containers ({first}). "
            "Refusing to unpickle it, since that can run arbitrary code. If you trust the file, re-save "
            "only its "
            "state dicts (e.g. torch.save({'ema': ckpt['ema']}, 'clean.pt')) and convert that."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected a dict of state dicts")
    return obj


def select_state_dict(
    ckpt: Mapping[str, Any], prefer: str = "ema"
) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Pick the weights of a checkpoint dict: (state, entry used, ignored top-level entries)."""
    if ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        return dict(ckpt), "<bare state dict>", []
    order = [prefer, "model" if prefer == "ema" else "ema", "state_dict"]
    for name in order:
        if isinstance(ckpt.get(name), Mapping):
            state = ckpt[name]
            bad = [k for k, v in state.items() if not torch.is_tensor(v)]
            if bad:
                raise CheckpointError(f"checkpoint entry {name!r} holds non-tensor values for {bad[:5]}")
            return dict(state), name, sorted(k for k in ckpt if k != name)
    raise CheckpointError(f"checkpoint has no weights entry; expected one of {order}, found {sorted(ckpt)}")


def read_official_weights(
    path: str | Path, prefer: str = "ema"
) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """A `.safetensors` file or an official `.pt` -> (state dict, entry used, ignored entries)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_weights(path), "<safetensors>", []
    if path.suffix in PT_SUFFIXES:
        return select_state_dict(read_official_pt(path), prefer)
    raise CheckpointError(f"{path}: unsupported file type; allowed: .safetensors, {', '.join(PT_SUFFIXES)}")


def on_meta(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module without allocating or initialising weights (shapes only, for key-map checks)."""
    with torch.device("meta"):
        return factory()


def assign_weights(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str
) -> torch.nn.Module:
    """Strict load by assignment (works on meta modules); floating tensors become float32."""
    # fresh, aligned, contiguous float32 copies (no aliasing of the file buffer or of other entries)
    state = {
        k: v.to(torch.float32 if v.is_floating_point() else v.dtype, copy=True) for k, v in state.items()
    }
    own = module.state_dict()
    bad = sorted(set(own) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
    if bad:
        raise CheckpointError(f"{source} does not match the model: keys {bad[:10]}")
    module.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{source}: tensors {left[:10]} were not loaded")
    return module


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"config file {path} not found") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


# ----------------------------------------------------------------------------- tokenizer


def load_official_tokenizer(
    weights: str | Path,
    config: str | Path | Mapping[str, Any] | None = None,
    report: ConversionReport | None = None,
) -> BinaryAutoencoder:
    """Official tokenizer weights (+ `ae_config.json`-style config, else shapes) -> BinaryAutoencoder."""
    report = report if report is not None else ConversionReport()
    state, entry, ignored = read_official_weights(weights)
    if config is None:
        guess = Path(weights).with_name(Path(weights).stem + "_config.json")
        config = guess if guess.is_file() else None
    if config is None:
        choice = tokenizer_config_from_shapes(state)
    else:
        data = dict(config) if isinstance(config, Mapping) else _read_json(config)
        choice = tokenizer_config_from_official(
            data, source=str(config if not isinstance(config, Mapping) else "tokenizer config")
        )
    report.add_config("tokenizer", choice)
    tok = on_meta(lambda: BinaryAutoencoder(choice.config))
    out, cov = apply_key_map(state, TOKENIZER_RULES, {"tokenizer": tok.state_dict()}, source=str(weights))
    cov.ignored_entries = ignored
    report.coverage.append(cov)
    assign_weights(tok, out["tokenizer"], source=str(weights))
    return tok.eval()


# ----------------------------------------------------------------------------- ImageNet models


@dataclass
class ConvertedImageNet:
    tokenizer: BinaryAutoencoder
    generator: BitDanceTransformer
    report: ConversionReport
    preset: str | None = None  # matching official preset (for sampling defaults)


def _resolve_generator_config(
    config: str | Path | Mapping[str, Any] | None,
    gen_state: Mapping[str, torch.Tensor],
    grid: tuple[int, int] | None,
    n_head: int | None,
) -> tuple[ConfigChoice, dict[str, Any] | None]:
    if config is None:
        return generator_config_from_shapes(gen_state, grid, n_head), None
    if isinstance(config, Mapping):
        args = dict(config) if "constructor_kwargs" in config else {"constructor_kwargs": dict(config)}
        src = "args dict"
    elif Path(config).suffix == ".json" or Path(config).is_file():
        try:
            args = read_args_json(config)
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"cannot read args JSON {config}: {e}") from None
        src = f"args JSON {config}"
    else:
        return generator_config_from_preset(str(config), grid), None
    choice = generator_config_from_args(args["constructor_kwargs"], grid, args.get("model_file"), source=src)
    return choice, args


def load_official_imagenet(
    path: str | Path,
    config: str | Path | Mapping[str, Any] | None = None,
    grid: tuple[int, int] | None = None,
    n_head: int | None = None,
    weights: str = "ema",
    tokenizer: str | Path | None = None,
    tokenizer_config: str | Path | None = None,
) -> ConvertedImageNet:
    """Official ImageNet `.pt` -> (tokenizer from `vae.*`, generator), both strict-loaded and in eval mode.

    `config`: a preset name (BitDance-B-1x, ...), an args JSON path/dict, or None (infer from shapes).
    `tokenizer`: an official tokenizer file used instead of the embedded `vae.*` weights.
    """
    report = ConversionReport()
    state, entry, ignored = read_official_weights(path, weights)
    if entry not in ("<bare state dict>", weights):
        report.notes.append(f"checkpoint has no {weights!r} entry; used {entry!r}")
    gen_state = {k: v for k, v in state.items() if not k.startswith("vae.")}
    vae_state = {k[4:]: v for k, v in state.items() if k.startswith("vae.")}
    gen_choice, args = _resolve_generator_config(config, gen_state, grid, n_head)
    report.add_config("generator", gen_choice)
    gen_cfg = gen_choice.config
    rules = IMAGENET_RULES
    if tokenizer is not None:
        tok = load_official_tokenizer(tokenizer, tokenizer_config, report)
        if vae_state:
            report.notes.append(
                f"{len(vae_state)} embedded vae.* tensors ignored: tokenizer taken from {tokenizer}"
            )
        state = gen_state
        rules = tuple(r for r in IMAGENET_RULES if r.component != "tokenizer")
    else:
        if not vae_state:
            raise CheckpointError(
                f"{path} has no vae.* tokenizer weights; pass the tokenizer file (--tokenizer)"
            )
        if args is not None and "vae_substitute" in args:
            sub = args["vae_substitute"]
            tok_choice = tokenizer_config_from_official(
                sub, sub.get("num_codebooks"), source="args vae_substitute"
            )
        elif args is not None or gen_choice.source.startswith("preset"):
            tok_choice = ConfigChoice(
                get_preset("tokenizer", IMAGENET_TOKENIZER_PRESET),
                f"preset {IMAGENET_TOKENIZER_PRESET} (hard-coded by the official constructor)",
            )
        else:
            tok_choice = tokenizer_config_from_shapes(vae_state)
        report.add_config("tokenizer", tok_choice)
        tok = on_meta(lambda: BinaryAutoencoder(tok_choice.config))
    gen = on_meta(lambda: BitDanceTransformer(gen_cfg))
    targets = {"generator": gen.state_dict()}
    if tokenizer is None:
        targets["tokenizer"] = tok.state_dict()
    ctx = {"grid": gen_cfg.grid_size, "parallel_num": gen_cfg.parallel_num}
    out, cov = apply_key_map(state, rules, targets, ctx, source=f"{path} [{entry}]")
    cov.ignored_entries = ignored
    report.coverage.append(cov)
    if tok.config.z_channels != gen_cfg.latent_bits:
        raise CheckpointError(
            f"tokenizer has {tok.config.z_channels} bits per token but the model expects "
            f"{gen_cfg.latent_bits}"
        )
    assign_weights(gen, out["generator"], source=str(path))
    if tokenizer is None:
        assign_weights(tok, out["tokenizer"], source=f"{path} (vae.*)")
    return ConvertedImageNet(tok.eval(), gen.eval(), report, matching_preset(gen_cfg))


def official_sampling_defaults(converted: ConvertedImageNet) -> dict[str, Any]:
    """Pipeline defaults that reproduce the official ImageNet sampler (linear CFG, 100 head steps)."""
    return {
        "num_sampling_steps": OFFICIAL_SAMPLE_STEPS,
        "guidance_scale": OFFICIAL_CFG_SCALES.get(converted.preset or "", 1.0),
        "guidance_schedule": "linear",
        "parallel_num": converted.generator.config.parallel_num,
        "independent_unguided_streams": True,
    }


# ----------------------------------------------------------------------------- writing folders


def write_provenance(
    out: Path, source: str | Path, report: ConversionReport, extra: dict[str, Any] | None = None
) -> None:
    data = {"converted_from": str(source), **report.to_dict(), **(extra or {})}
    atomic_write_bytes(out / "conversion.json", (json.dumps(data, indent=2) + "\n").encode())


def convert_imagenet(src: str | Path, out: str | Path, **kwargs: Any) -> ConversionReport:
    """Official ImageNet `.pt` -> pipeline folder `<out>/{model_index.json, tokenizer/, generator/}`."""
    from ..pipeline import BitDancePipeline

    conv = load_official_imagenet(src, **kwargs)
    out = Path(out)
    BitDancePipeline(
        conv.tokenizer, conv.generator, None, official_sampling_defaults(conv), name=out.name
    ).save_pretrained(out)
    write_provenance(out, src, conv.report, {"preset": conv.preset})
    return conv.report


def convert_tokenizer(src: str | Path, out: str | Path, config: str | Path | None = None) -> ConversionReport:
    """Official tokenizer file (+ config JSON) -> `<out>/tokenizer/{config.json, model.safetensors}`."""
    from ..checkpoint import save_pretrained

    report = ConversionReport()
    tok = load_official_tokenizer(src, config, report)
    out = Path(out)
    save_pretrained(tok, out / "tokenizer")
    write_provenance(out, src, report)
    return report
