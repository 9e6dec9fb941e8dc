"""Built-in offline sets (digits, Fashion-MNIST, emoji) and the build_dataset registry.

Fashion-MNIST and emoji need Debian packages; their tests skip cleanly where those files are absent."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from bitdance.data import COLOURS, DATASETS, FASHION_CLASSES, build_dataset, dataset_options
from bitdance.data.caption_templates import FASHION_NOUNS, article, plural
from bitdance.data.emoji import FONT_CANDIDATES
from bitdance.data.fashion_mnist import DEFAULT_ROOT, FILES, tint_garment

HAS_FASHION = all((DEFAULT_ROOT / f"{stem}.gz").is_file() for stem in FILES["test"])
HAS_EMOJI_FONT = any(os.path.isfile(p) for p in FONT_CANDIDATES)
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason="sudo apt-get install dataset-fashion-mnist")
needs_emoji = pytest.mark.skipif(not HAS_EMOJI_FONT, reason="sudo apt-get install fonts-noto-color-emoji")


def _check_item(item, size: int) -> None:
    img = item["image"]
    assert img.shape == (3, size, size) and img.dtype == torch.float32
    assert img.min() >= -1.0 and img.max() <= 1.0 and img.max() > img.min()
    assert isinstance(item["caption"], str) and item["caption"]
    assert isinstance(item["label"], int) and isinstance(item["meta"], dict)


# --- registry ----------------------------------------------------------------------------------------------
def test_registry_names_and_errors(tmp_path):
    assert set(DATASETS) == {"fashion_mnist", "emoji", "shapes", "digits", "folder", "webdataset"}
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*fashion_mnist.*webdataset"):
        build_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split 'val'; allowed: train, test"):
        build_dataset("shapes", split="val")
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        build_dataset("shapes", size=4)
    with pytest.raises(ValueError, match="unknown option.*colour.*allowed"):
        build_dataset("shapes", colour="red")
    with pytest.raises(ValueError, match="root="):
        build_dataset("folder")
    assert "tint" in dataset_options("fashion_mnist") and "urls" in dataset_options("webdataset")


@pytest.mark.parametrize("size", [16, 32])
def test_shapes_via_registry_sizes(size):
    _check_item(build_dataset("shapes", size=size, length=3)[2], size)


def test_caption_grammar_helpers():
    assert [article(w) for w in ("apple", "maple", "unicorn", "hour", "orange", "umbrella")] == [
        "an",
        "a",
        "a",
        "an",
        "an",
        "an",
    ]
    assert [plural(w) for w in ("circle", "box", "daisy")] == ["circles", "boxes", "daisies"]


# --- digits ------------------------------------------------------------------------------------------------
def test_digits_split_labels_and_captions():
    pytest.importorskip("sklearn")
    from bitdance.data.caption_templates import NUMBER_WORDS

    train, test = build_dataset("digits", size=16), build_dataset("digits", split="test", size=16)
    assert (len(train), len(test)) == (1437, 360)
    assert train[0]["meta"]["index"] == 0 and test[0]["meta"]["index"] == 1437
    for i in range(0, 300, 23):
        item = test[i]
        _check_item(item, 16)
        d = item["label"]
        assert item["meta"]["digit"] == d
        assert NUMBER_WORDS[d] in item["caption"] or str(d) in item["caption"]
    assert train[5]["caption"] == build_dataset("digits", size=16)[5]["caption"]


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    from bitdance.data import digits

    digits.load_digit_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match="pip install scikit-learn"):
            digits.DigitsDataset()
    finally:
        digits.load_digit_arrays.cache_clear()


# --- Fashion-MNIST -----------------------------------------------------------------------------------------
def test_fashion_missing_files_give_apt_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="sudo apt-get install dataset-fashion-mnist"):
        build_dataset("fashion_mnist", root=tmp_path)


def test_tint_garment_colours():
    grey = np.zeros((28, 28), np.uint8)
    grey[8:20, 8:20] = 200
    assert (tint_garment(grey, None)[10, 10] == 200).all()
    for name, rgb in COLOURS.items():
        out = tint_garment(grey, name).astype(float)
        assert (out[0, 0] == 0).all()  # background stays black
        assert np.abs(out[10, 10] - np.array(rgb)).max() <= 1  # brightest fabric = the named colour


@needs_fashion
def test_fashion_mnist_plain_and_tinted():
    plain = build_dataset("fashion_mnist", split="test", size=32)
    assert len(plain) == 10_000
    item = plain[0]
    _check_item(item, 32)
    assert item["meta"]["colour"] is None and FASHION_CLASSES[item["label"]] == item["meta"]["class_name"]
    assert torch.allclose(item["image"][0], item["image"][1])  # grey

    tinted = build_dataset("fashion_mnist", split="test", size=32, tint=True, seed=1)
    again = build_dataset("fashion_mnist", split="test", size=32, tint=True, seed=1)
    colours = [tinted.colour_of(i) for i in range(200)]
    assert colours == [again.colour_of(i) for i in range(200)]
    assert set(colours) == set(COLOURS) | {None}
    for i in range(40):
        it = tinted[i]
        colour, name = it["meta"]["colour"], it["meta"]["class_name"]
        words = it["caption"]
        assert any(noun in words for noun in FASHION_NOUNS[name]), words
        assert (colour is None) == (not any(c in words.split() for c in COLOURS)), words
        if colour is not None:
            assert colour in words.split()
            if name == "trousers":
                assert "pair of" in words
            rgb = (it["image"] + 1) * 127.5  # (3, H, W)
            fabric = rgb[:, rgb.sum(0) > 120]  # garment pixels
            direction = torch.tensor(COLOURS[colour], dtype=torch.float32)
            cos = torch.nn.functional.cosine_similarity(fabric.mean(1), direction, dim=0)
            assert cos > 0.97, (colour, cos)


# --- emoji -------------------------------------------------------------------------------------------------
def test_emoji_missing_font_gives_apt_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="sudo apt-get install fonts-noto-color-emoji"):
        build_dataset("emoji", font_path=tmp_path / "none.ttf")


@needs_emoji
def test_emoji_list_render_and_captions():
    from bitdance.data import list_emoji

    emoji = list_emoji()
    names = dict(emoji)
    assert len(emoji) > 1000 and names["\U0001f341"] == "maple leaf"
    assert names["\U0001f355"] == "slice of pizza"
    assert "\U0001f1fa" not in names and "\U0001f3fb" not in names and "#" not in names  # components
    ds = build_dataset("emoji", size=32)
    assert len(ds) == len(emoji) and len(build_dataset("emoji", split="test", size=32)) == len(emoji)
    idx = [c for c, _ in emoji].index("\U0001f341")
    item = ds[idx]
    _check_item(item, 32)
    assert "maple leaf" in item["caption"] and item["label"] == idx and item["meta"]["codepoint"] == "U+1F341"
    assert item["image"][:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # white background corner
    assert (item["image"] < 0.5).any()  # the glyph is drawn
    black = build_dataset("emoji", size=32, background="black", repeats=2, augment=True)
    assert len(black) == 2 * len(emoji) and black[idx + len(emoji)]["meta"]["name"] == "maple leaf"
    assert black[idx]["image"][:, 0, 0].tolist() == [-1.0, -1.0, -1.0]
    assert not torch.equal(black[idx]["image"], black[idx + len(emoji)]["image"])  # shifted differently
