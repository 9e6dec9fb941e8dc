"""The filter never blocks what the shipped model is for: captions of its own domains and people's phrasings
of them (garments, shapes scenes, emoji names), drawn from both training captioners and the free-form
evaluation suite (dev and test: benign by construction, so no tuning signal leaks through this test)."""

from __future__ import annotations

import json
import random

import pytest

from bitdance.core.vocabulary import COLOURS, FASHION_CLASSES
from bitdance.data.caption_templates import emoji_caption, fashion_caption
from bitdance.data.rich_captions import rich_caption
from bitdance.data.shapes import ShapesDataset, caption_scene
from bitdance.pipeline import models_dir
from bitdance.safety.filter import ContentFilter


@pytest.fixture(scope="module")
def content_filter() -> ContentFilter:
    return ContentFilter()


def _blocked(f: ContentFilter, prompts: list[str]) -> list[str]:
    return [p for p in prompts if not f.check(p).allowed]


def test_template_captions_pass(content_filter: ContentFilter) -> None:
    rng = random.Random(0)
    prompts = [
        fashion_caption(c, col, rng) for c in FASHION_CLASSES for col in [None, *COLOURS] for _ in range(3)
    ]
    shapes = ShapesDataset(length=120, seed=1)
    prompts += [caption_scene(shapes.scene(i), rng, paraphrase=True) for i in range(120)]
    assert _blocked(content_filter, prompts) == []


def test_every_emoji_name_passes(content_filter: ContentFilter) -> None:
    from bitdance.data.emoji import list_emoji

    names = [name for _, name in list_emoji()]
    assert len(names) > 1000
    assert _blocked(content_filter, [emoji_caption(n, None) for n in names]) == []


def test_rich_captions_pass(content_filter: ContentFilter) -> None:
    rng = random.Random(1)
    prompts = [
        rich_caption("fashion_mnist", {"class_name": c, "colour": col}, rng)
        for c in FASHION_CLASSES
        for col in [None, *COLOURS]
    ]
    shapes = ShapesDataset(length=150, seed=2)
    prompts += [rich_caption("shapes", shapes.scene(i), rng) for i in range(150)]
    assert _blocked(content_filter, prompts) == []


def test_free_form_suite_passes(content_filter: ContentFilter) -> None:
    path = models_dir().parent / "eval" / "prompts_freeform.jsonl"
    prompts = [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line]
    assert len(prompts) >= 300
    assert _blocked(content_filter, prompts) == []


def test_no_rule_fires_on_any_emoji_phrasing() -> None:
    """Rules only (fast): every emoji name and alias in every phrasing of the rich captioner."""
    from bitdance.data.caption_templates import with_article
    from bitdance.data.emoji import list_emoji
    from bitdance.data.emoji_names import emoji_aliases
    from bitdance.data.rich_captions import EMOJI_FORMS

    rules = ContentFilter(semantic=None)
    names = {n for ch, name in list_emoji() for n in (name, *emoji_aliases(ch))}
    prompts = [form.format(np=with_article(n), name=n) for n in sorted(names) for form in EMOJI_FORMS]
    assert len(prompts) > 20_000
    assert _blocked(rules, prompts) == []
