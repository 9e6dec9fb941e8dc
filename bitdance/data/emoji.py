"""Single-code-point emoji rendered from Noto Color Emoji (Debian ``fonts-noto-color-emoji``).

An offline open-vocabulary text-image set: ~1.4k emoji, each named by ``unicodedata`` ("maple leaf",
"slice of pizza"). The code points come from the font's own ``cmap`` table (read here, no fontTools
needed), filtered to named, visible, stand-alone emoji. Label = position in that sorted list.
"""

from __future__ import annotations

import os
import struct
import unicodedata
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import Dataset

from .caption_templates import emoji_caption
from .items import Item, check_size, check_split, index_rng, make_item

FONT_ENV = "BITDANCE_EMOJI_FONT"
FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
INSTALL_HINT = "sudo apt-get install fonts-noto-color-emoji"
BITMAP_SIZE = 109  # the only pixel size of Noto Color Emoji's CBDT bitmaps
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "black": (0, 0, 0)}

# Code points that exist in the font only as parts of sequences (keycaps, flags, skin tones, ZWJ, tags).
_COMPONENT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x00A8),  # ASCII keycap bases (#, *, 0-9) and space
    (0x200D, 0x200D),
    (0x20E3, 0x20E3),
    (0xFE00, 0xFE0F),
    (0x1F1E6, 0x1F1FF),  # regional indicators (flags are pairs)
    (0x1F3FB, 0x1F3FF),  # skin-tone modifiers
    (0x1F9B0, 0x1F9B3),  # hair components
    (0xE0000, 0xE007F),  # tags
)


def find_emoji_font(path: str | os.PathLike | None = None) -> Path:
    """The Noto Color Emoji file: ``path``, ``$BITDANCE_EMOJI_FONT``, or a standard install location."""
    candidates = [path] if path else [os.environ.get(FONT_ENV)] if os.environ.get(FONT_ENV) else []
    candidates = candidates or list(FONT_CANDIDATES)
    for cand in candidates:
        if cand and Path(cand).is_file():
            return Path(cand)
    raise FileNotFoundError(
        f"Noto Color Emoji font not found (looked in {', '.join(str(c) for c in candidates)}). "
        f"Install it with: {INSTALL_HINT}  (or pass font_path=... / set ${FONT_ENV})"
    )


def read_cmap_codepoints(font_path: str | os.PathLike) -> list[int]:
    """Sorted code points mapped by a TrueType/OpenType font, from its format-12 (or format-4) cmap."""
    data = Path(font_path).read_bytes()
    num_tables = struct.unpack_from(">H", data, 4)[0]
    cmap_offset = None
    for i in range(num_tables):
        tag, _checksum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        if tag == b"cmap":
            cmap_offset = offset
    if cmap_offset is None:
        raise ValueError(f"{font_path} has no cmap table")
    n_sub = struct.unpack_from(">H", data, cmap_offset + 2)[0]
    subtables: dict[int, int] = {}
    for i in range(n_sub):
        _platform, _encoding, sub_offset = struct.unpack_from(">HHI", data, cmap_offset + 4 + 8 * i)
        fmt = struct.unpack_from(">H", data, cmap_offset + sub_offset)[0]
        subtables.setdefault(fmt, cmap_offset + sub_offset)
    points: set[int] = set()
    if 12 in subtables:
        base = subtables[12]
        n_groups = struct.unpack_from(">I", data, base + 12)[0]
        for g in range(n_groups):
            start, end, _glyph = struct.unpack_from(">III", data, base + 16 + 12 * g)
            points.update(range(start, end + 1))
    elif 4 in subtables:
        base = subtables[4]
        seg_count = struct.unpack_from(">H", data, base + 6)[0] // 2
        ends = struct.unpack_from(f">{seg_count}H", data, base + 14)
        starts = struct.unpack_from(f">{seg_count}H", data, base + 16 + 2 * seg_count)
        for start, end in zip(starts, ends):
            if start != 0xFFFF:
                points.update(range(start, end + 1))
    else:
        raise ValueError(f"{font_path}: no format-12 or format-4 cmap subtable (found {sorted(subtables)})")
    return sorted(points)


def _is_component(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _COMPONENT_RANGES)


@lru_cache(maxsize=4)
def _font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=BITMAP_SIZE)


@lru_cache(maxsize=4)
def list_emoji(font_path: str | None = None) -> tuple[tuple[str, str], ...]:
    """All usable emoji of the font as ``(char, name)`` sorted by code point; cached per process.

    Usable = mapped in the cmap, not a sequence component, named by ``unicodedata``, renders non-empty."""
    path = str(find_emoji_font(font_path))
    font = _font(path)
    out = []
    for cp in read_cmap_codepoints(path):
        if _is_component(cp):
            continue
        ch = chr(cp)
        name = unicodedata.name(ch, "")
        if not name:
            continue
        x0, y0, x1, y1 = font.getbbox(ch)
        if x1 <= x0 or y1 <= y0:
            continue
        out.append((ch, name.lower()))
    if not out:
        raise RuntimeError(f"no renderable emoji found in {path}; reinstall with: {INSTALL_HINT}")
    return tuple(out)


def render_emoji(
    ch: str,
    size: int,
    background: str = "white",
    shift: tuple[float, float] = (0.0, 0.0),
    font_path: str | None = None,
) -> Image.Image:
    """Render one emoji centred on a square ``background`` canvas -> RGB ``size`` x ``size``.
    ``shift`` moves the glyph by fractions of the canvas side (for augmentation)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; allowed: {', '.join(BACKGROUNDS)}")
    font = _font(str(find_emoji_font(font_path)))
    x0, y0, x1, y1 = font.getbbox(ch)
    side = max(x1 - x0, y1 - y0) + 16  # small margin so shifted glyphs stay on the canvas
    canvas = Image.new("RGB", (side, side), BACKGROUNDS[background])
    ox = (side - (x1 - x0)) / 2 - x0 + shift[0] * side
    oy = (side - (y1 - y0)) / 2 - y0 + shift[1] * side
    ImageDraw.Draw(canvas).text((ox, oy), ch, font=font, embedded_color=True)
    return canvas.resize((size, size), resample=Image.Resampling.LANCZOS)


class EmojiDataset(Dataset):
    """Items: image (3, size, size) in [-1, 1], caption, label = emoji id, meta {"char", "codepoint",
    "name", "emoji_index"}.

    The generation set is the whole font, so ``split="test"`` holds the same emoji (train/test differ only
    in caption and augmentation streams). ``repeats`` > 1 shows every emoji that many times with other
    captions (and shifts when ``augment``); index i -> emoji ``i % n``."""

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        seed: int = 0,
        background: str = "white",
        repeats: int = 1,
        augment: bool = False,
        max_shift: float = 0.06,
        font_path: str | os.PathLike | None = None,
    ) -> None:
        self.split, self.size, self.seed = check_split(split), check_size(size), int(seed)
        if background not in BACKGROUNDS:
            raise ValueError(f"unknown background {background!r}; allowed: {', '.join(BACKGROUNDS)}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats!r}")
        self.font_path = str(find_emoji_font(font_path))
        self.emoji = list_emoji(self.font_path)
        self.background, self.repeats = background, int(repeats)
        self.augment, self.max_shift = augment, float(max_shift)

    def __len__(self) -> int:
        return len(self.emoji) * self.repeats

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        emoji_index = index % len(self.emoji)
        ch, name = self.emoji[emoji_index]
        rng = index_rng(self.seed, index, f"emoji/{self.split}")
        caption = emoji_caption(name, rng)
        shift = (0.0, 0.0)
        if self.augment:
            m = self.max_shift
            shift = (rng.uniform(-m, m), rng.uniform(-m, m))
        img = render_emoji(ch, self.size, self.background, shift, self.font_path)
        meta = {"char": ch, "codepoint": f"U+{ord(ch):04X}", "name": name, "emoji_index": emoji_index}
        return make_item(img, caption, emoji_index, meta)
