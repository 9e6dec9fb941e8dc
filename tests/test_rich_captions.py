"""The rich captioner describes each item truthfully and in many ways; any-order training is exact."""

from __future__ import annotations

import random
import re

import pytest
import torch

from bitdance.core.vocabulary import COLOURS, FASHION_CLASSES, NUMBER_WORDS
from bitdance.data.rich_captions import (
    COLOUR_WORDS,
    GARMENTS,
    SHAPE_WORDS,
    add_noise,
    fashion_rich,
    rich_caption,
)
from bitdance.data.shapes import ShapesDataset

COLOUR_OF = {w.split()[-1]: c for c, ws in COLOUR_WORDS.items() for w in ws}  # "crimson" -> red


def _mentioned_colours(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text.lower())
    return {COLOUR_OF[w] for w in words if w in COLOUR_OF}


def _scenes(n: int) -> list[dict]:
    ds = ShapesDataset(length=n, seed=3)
    return [ds.scene(i) for i in range(n)]


def test_shapes_captions_name_only_colours_in_the_scene() -> None:
    rng = random.Random(0)
    for scene in _scenes(400):
        for _ in range(5):
            text = rich_caption("shapes", scene, rng)
            present = {o["colour"] for o in scene["objects"]}
            assert _mentioned_colours(text) <= present, (text, present)


def test_count_captions_state_the_true_count() -> None:
    rng = random.Random(1)
    numbers = {**{w: k for k, w in NUMBER_WORDS.items()}, **{str(k): k for k in range(10)}}
    numbers.update({"pair": 2, "trio": 3, "single": 1})
    for scene in (s for s in _scenes(600) if s["kind"] == "count"):
        for _ in range(5):
            text = rich_caption("shapes", scene, rng).lower()
            said = {numbers[w] for w in re.findall(r"[a-z0-9]+", text) if w in numbers}
            assert said == {scene["count"]}, (text, scene["count"])


def test_fashion_captions_name_the_class_and_only_its_tint() -> None:
    rng = random.Random(2)
    for cls in FASHION_CLASSES:
        for colour in [None, *COLOURS]:
            for _ in range(10):
                text = fashion_rich({"class_name": cls, "colour": colour}, rng).lower()  # before typos
                assert any(syn.lower().split()[-1] in text for syn in GARMENTS[cls]), text
                assert _mentioned_colours(text) <= ({colour} if colour else set()), text


def test_captions_are_diverse_and_deterministic() -> None:
    scene = _scenes(1)[0]
    a = [rich_caption("shapes", scene, random.Random(f"s{i}")) for i in range(60)]
    b = [rich_caption("shapes", scene, random.Random(f"s{i}")) for i in range(60)]
    assert a == b
    assert len(set(a)) >= 30
    em = {
        rich_caption("emoji", {"char": "\U0001f346", "name": "aubergine"}, random.Random(i))
        for i in range(80)
    }
    assert len(em) >= 20


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="allowed: fashion_mnist, shapes, emoji"):
        rich_caption("digits", {}, random.Random(0))


def test_noise_changes_at_most_one_word_and_keeps_it_readable() -> None:
    rng = random.Random(5)
    text = "a small purple triangle in the top left"
    for _ in range(300):
        noisy = add_noise(text, rng).lower()
        changed = [(x, y) for x, y in zip(text.split(), noisy.split()) if x != y]
        assert len(noisy.split()) == len(text.split()) and len(changed) <= 1


def test_shape_words_cover_every_shape() -> None:
    assert set(SHAPE_WORDS) == {"circle", "square", "triangle"}


# ------------------------------------------------------------------------------- any-order training
def _tiny_model():
    from bitdance.core.configs import get_preset
    from bitdance.generator.transformer import BitDanceTransformer

    cfg = get_preset("generator", "tiny")
    torch.manual_seed(0)
    model = BitDanceTransformer(cfg).eval()
    with torch.no_grad():  # the head's zero-initialised modulation would hide every input at init
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def _loss(model, perm=None, p=None):
    from bitdance.core.random import GeneratorSource

    cfg = model.config
    g = torch.Generator().manual_seed(0)
    bits = torch.where(torch.rand(2, cfg.latent_bits, *cfg.grid_size, generator=g) < 0.5, -1.0, 1.0)
    cond = torch.tensor([1, 2])
    rng = GeneratorSource(torch.Generator().manual_seed(1))
    p = p or max(cfg.supported_parallel)
    return model.loss(bits, cond, rng, parallel_num=p, patch_perm=perm)


def test_identity_patch_order_is_the_default_loss_bit_for_bit() -> None:
    model = _tiny_model()
    p = model.config.parallel_num
    k = model.config.num_tokens // p
    assert k >= 2
    assert torch.equal(_loss(model, None, p), _loss(model, torch.arange(k), p))
    assert not torch.equal(_loss(model, None, p), _loss(model, torch.arange(k).flip(0), p))


def test_patch_perm_must_be_a_permutation() -> None:
    model = _tiny_model()
    p = model.config.parallel_num
    k = model.config.num_tokens // p
    with pytest.raises(ValueError, match="permutation"):
        _loss(model, torch.zeros(k, dtype=torch.long), p)
