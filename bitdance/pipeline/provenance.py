"""Provenance: the recipe of every generated image, written into its PNG and read back for inspect/replay.

Each PNG gets two text chunks:
- `parameters`: AUTOMATIC1111-style text, readable by tools that understand A1111 PNG info:
      a red sneaker
      Negative prompt: blurry
      Steps: 20, Sampler: euler_maruyama, CFG scale: 3.0, Seed: 0, Size: 32x32, Model hash: 3f2a..., ...
- `bitdance`: the full recipe as JSON (sorted keys, ASCII), the source of truth for `bitdance inspect`
  and `bitdance generate --replay`.
- `XML:com.adobe.xmp`: the AI-generated marking (IPTC digital source type), see `marking.py`; a signed
  C2PA manifest is added when one is configured.
Nothing time- or host-dependent is recorded, so the same recipe always gives the same PNG bytes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from ..checkpoint import atomic_write_bytes
from . import marking

RECIPE_KEY = "bitdance"
PARAMETERS_KEY = "parameters"
RECIPE_FORMAT = "bitdance-recipe"
RECIPE_VERSION = 1
# the fields that decide the pixels: two recipes that agree on these give the same image
REPLAY_KEYS = (
    "model_hash",
    "prompt",
    "negative_prompt",
    "class_label",
    "seed",
    "height",
    "width",
    "num_sampling_steps",
    "guidance_scale",
    "guidance_schedule",
    "parallel_num",
    "solver",
    "postprocess",
    "known",
)
_PARAM = re.compile(r'\s*([\w][\w \-/().]*):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


# ----------------------------------------------------------------------------- bits <-> hex
def encode_bits(bits_dhw: torch.Tensor) -> str:
    """±1 tensor of any shape -> hex string of its packed sign bits (row-major, +1 = 1)."""
    return np.packbits((bits_dhw.detach().cpu() > 0).numpy().ravel()).tobytes().hex()


def decode_bits(hex_str: str, shape: tuple[int, ...], signed: bool = True) -> torch.Tensor:
    """Inverse of `encode_bits`: float ±1 tensor (signed) or bool tensor of `shape`."""
    n = int(np.prod(shape))
    try:
        raw = np.frombuffer(bytes.fromhex(hex_str), dtype=np.uint8)
    except (TypeError, ValueError):
        raise ValueError("recipe field 'known' holds malformed hex data") from None
    flat = np.unpackbits(raw)[:n]
    if flat.size != n:
        raise ValueError(f"recipe field 'known' holds {flat.size} bits; {n} expected for shape {list(shape)}")
    t = torch.from_numpy(flat.astype(bool).reshape(shape))
    return t.float() * 2 - 1 if signed else t


def known_record(bits_dhw: torch.Tensor, keep_hw: torch.Tensor) -> dict[str, Any]:
    """Recipe entry for teacher-forced tokens of one image (edits, variations)."""
    return {"shape": list(bits_dhw.shape), "bits": encode_bits(bits_dhw), "keep": encode_bits(keep_hw)}


def known_from_record(record: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Recipe entry -> (bits (1, d, h, w) ±1, keep (1, h, w) bool)."""
    try:
        d, h, w = (int(x) for x in record["shape"])
        bits = decode_bits(record["bits"], (d, h, w))
        keep = decode_bits(record["keep"], (h, w), signed=False)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"recipe field 'known' is malformed ({e})") from None
    return bits[None], keep[None]


# ----------------------------------------------------------------------------- recipe
def make_recipe(
    settings: Mapping[str, Any],
    *,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    class_label: int | None = None,
    class_name: str | None = None,
    seed: int | None = None,
    verdict: Any = None,
    known: Mapping[str, Any] | None = None,
    edit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One image's full recipe: the call's settings plus its prompt/class, seed, filter verdict, edit info."""
    keys = (
        "model",
        "model_hash",
        "height",
        "width",
        "num_sampling_steps",
        "guidance_scale",
        "guidance_schedule",
        "parallel_num",
        "solver",
        "postprocess",
        "bitdance_version",
    )
    recipe: dict[str, Any] = {"format": RECIPE_FORMAT, "version": RECIPE_VERSION}
    recipe.update({k: settings.get(k) for k in keys})
    recipe["postprocess"] = list(settings.get("postprocess") or [])
    recipe.update(
        prompt=prompt,
        negative_prompt=negative_prompt,
        class_label=class_label,
        class_name=class_name,
        seed=seed,
        filter=verdict.to_dict() if hasattr(verdict, "to_dict") else verdict,
        known=dict(known) if known else None,
        edit=dict(edit) if edit else None,
    )
    return recipe


def recipe_matches(existing: Mapping[str, Any], planned: Mapping[str, Any]) -> bool:
    """True when both recipes agree on every pixel-deciding field (used to skip finished batch items)."""
    return all(existing.get(k) == planned.get(k) for k in REPLAY_KEYS)


# ----------------------------------------------------------------------------- A1111 text
def _quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(recipe: Mapping[str, Any]) -> str:
    """The A1111 `parameters` text: prompt line(s), optional negative line, then `Key: value, ...`."""
    prompt = recipe.get("prompt")
    if prompt is None:
        label = recipe.get("class_label")
        prompt = recipe.get("class_name") or f"class {label}"
    neg = recipe.get("negative_prompt")
    params: dict[str, Any] = {
        "Steps": recipe.get("num_sampling_steps"),
        "Sampler": recipe.get("solver"),
        "CFG scale": recipe.get("guidance_scale"),
        "Seed": recipe.get("seed"),
        "Size": f"{recipe.get('width')}x{recipe.get('height')}",
        "Model hash": recipe.get("model_hash"),
        "Model": recipe.get("model"),
        "CFG schedule": recipe.get("guidance_schedule"),
        "Parallel tokens": recipe.get("parallel_num"),
        "Class": recipe.get("class_label"),
        "Postprocess": " ".join(recipe.get("postprocess") or []) or None,
        "Edit": (recipe.get("edit") or {}).get("mode"),
        "Content filter": _filter_summary(recipe.get("filter")),
        "Version": f"bitdance {recipe.get('bitdance_version')}",
    }
    line = ", ".join(f"{k}: {_quote(v)}" for k, v in params.items() if v is not None)
    neg_text = f"\nNegative prompt: {neg}" if neg else ""
    return f"{prompt}{neg_text}\n{line}".strip()


def _filter_summary(verdict: Mapping[str, Any] | None) -> str | None:
    if not verdict:
        return None
    if verdict.get("rule"):
        status = "warned" if verdict.get("allowed") else "blocked"
        return f"{status} {verdict.get('category')}/{verdict.get('rule')}"
    return f"ok ({verdict.get('mode')})"


def parse_parameters(text: str) -> dict[str, Any]:
    """Parse A1111 `parameters` text -> {'prompt', 'negative_prompt', <key>: <value str>, ...}."""
    lines = text.strip().split("\n")
    out: dict[str, Any] = {}
    last = lines[-1] if lines else ""
    found = _PARAM.findall(last)
    if len(found) >= 3:
        lines = lines[:-1]
        for k, v in found:
            v = v.strip()
            if v.startswith('"') and v.endswith('"'):
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass
            out[k.strip()] = v
    prompt: list[str] = []
    neg: list[str] | None = None
    for ln in lines:
        if ln.startswith("Negative prompt:"):
            neg = [ln[len("Negative prompt:") :].strip()]
        elif neg is not None:
            neg.append(ln)
        else:
            prompt.append(ln)
    out["prompt"] = "\n".join(prompt)
    out["negative_prompt"] = "\n".join(neg) if neg is not None else None
    return out


# ----------------------------------------------------------------------------- PNG I/O
def png_bytes(image: Image.Image, recipe: Mapping[str, Any], mark: bool = True) -> bytes:
    """Encode `image` as PNG with the `parameters`, `bitdance` and XMP text chunks (+ C2PA if configured);
    `mark=False` (replays of PNGs made before marking existed only) leaves the marking out."""
    return image_bytes(image, recipe, "png", mark=mark)


def is_marked(path: str | Path) -> bool:
    """True when a PNG carries our XMP marking chunk (every image since marking exists)."""
    return marking.XMP_KEY in read_png_text(path)


def image_bytes(
    image: Image.Image,
    recipe: Mapping[str, Any],
    fmt: str = "png",
    quality: int | None = None,
    mark: bool = True,
) -> bytes:
    """Encode `image` as png / jpeg / webp, marked as AI-generated (XMP; C2PA when configured).

    Only PNG carries the recipe (text chunks); `quality` (1-100) applies to jpeg / webp.
    """
    if fmt not in marking.MIME:
        raise ValueError(f"image format must be one of {', '.join(marking.MIME)}, got {fmt!r}")
    creds = marking.configured_credentials() if mark else None
    xmp = marking.xmp_packet(recipe) if mark else None
    buf = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(PARAMETERS_KEY, a1111_parameters(recipe))  # Pillow falls back to iTXt for non-Latin-1
        info.add_text(
            RECIPE_KEY, json.dumps(recipe, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        )
        if xmp is not None:
            info.add_itxt(marking.XMP_KEY, xmp.decode("utf-8"), zip=False)  # XMP spec: uncompressed iTXt
        image.save(buf, format="PNG", pnginfo=info)
    else:
        kw: dict[str, Any] = {"quality": quality} if quality is not None else {}
        if xmp is not None:
            kw["xmp"] = xmp
        image.convert("RGB").save(buf, format=fmt.upper(), **kw)
    data = buf.getvalue()
    return marking.c2pa_sign(data, fmt, recipe, creds) if creds is not None else data


class OutputWriteError(OSError, ValueError):
    """An output file could not be written; the message names the path the caller gave."""


def save_png(image: Image.Image, path: str | Path, recipe: Mapping[str, Any], mark: bool = True) -> Path:
    """Atomically write `image` with its recipe to `path` (temp file + rename; never a partial file)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output {path} must be a .png file (the recipe is stored in PNG text chunks)")
    data = png_bytes(image, recipe, mark=mark)
    try:
        atomic_write_bytes(path, data)  # removes its temp file on failure
    except OSError as e:
        raise OutputWriteError(f"cannot write output {path}: {e.strerror or e}") from None
    return path


def read_png_text(path: str | Path) -> dict[str, str]:
    """All text chunks of a PNG; ValueError for a file that is not a readable PNG."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} not found")
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise ValueError(f"{path} is a {im.format} file; provenance is stored in PNG files only")
            im.load()
            return {k: v for k, v in im.info.items() if isinstance(v, str)}
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read {path} as an image ({e})") from None


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The `bitdance` recipe stored in a PNG; ValueError naming the problem when there is none."""
    text = read_png_text(path)
    if RECIPE_KEY not in text:
        hint = " (it has A1111 'parameters' from another tool)" if PARAMETERS_KEY in text else ""
        raise ValueError(
            f"{path} has no bitdance recipe{hint}; only images written by bitdance can be replayed"
        )
    try:
        recipe = json.loads(text[RECIPE_KEY])
    except json.JSONDecodeError:
        raise ValueError(f"{path}: the bitdance recipe chunk is not valid JSON") from None
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT:
        raise ValueError(f"{path}: the bitdance chunk is not a {RECIPE_FORMAT}")
    if recipe.get("version") != RECIPE_VERSION:
        raise ValueError(
            f"{path}: recipe version {recipe.get('version')!r} is not supported (this bitdance "
            f"reads version {RECIPE_VERSION})"
        )
    return recipe


def format_recipe(recipe: Mapping[str, Any], path: str | Path | None = None) -> str:
    """Human-readable multi-line summary for `bitdance inspect`."""
    r = recipe
    rows: list[tuple[str, Any]] = []
    if path is not None:
        rows.append(("file", str(path)))
    if r.get("prompt") is not None:
        rows.append(("prompt", r["prompt"]))
    else:
        rows.append(
            ("class", f"{r.get('class_label')}" + (f" ({r['class_name']})" if r.get("class_name") else ""))
        )
    if r.get("negative_prompt"):
        rows.append(("negative prompt", r["negative_prompt"]))
    rows += [
        ("model", f"{r.get('model')} (hash {r.get('model_hash')})"),
        ("seed", r.get("seed") if r.get("seed") is not None else "none (explicit generator; not replayable)"),
        ("size", f"{r.get('width')}x{r.get('height')} (width x height)"),
        (
            "sampling",
            f"{r.get('num_sampling_steps')} steps, {r.get('solver')}, "
            f"parallel tokens P={r.get('parallel_num')}",
        ),
        ("guidance", f"CFG {r.get('guidance_scale')} ({r.get('guidance_schedule')})"),
        ("post-processing", ", ".join(r.get("postprocess") or []) or "none"),
    ]
    if r.get("edit"):
        rows.append(("edit", ", ".join(f"{k}={v}" for k, v in r["edit"].items())))
    f = r.get("filter")
    if f:
        rows.append(("content filter", f"{_filter_summary(f)}: {f.get('reason')}"))
    rows.append(("bitdance", r.get("bitdance_version")))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k + ':':<{width + 2}}{v}" for k, v in rows]
    if path is not None and r.get("seed") is not None:
        lines.append(f"{'replay:':<{width + 2}}bitdance generate --replay {path}")
    return "\n".join(lines)


def check_model(recipe: Mapping[str, Any], model_hash: str, force: bool = False) -> None:
    """Refuse to replay on a different model unless forced."""
    if recipe.get("model_hash") != model_hash and not force:
        raise ValueError(
            f"model hash mismatch: the image was made with {recipe.get('model')} "
            f"(hash {recipe.get('model_hash')}), "
            f"the loaded model has hash {model_hash}; pass --force (force=True) to replay anyway"
        )


def replay_arguments(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Pipeline-call keyword arguments that regenerate the recipe's image."""
    from ..sampling.decode import KnownTokens  # noqa: PLC0415
    from .postprocess import steps_to_options  # noqa: PLC0415

    need = (
        "height",
        "width",
        "num_sampling_steps",
        "guidance_scale",
        "guidance_schedule",
        "parallel_num",
        "solver",
    )
    missing = [k for k in (*need, "seed") if k not in recipe]
    if missing:
        raise ValueError(f"the recipe lacks field {missing[0]!r}; it cannot be replayed")
    if recipe["seed"] is None:
        raise ValueError(
            "the image was made with an explicit torch.Generator (no seed recorded); it cannot be replayed"
        )
    kw: dict[str, Any] = {k: recipe[k] for k in need}
    kw["seed"] = recipe["seed"]
    if recipe.get("prompt") is not None:
        kw["prompt"] = recipe["prompt"]
        kw["negative_prompt"] = recipe.get("negative_prompt")
    else:
        kw["class_labels"] = recipe.get("class_label")
    kw.update(steps_to_options(recipe.get("postprocess") or []))
    if recipe.get("known"):
        bits, keep = known_from_record(recipe["known"])
        kw["known"] = KnownTokens(bits, keep)
    return kw
