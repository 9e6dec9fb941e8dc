"""scikit-learn's handwritten digits (1,797 images, 8x8, 17 grey levels) upsampled to ``size``.

A tiny, always-offline class-conditional set for tests and CI. White ink on black, label = the digit,
captions such as "the digit seven" or "a handwritten 7". Split: the first 80% train, the last 20% test.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .caption_templates import NUMBER_WORDS, digit_caption
from .items import Item, check_size, check_split, index_rng, make_item

TRAIN_FRACTION = 0.8
INSTALL_HINT = "pip install scikit-learn"


@lru_cache(maxsize=1)
def load_digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All digits as ((N, 8, 8) uint8 in [0, 255], (N,) int64 labels); cached per process."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(f"the 'digits' dataset needs scikit-learn: {INSTALL_HINT}") from exc
    bunch = load_digits()
    images = np.clip(np.asarray(bunch.images) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    return images, np.asarray(bunch.target, dtype=np.int64)


class DigitsDataset(Dataset):
    """Items: image (3, size, size) in [-1, 1] (grey, white on black), caption, label 0-9,
    meta {"digit", "word", "index"} where index is the position in sklearn's array."""

    def __init__(self, split: str = "train", size: int = 32, seed: int = 0) -> None:
        self.split, self.size, self.seed = check_split(split), check_size(size), int(seed)
        images, labels = load_digit_arrays()
        n_train = int(len(images) * TRAIN_FRACTION)
        self.offset = 0 if split == "train" else n_train
        stop = n_train if split == "train" else len(images)
        self.images, self.labels = images[self.offset : stop], labels[self.offset : stop]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Item:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        digit = int(self.labels[index])
        img = Image.fromarray(self.images[index], "L")
        img = img.resize((self.size, self.size), resample=Image.Resampling.BICUBIC).convert("RGB")
        caption = digit_caption(digit, index_rng(self.seed, index, f"digits/{self.split}"))
        meta = {"digit": digit, "word": NUMBER_WORDS[digit], "index": self.offset + index}
        return make_item(img, caption, digit, meta)
