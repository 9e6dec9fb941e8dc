"""Editing by teacher forcing: inpainting, outpainting, region re-rolls and variations.

The input image is encoded to bits with the tokenizer; tokens to keep are fed to the sampler unchanged
(`KnownTokens`), the others are sampled. Pixel masks map to the token grid conservatively: a token is
regenerated if ANY pixel of its f x f cell (f = tokenizer downsampling) is masked, so every masked pixel
is regenerated and kept tokens are returned bit-for-bit unchanged. Note that the decoder is convolutional
with global statistics, so decoded pixels of kept regions can still shift slightly near the edit.

- inpaint / re-roll: `mask` (white / True = regenerate) or `box` (x0, y0, x1, y1), pixel coordinates.
- outpaint: place the image on a larger `canvas` (height, width) at `offset` (x, y); everything outside
  the image (and any masked part of it) is regenerated. The canvas must be a size the model supports.
- vary: keep the first `from_step` patches in generation order and re-sample the rest.

`method` says how kept tokens condition the regenerated ones (`sampling/inpaint.py`): "joint" (default:
generation order unchanged; a regenerated token sees kept tokens earlier in order and in its own patch,
held inside the head), "kept_first" (every kept token, wherever it is: whole kept patches are fed first;
the raster-trained bitdance-mini loses adherence with it, docs/inference.md) or "substitute" (the
original behaviour: kept tokens pasted after each patch; recipes without a method replay with it).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..generator.patches import order_for
from ..sampling.decode import KnownTokens
from ..sampling.inpaint import check_method, default_edit_method


def _open(path: str | os.PathLike, what: str) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} not found")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read {what} {p}: {e}") from None


def load_image(image: Any) -> torch.Tensor:
    """PIL image, path, uint8 (H, W, 3) array or float (3, H, W) / (1, 3, H, W) in [-1, 1] -> (1, 3, H, W)."""
    if isinstance(image, (str, os.PathLike)):
        image = _open(image, "image")
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"an image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    if torch.is_tensor(image):
        t = image[None] if image.ndim == 3 else image
        if t.ndim != 4 or t.shape[:2] != (1, 3) or not t.is_floating_point():
            raise ValueError(
                f"an image tensor must be float (3, H, W) or (1, 3, H, W) in [-1, 1], got "
                f"{tuple(image.shape)}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError("the image tensor contains NaN or infinite values")
        return t.float()
    raise ValueError(
        f"image must be a PIL image, a path, a uint8 array or a tensor, got {type(image).__name__}"
    )


def is_bits(x: Any, d: int) -> bool:
    """A ±1 tensor with d channels, (d, h, w) or (1, d, h, w): token bits rather than pixels."""
    if not torch.is_tensor(x) or x.ndim not in (3, 4) or x.shape[-3] != d or not x.is_floating_point():
        return False
    return bool(((x == 1) | (x == -1)).all())


def to_bits(tokenizer: torch.nn.Module, image_or_bits: Any) -> torch.Tensor:
    """Bits (1, d, h, w) ±1 of an image (encoded with the tokenizer) or of given bits."""
    d = tokenizer.config.z_channels
    if is_bits(image_or_bits, d):
        b = image_or_bits if image_or_bits.ndim == 4 else image_or_bits[None]
        if b.shape[0] != 1:
            raise ValueError(f"edit one image at a time: got bits for {b.shape[0]} images")
        return b.float()
    img = load_image(image_or_bits)
    dev = next(tokenizer.parameters()).device
    with torch.no_grad():
        return tokenizer.encode(img.to(dev, next(tokenizer.parameters()).dtype)).float()


def load_mask(mask: Any, size: tuple[int, int]) -> torch.Tensor:
    """Mask (PIL / path / array / tensor; white or True = regenerate) -> (H, W) bool of the image size."""
    if isinstance(mask, (str, os.PathLike)):
        mask = _open(mask, "mask")
    if isinstance(mask, Image.Image):
        arr = np.asarray(mask.convert("L")) >= 128
    elif isinstance(mask, np.ndarray):
        if mask.ndim != 2:
            raise ValueError(f"a mask array must be 2-D (H, W), got shape {mask.shape}")
        arr = mask.astype(bool) if mask.dtype == bool else mask >= (128 if mask.dtype == np.uint8 else 0.5)
    elif torch.is_tensor(mask):
        if mask.ndim != 2:
            raise ValueError(f"a mask tensor must be 2-D (H, W), got shape {tuple(mask.shape)}")
        arr = (mask.bool() if mask.dtype == torch.bool else mask >= 0.5).cpu().numpy()
    else:
        raise ValueError(
            f"mask must be a PIL image, a path, a 2-D array or a tensor, got {type(mask).__name__}"
        )
    if tuple(arr.shape) != tuple(size):
        raise ValueError(
            f"mask is {arr.shape[1]}x{arr.shape[0]} (width x height) but the image is "
            f"{size[1]}x{size[0]}; they must match"
        )
    return torch.from_numpy(np.ascontiguousarray(arr))


def box_mask(box: Any, size: tuple[int, int]) -> torch.Tensor:
    """(x0, y0, x1, y1) pixel box (x1, y1 exclusive) -> (H, W) bool mask."""
    h, w = size
    if isinstance(box, str):
        try:
            box = [int(v) for v in box.split(",")]
        except ValueError:
            raise ValueError(f"box must be x0,y0,x1,y1 integers, got {box!r}") from None
    if (
        not isinstance(box, (list, tuple))
        or len(box) != 4
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box)
    ):
        raise ValueError(f"box must be four integers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(
            f"box {tuple(box)} must satisfy 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
            f"(image is {w}x{h}, width x height)"
        )
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def token_keep(regen_px: torch.Tensor, f: int) -> torch.Tensor:
    """(H, W) bool pixels to regenerate -> (H/f, W/f) bool tokens to keep (any masked pixel: regenerate)."""
    pooled = F.max_pool2d(regen_px[None, None].float(), kernel_size=f, stride=f)[0, 0]
    return pooled == 0


def first_patches_keep(grid: tuple[int, int], parallel_num: int, from_step: Any) -> torch.Tensor:
    """Keep-mask (h, w) of the tokens made in the first `from_step` AR steps (P tokens per step)."""
    total = grid[0] * grid[1] // parallel_num
    if isinstance(from_step, bool) or not isinstance(from_step, int) or not 0 <= from_step < total:
        raise ValueError(
            f"from_step must be an integer in 0..{total - 1} ({total} AR steps at P={parallel_num}), "
            f"got {from_step!r}"
        )
    keep = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    keep[order_for(grid, parallel_num)[: from_step * parallel_num]] = True
    return keep.view(grid)


def prepare_edit(
    tokenizer: torch.nn.Module,
    image: Any,
    *,
    mask: Any = None,
    box: Any = None,
    canvas: tuple[int, int] | None = None,
    offset: tuple[int, int] | None = None,
    supported_sizes: list[tuple[int, int]] | None = None,
) -> tuple[KnownTokens, tuple[int, int], dict[str, Any]]:
    """Encode `image` (on `canvas` for outpainting) and build the keep mask.

    Returns (KnownTokens with bits (1, d, h, w) and keep (1, h, w), (height, width) to generate, edit info).
    """
    if mask is not None and box is not None:
        raise ValueError("pass either mask or box, not both")
    if canvas is not None and not (
        isinstance(canvas, (list, tuple))
        and len(canvas) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in canvas)
    ):
        raise ValueError(f"canvas must be (height, width) integers, got {canvas!r}")
    f = tokenizer.downsample
    if is_bits(image, tokenizer.config.z_channels):
        if canvas is not None:
            raise ValueError("outpainting needs an image, not bits")
        bits = to_bits(tokenizer, image)
        size = (bits.shape[2] * f, bits.shape[3] * f)
        img = None
    else:
        img = load_image(image)
        size = (img.shape[2], img.shape[3])
    target = size if canvas is None else tuple(canvas)
    if supported_sizes is not None and target not in supported_sizes:
        shown = ", ".join(f"{a}x{b}" for a, b in supported_sizes[:12]) + (
            " ..." if len(supported_sizes) > 12 else ""
        )
        what = "canvas" if canvas is not None else "image"
        raise ValueError(
            f"unsupported {what} size {target[0]}x{target[1]} (height x width); this model supports: "
            f"{shown}"
            + ("" if canvas is not None else "; resize the image or outpaint to a supported canvas")
        )
    regen = None
    if mask is not None:
        regen = load_mask(mask, size)
    elif box is not None:
        regen = box_mask(box, size)
    info: dict[str, Any] = {"mode": "inpaint"}
    if box is not None:
        info["box"] = list(int(v) for v in (box.split(",") if isinstance(box, str) else box))
    if canvas is None:
        if regen is None:
            raise ValueError("give a mask or a box saying what to regenerate (or a canvas to outpaint)")
        if img is not None:
            bits = to_bits(tokenizer, img)
        out_size = size
    else:
        ch, cw = canvas
        if offset is None:
            offset = (((cw - size[1]) // 2) // f * f, ((ch - size[0]) // 2) // f * f)
        if not (
            isinstance(offset, (list, tuple)) and len(offset) == 2 and all(isinstance(v, int) for v in offset)
        ):
            raise ValueError(f"offset must be (x, y) integers, got {offset!r}")
        x, y = offset
        if not (0 <= x and 0 <= y and x + size[1] <= cw and y + size[0] <= ch):
            raise ValueError(
                f"a {size[1]}x{size[0]} image at offset ({x}, {y}) does not fit on a {cw}x{ch} canvas "
                "(width x height)"
            )
        if (ch, cw) == size:
            raise ValueError(
                "the canvas is the size of the image: nothing to outpaint (use a mask or box to inpaint)"
            )
        placed = torch.zeros(1, 3, ch, cw)  # mid-grey outside the image
        placed[:, :, y : y + size[0], x : x + size[1]] = img  # type: ignore[index]
        outside = torch.ones(ch, cw, dtype=torch.bool)
        outside[y : y + size[0], x : x + size[1]] = regen if regen is not None else False
        if ch % f or cw % f:
            raise ValueError(f"canvas {cw}x{ch} is not a multiple of the tokenizer cell size {f}")
        bits = to_bits(tokenizer, placed)
        regen = outside
        out_size = (ch, cw)
        info = {"mode": "outpaint", "canvas": [ch, cw], "offset": [x, y]}
    keep = token_keep(regen, f)
    if bool(keep.all()):
        raise ValueError(
            "the mask covers no pixels: nothing to regenerate (white / True marks pixels to regenerate)"
        )
    info["regenerated_tokens"] = int((~keep).sum())
    return KnownTokens(bits.cpu(), keep[None]), out_size, info


def expand_known(known: KnownTokens | None, count: int) -> KnownTokens | None:
    """Broadcast known tokens given for one image to every image of a call; validate shapes and dtype."""
    if known is None:
        return None
    if not isinstance(known, KnownTokens):
        raise ValueError("known must be a KnownTokens(bits, keep)")
    if known.bits.ndim != 4 or known.keep.ndim != 3 or known.keep.dtype != torch.bool:
        raise ValueError("known tokens must be bits (B, d, h, w) and a bool keep mask (B, h, w)")
    check_method(known.method)
    if known.bits.shape[0] == 1 and count > 1:
        return KnownTokens(
            known.bits.expand(count, -1, -1, -1), known.keep.expand(count, -1, -1), known.method
        )
    if known.bits.shape[0] != count or known.keep.shape[0] != count:
        raise ValueError(f"known tokens are given for {known.bits.shape[0]} images; {count} requested (or 1)")
    return known


def vary_known(
    tokenizer: torch.nn.Module,
    image_or_bits: Any,
    from_step: Any,
    parallel_num: int,
    supported_parallel: tuple[int, ...],
) -> tuple[KnownTokens, tuple[int, int], dict[str, Any]]:
    """Known tokens of a variation: the image's tokens made in the first `from_step` AR steps at P."""
    if parallel_num not in supported_parallel:
        allowed = list(supported_parallel)
        raise ValueError(f"parallel_num {parallel_num} not supported by this model; allowed: {allowed}")
    bits = to_bits(tokenizer, image_or_bits).cpu()
    f = tokenizer.downsample
    grid = (bits.shape[2], bits.shape[3])
    keep = first_patches_keep(grid, parallel_num, from_step)
    info = {"mode": "vary", "from_step": from_step}
    return KnownTokens(bits, keep[None]), (grid[0] * f, grid[1] * f), info


class EditingMixin:
    """`edit`, `vary` and `generate_with_known` for BitDancePipeline (which provides `_generate`)."""

    tokenizer: Any
    generator: Any
    defaults: dict[str, Any]
    supported_sizes: list[tuple[int, int]]
    _generate: Any

    def edit(
        self,
        image: Any,
        mask: Any = None,
        box: Any = None,
        prompt: str | list[str] | None = None,
        class_labels: Any = None,
        canvas: tuple[int, int] | None = None,
        offset: tuple[int, int] | None = None,
        method: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Inpaint / re-roll a region (`mask`: white or True = regenerate; or `box` (x0, y0, x1, y1) pixels)
        or outpaint onto `canvas` (height, width) at `offset` (x, y). Kept tokens come back unchanged.

        `image`: PIL image, path, uint8 (H, W, 3), float (3, H, W) in [-1, 1], or bits (d, h, w) ±1.
        `method`: how kept tokens condition the regenerated ones (module docstring); None: the model's
        default (`default_edit_method`: kept_first for models trained with any patch order, else joint).
        Other keyword arguments are those of `__call__` (seed, guidance_scale, output_type, ...).
        """
        method = check_method(method or default_edit_method(self.generator.config))
        known, (h, w), info = prepare_edit(
            self.tokenizer,
            image,
            mask=mask,
            box=box,
            canvas=canvas,
            offset=offset,
            supported_sizes=self.supported_sizes,
        )
        known.method = method
        return self.generate_with_known(prompt, class_labels, (h, w), known, info, kwargs)

    def vary(
        self,
        image_or_bits: Any,
        from_step: int,
        prompt: str | list[str] | None = None,
        class_labels: Any = None,
        method: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Variation: keep the first `from_step` AR steps (P-token patches in generation order), re-sample
        the rest. Other keyword arguments are those of `__call__`."""
        method = check_method(method or default_edit_method(self.generator.config))
        p = kwargs.get("parallel_num") or self.defaults["parallel_num"]
        known, size, info = vary_known(
            self.tokenizer, image_or_bits, from_step, p, self.generator.config.supported_parallel
        )
        known.method = method
        return self.generate_with_known(prompt, class_labels, size, known, info, kwargs)

    def generate_with_known(
        self,
        prompt: Any,
        class_labels: Any,
        size: tuple[int, int],
        known: KnownTokens | None,
        edit_info: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> Any:
        """A call at `size` with teacher-forced `known` tokens, recording `edit_info` in the recipes."""
        sig = {k: v for k, v in inspect.signature(type(self).__call__).parameters.items() if k != "self"}
        params = list(sig)
        fixed = ("prompt", "class_labels", "height", "width", "known")
        bad = sorted(set(kwargs) - set(params)) + sorted(set(kwargs) & set(fixed))
        if bad:
            allowed = ", ".join(p for p in params if p not in fixed)
            raise ValueError(f"unexpected argument {bad[0]!r} for an edit; allowed: {allowed}")
        call = {k: v.default for k, v in sig.items()}
        call.update(kwargs, prompt=prompt, class_labels=class_labels, height=size[0], width=size[1])
        call["known"] = known
        with torch.no_grad():
            return self._generate(**call, edit_info=edit_info)
