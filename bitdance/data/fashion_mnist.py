"""Fashion-MNIST (60k train / 10k test, 28x28 grey garments) from Debian's ``dataset-fashion-mnist``.

With ``tint=True`` each garment is, deterministically per (seed, index), either kept plain (grey on black)
or tinted with one named colour from :data:`COLOURS`; the caption names the colour ("a red sneaker",
"a pair of blue trousers"), which turns the set into an offline colour x class text-to-image benchmark.
"""

from __future__ import annotations

import gzip
import os
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..core.vocabulary import FASHION_CLASSES
from .caption_templates import COLOURS, fashion_caption
from .items import Item, check_size, check_split, index_rng, make_item

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
ROOT_ENV = "BITDANCE_FASHION_MNIST"
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist"
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Official class titles (label order) and the caption-friendly names used in prompts.
FASHION_CLASS_TITLES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
PLAIN = None  # the "no tint" choice: grey garment on black, no colour word in the caption


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes -> ndarray with the stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {body.size}")
    return body.reshape(shape)


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$BITDANCE_FASHION_MNIST``, else the Debian package's folder."""
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


@lru_cache(maxsize=4)
def load_fashion_arrays(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((N, 28, 28) uint8 images, (N,) int64 labels) of one split; cached per process."""
    folder = resolve_root(root)
    paths = [_find(folder, stem) for stem in FILES[check_split(split)]]
    missing = [stem for stem, p in zip(FILES[split], paths) if p is None]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found in {folder} (missing {', '.join(m + '[.gz]' for m in missing)}). "
            f"Install them with: {INSTALL_HINT}  (or pass root=... / set ${ROOT_ENV})"
        )
    images, labels = (_read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST arrays in {folder} do not match: {images.shape} vs {labels.shape}")
    return images, labels.astype(np.int64)


def tint_garment(grey_HW: np.ndarray, colour: str | None) -> np.ndarray:
    """(H, W) uint8 grey garment on black -> (H, W, 3) uint8. ``None`` keeps it grey; a colour name paints
    the garment in that colour, keeping the fabric's shading (background stays black)."""
    v = grey_HW.astype(np.float32) / 255.0
    if colour is None:
        return np.repeat((v * 255.0)[..., None], 3, axis=2).round().astype(np.uint8)
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; allowed: {', '.join(COLOURS)}")
    peak = max(float(v.max()), 1e-6)
    coverage = np.clip(v * 4.0, 0.0, 1.0)  # soft garment mask: full colour from 25% grey upwards
    shade = 0.55 + 0.45 * (v / peak)  # keep texture but never drift towards black inside the garment
    rgb = np.asarray(COLOURS[colour], dtype=np.float32)
    return np.clip((coverage * shade)[..., None] * rgb, 0, 255).round().astype(np.uint8)


class FashionMNISTDataset(Dataset):
    """Items: image (3, size, size) in [-1, 1] (bicubic 28 -> size), caption, label = class 0-9,
    meta {"class_name", "colour" (None when plain), "index"}."""

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        tint: bool = False,
        seed: int = 0,
        root: str | os.PathLike | None = None,
    ) -> None:
        self.split, self.size, self.tint, self.seed = check_split(split), check_size(size), tint, int(seed)
        self.images, self.labels = load_fashion_arrays(split, None if root is None else str(root))
        self._choices: tuple[str | None, ...] = (PLAIN, *COLOURS)

    def __len__(self) -> int:
        return len(self.images)

    def colour_of(self, index: int) -> str | None:
        """The tint of item ``index`` (None = plain); deterministic in (seed, split, index)."""
        if not self.tint:
            return PLAIN
        return index_rng(self.seed, index, f"fashion/{self.split}/tint").choice(self._choices)

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        label = int(self.labels[index])
        colour = self.colour_of(index)
        img = Image.fromarray(tint_garment(self.images[index], colour), "RGB")
        if self.size != img.width:
            img = img.resize((self.size, self.size), resample=Image.Resampling.BICUBIC)
        name = FASHION_CLASSES[label]
        caption = fashion_caption(name, colour, index_rng(self.seed, index, f"fashion/{self.split}/caption"))
        return make_item(img, caption, label, {"class_name": name, "colour": colour, "index": index})
