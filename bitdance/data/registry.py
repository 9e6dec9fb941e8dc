"""``build_dataset(name, split, size, **options)``: one validated entry point for all datasets."""

from __future__ import annotations

import inspect
from typing import Any

from torch.utils.data import Dataset

from .digits import DigitsDataset
from .emoji import EmojiDataset
from .fashion_mnist import FashionMNISTDataset
from .folder import FolderDataset
from .items import check_size, check_split
from .shapes import ShapesDataset
from .shards import ShardDataset

DATASETS: dict[str, type[Dataset]] = {
    "fashion_mnist": FashionMNISTDataset,
    "emoji": EmojiDataset,
    "shapes": ShapesDataset,
    "digits": DigitsDataset,
    "folder": FolderDataset,
    "webdataset": ShardDataset,
}
# What each dataset needs beyond split/size, and where it comes from (for error messages and docs).
REQUIREMENTS: dict[str, str] = {
    "fashion_mnist": "apt: sudo apt-get install dataset-fashion-mnist",
    "emoji": "apt: sudo apt-get install fonts-noto-color-emoji",
    "shapes": "nothing (procedural)",
    "digits": "pip install scikit-learn",
    "folder": "root= folder of images and/or manifest= .jsonl/.csv",
    "webdataset": "urls= .tar shard path, glob, brace pattern or list",
}


def dataset_options(name: str) -> list[str]:
    """Keyword options accepted by dataset ``name`` besides ``split`` and ``size``."""
    params = inspect.signature(_lookup(name).__init__).parameters
    return [p for p in params if p not in ("self", "split", "size")]


def _lookup(name: str) -> type[Dataset]:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def build_dataset(name: str, split: str = "train", size: int = 32, **kw: Any) -> Dataset:
    """Build a dataset by name. Items are ``{"image": (3, size, size) float in [-1, 1], "caption": str,
    "label": int (-1 if none), "meta": dict}``; ``webdataset`` is an IterableDataset, the rest map-style.

    ``folder`` needs ``root=`` and/or ``manifest=``; ``webdataset`` needs ``urls=``. Unknown names, splits
    or options raise ValueError listing what is allowed."""
    cls = _lookup(name)
    check_split(split)
    check_size(size)
    allowed = dataset_options(name)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(f"dataset {name!r} got unknown option(s) {unknown}; allowed: {', '.join(allowed)}")
    if name == "webdataset" and "urls" not in kw:
        raise ValueError("dataset 'webdataset' needs urls= (a .tar path, glob, brace pattern or list)")
    if name == "folder" and kw.get("root") is None and kw.get("manifest") is None:
        raise ValueError("dataset 'folder' needs root= (a folder of images) and/or manifest= (.jsonl/.csv)")
    return cls(split=split, size=size, **kw)
