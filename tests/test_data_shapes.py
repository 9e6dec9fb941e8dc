"""Shapes scenes: determinism, exact captions, unambiguous geometry, faithful rendering."""

from __future__ import annotations

import itertools
import random
import re

import pytest
import torch

from bitdance.data import COLOURS, NUMBER_WORDS, SHAPES, build_dataset
from bitdance.data.caption_templates import INVERSE_RELATION, RELATION_PHRASES, RELATION_PRONOUN_PHRASES
from bitdance.data.shapes import (
    RELATION_MAX_OFFSET,
    RELATION_MIN_GAP,
    ShapesDataset,
    caption_scene,
    paraphrases,
    render_scene,
    sample_scene,
)

N_SCENES = 300


def _scenes(kind: str, n: int = N_SCENES) -> list[dict]:
    rng = random.Random(123)
    return [sample_scene(rng, (kind,)) for _ in range(n)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_same_seed_same_items_and_splits_differ():
    a, b = ShapesDataset("train", size=16, length=20), ShapesDataset("train", size=16, length=20)
    for i in (0, 7, 19):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and x["caption"] == y["caption"] and x["meta"] == y["meta"]
    test = ShapesDataset("test", size=16, length=20)
    assert [a.scene(i) for i in range(20)] != [test.scene(i) for i in range(20)]
    assert [a.scene(i) for i in range(5)] != [ShapesDataset(seed=1, length=5).scene(i) for i in range(5)]


def test_item_format():
    item = build_dataset("shapes", split="test", size=32, length=4)[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1.0 and item["image"].max() <= 1.0
    assert isinstance(item["caption"], str) and item["label"] == -1
    assert item["meta"]["kind"] in ("single", "relation", "count")
    assert item["meta"]["canonical_caption"] == caption_scene(item["meta"])


def test_canonical_captions_match_scene():
    for s in _scenes("single", 50):
        o = s["objects"][0]
        assert caption_scene(s) == f"a {o['size']} {o['colour']} {o['shape']} in the {o['position']}"
    for s in _scenes("relation", 50):
        a, b = s["objects"]
        expected = f"a {a['colour']} {a['shape']} {s['relation']} a {b['colour']} {b['shape']}"
        assert caption_scene(s) == expected.replace("a orange", "an orange")
    for s in _scenes("count", 50):
        o, n = s["objects"][0], s["count"]
        noun = o["shape"] + ("s" if n > 1 else "")
        assert caption_scene(s) == f"{NUMBER_WORDS[n]} {o['colour']} {noun}"
        assert len(s["objects"]) == n and all(x["shape"] == o["shape"] for x in s["objects"])


@pytest.mark.parametrize("kind", ["single", "relation", "count"])
def test_paraphrases_keep_meaning(kind):
    rng = random.Random(5)
    for s in _scenes(kind, 100):
        text = caption_scene(s, rng, paraphrase=True)
        words = _words(text)
        assert {c for c in COLOURS if c in words} == {o["colour"] for o in s["objects"]}, text
        assert {sh for sh in SHAPES if sh in words or sh + "s" in words} == {o["shape"] for o in s["objects"]}
        if kind == "count":
            n = s["count"]
            assert NUMBER_WORDS[n] in words or str(n) in text or (n == 1 and "single" in words), text
            assert not {w for k, w in NUMBER_WORDS.items() if k != n} & words, text
        if kind == "relation":
            rel, inv = s["relation"], INVERSE_RELATION[s["relation"]]
            a, b = s["objects"]
            a_np, b_np = f"{a['colour']} {a['shape']}", f"{b['colour']} {b['shape']}"
            if text.find(a_np) < text.find(b_np):  # "<a> rel <b>", "<a> is rel <b>"
                assert any(f" {p} " in text for p in RELATION_PHRASES[rel]), text
                assert not any(f" {p} " in text for p in RELATION_PHRASES[inv]), text
            else:  # "<b> inv <a>", "there is <b> and, rel it, <a>", "<b> with <a> rel-its"
                between = text[text.find(b_np) + len(b_np) :]
                assert any(f" {p} " in between for p in RELATION_PHRASES[inv]) or any(
                    p in text for p in RELATION_PRONOUN_PHRASES[rel]
                ), text


def test_paraphrases_function_distinct_and_canonical_first():
    s = _scenes("relation", 1)[0]
    out = paraphrases(s, n=6)
    assert out[0] == caption_scene(s) and len(out) == len(set(out)) == 6


def test_relation_geometry_is_unambiguous():
    for s in _scenes("relation"):
        a, b = s["objects"]
        (ax, ay), (bx, by) = a["centre"], b["centre"]
        rel = s["relation"]
        along, across = (bx - ax, by - ay) if rel in ("left of", "right of") else (by - ay, bx - ax)
        sign = 1 if rel in ("left of", "above") else -1  # a is nearer the origin for left of / above
        assert sign * along >= RELATION_MIN_GAP - 1e-6, s
        assert abs(across) <= RELATION_MAX_OFFSET + 1e-6, s
        assert not _overlap(a["bbox"], b["bbox"])
        assert (a["shape"], a["colour"]) != (b["shape"], b["colour"])


def test_single_position_and_sizes():
    for s in _scenes("single"):
        o = s["objects"][0]
        x, y = o["centre"]
        pos = o["position"]
        if pos == "center":
            assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05
        else:
            assert (y < 0.5) == pos.startswith("top") and (x < 0.5) == pos.endswith("left")
            assert abs(x - 0.5) > 0.15 and abs(y - 0.5) > 0.15
        px = o["extent"] * 32
        assert (8 <= px <= 10) if o["size"] == "small" else (14 <= px <= 17.5)


def test_count_objects_do_not_overlap_and_fit():
    for s in _scenes("count"):
        assert 1 <= s["count"] <= 4
        for o in s["objects"]:
            assert 7 <= o["extent"] * 32 <= 9
        for p, q in itertools.combinations(s["objects"], 2):
            assert not _overlap(p["bbox"], q["bbox"])
    for s in _scenes("single") + _scenes("relation") + _scenes("count"):
        for o in s["objects"]:
            assert 0.0 <= min(o["bbox"]) and max(o["bbox"]) <= 1.0


def test_render_puts_each_colour_at_each_centre():
    for s in _scenes("relation", 40) + _scenes("count", 40) + _scenes("single", 40):
        img = render_scene(s, 32)
        assert img.size == (32, 32) and img.mode == "RGB"
        if s["kind"] == "relation":
            assert img.getpixel((0, 0)) == (0, 0, 0)  # black background
        for o in s["objects"]:
            x, y = o["centre"]
            pixel = img.getpixel((min(int(x * 32), 31), min(int(y * 32), 31)))
            assert max(abs(p - q) for p, q in zip(pixel, COLOURS[o["colour"]])) <= 40, (s, pixel)


def test_bad_kinds_rejected():
    with pytest.raises(ValueError, match="allowed"):
        ShapesDataset(kinds=("spiral",))
