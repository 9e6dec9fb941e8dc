"""Datasets for BitDance: one item format, one registry, offline built-in sets and your own data.

Every dataset yields ``{"image": (3, H, W) float32 in [-1, 1], "caption": str, "label": int, "meta": dict}``;
batch them with ``DataLoader(ds, collate_fn=collate_items)``.
"""

from .caption_templates import COLOURS, NUMBER_WORDS, POSITIONS, RELATIONS, SHAPES, SIZES
from .digits import DigitsDataset
from .emoji import EmojiDataset, list_emoji, render_emoji
from .fashion_mnist import FASHION_CLASS_TITLES, FASHION_CLASSES, FashionMNISTDataset, tint_garment
from .folder import FolderDataset, read_manifest
from .items import SPLITS, Item, collate_items, pil_to_tensor, tensor_to_pil
from .registry import DATASETS, REQUIREMENTS, build_dataset, dataset_options
from .shapes import SCENE_KINDS, ShapesDataset, caption_scene, paraphrases, render_scene, sample_scene
from .shards import ShardDataset, expand_urls, write_shards

__all__ = [
    "COLOURS",
    "DATASETS",
    "FASHION_CLASSES",
    "FASHION_CLASS_TITLES",
    "NUMBER_WORDS",
    "POSITIONS",
    "RELATIONS",
    "REQUIREMENTS",
    "SCENE_KINDS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "DigitsDataset",
    "EmojiDataset",
    "FashionMNISTDataset",
    "FolderDataset",
    "Item",
    "ShapesDataset",
    "ShardDataset",
    "build_dataset",
    "caption_scene",
    "collate_items",
    "dataset_options",
    "expand_urls",
    "list_emoji",
    "paraphrases",
    "pil_to_tensor",
    "read_manifest",
    "render_emoji",
    "render_scene",
    "sample_scene",
    "tensor_to_pil",
    "tint_garment",
    "write_shards",
]
