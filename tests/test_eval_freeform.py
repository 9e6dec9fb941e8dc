"""The free-form suite: valid, split as promised, and no prompt a caption the training captioner can make.

The captioner draws every choice with ``rng.choice(options)`` (``caption_templates.pick``); a replaying rng
walks every path of choices, so the caption set below is exact (enumerated, not sampled). Comparison is
case-insensitive (the text encoder is uncased)."""

import itertools
from collections import Counter
from functools import lru_cache

import pytest

from bitdance.evaluation.classifier import assets_dir, classifier_paths
from bitdance.evaluation.freeform import DEV_FRACTION, build_freeform
from bitdance.evaluation.prompts import CATEGORIES, SUITES, load_suite

HAVE_EMOJI_CLS = classifier_paths("emoji")[1].is_file()
NGRAM = 3
# Measured on the committed suite (test_ngram_overlap_with_the_templates prints it): 30.5 % of a prompt's
# word 3-grams occur somewhere in the training captions (mean over prompts), and 4.3 % of the prompts have
# every 3-gram there (none is a whole caption). The bounds leave a little room for edits, no more.
MAX_MEAN_NGRAM_OVERLAP = 0.35
MAX_FULLY_COVERED = 0.06


class _ReplayRng:
    """Answers choice() from a fixed path of indices, recording every call's number of options."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.sizes = path, []

    def choice(self, options):  # noqa: ANN001, ANN201
        i = len(self.sizes)
        self.sizes.append(len(options))
        return options[self.path[i] if i < len(self.path) else 0]


def all_outputs(fn) -> set[str]:  # noqa: ANN001
    """Every string ``fn(rng)`` can return over all choice paths (depth-first)."""
    out: set[str] = set()
    stack: list[list[int]] = [[]]
    while stack:
        path = stack.pop()
        rng = _ReplayRng(path)
        out.add(fn(rng))
        for i in range(len(path), len(rng.sizes)):
            for j in range(1, rng.sizes[i]):
                stack.append([*path, *([0] * (i - len(path))), j])
    return out


@lru_cache(maxsize=1)
def training_captions() -> frozenset[str]:
    """Every shapes, fashion, emoji and digit caption the captioner can produce (lower-cased)."""
    from bitdance.core.vocabulary import COLOURS, FASHION_CLASSES, POSITIONS, RELATIONS, SHAPES, SIZES
    from bitdance.data import list_emoji
    from bitdance.data.caption_templates import digit_caption, emoji_caption, fashion_caption, with_article
    from bitdance.data.shapes import caption_scene

    caps: set[str] = set()
    for cls, colour in itertools.product(FASHION_CLASSES, [None, *COLOURS]):
        caps |= all_outputs(lambda r, c=cls, k=colour: fashion_caption(c, k, r))
    for _, name in list_emoji():
        caps |= all_outputs(lambda r, n=name: emoji_caption(n, r))
    for d in range(10):
        caps |= all_outputs(lambda r, d=d: digit_caption(d, r))
    things = list(itertools.product(COLOURS, SHAPES))
    for (colour, shape), size, pos in itertools.product(things, [None, *SIZES], POSITIONS):
        scene = {
            "kind": "single",
            "objects": [{"shape": shape, "colour": colour, "size": size, "position": pos}],
        }
        caps |= all_outputs(lambda r, s=scene: caption_scene(s, r, paraphrase=True))
    # relations: the noun phrases ("a red circle") are the only scene-dependent part, so enumerate the
    # sentence paths once per relation with placeholder objects, then put every pair of phrases in
    a_ph, b_ph = "a qqa qqshape", "a qqb qqshape"
    for rel in RELATIONS:
        scene = {
            "kind": "relation",
            "relation": rel,
            "objects": [{"shape": "qqshape", "colour": c, "size": None} for c in ("qqa", "qqb")],
        }
        forms = all_outputs(lambda r, s=scene: caption_scene(s, r, paraphrase=True))
        assert all(a_ph in f and b_ph in f for f in forms)
        for (ca, sa), (cb, sb) in itertools.product(things, things):
            a, b = with_article(f"{ca} {sa}"), with_article(f"{cb} {sb}")
            caps |= {f.replace(a_ph, a).replace(b_ph, b) for f in forms}
    for (colour, shape), n in itertools.product(things, (1, 2, 3, 4)):
        scene = {
            "kind": "count",
            "count": n,
            "objects": [{"shape": shape, "colour": colour, "size": None}] * n,
        }
        caps |= all_outputs(lambda r, s=scene: caption_scene(s, r, paraphrase=True))
    return frozenset(c.lower() for c in caps)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = _norm(text).replace(",", " ,").split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_the_enumeration_finds_the_captioner_s_own_captions():
    """The exhaustive caption set contains what the datasets actually emit (so a miss below is real)."""
    from bitdance.data import build_dataset

    caps = training_captions()
    shapes = build_dataset("shapes", "train", 32)
    assert all(shapes[i]["caption"].lower() in caps for i in range(200))
    assert {"a red circle left of a blue square", "three yellow squares", "a maple leaf"} <= caps
    assert "a photo of a pair of blue trousers" in caps


@pytest.mark.skipif(not HAVE_EMOJI_CLS, reason="needs the shipped emoji classifier (emoji names)")
def test_no_freeform_prompt_is_a_training_caption():
    caps = training_captions()
    suite = load_suite("freeform")
    hits = [s.prompt for s in suite if _norm(s.prompt) in caps]
    assert not hits, hits


@pytest.mark.skipif(not HAVE_EMOJI_CLS, reason="needs the shipped emoji classifier (emoji names)")
def test_ngram_overlap_with_the_templates():
    """Report (and bound) how much of the free-form wording the training captions share, word 3-grams."""
    caps = training_captions()
    seen: set[tuple[str, ...]] = set()
    for c in caps:
        seen |= _ngrams(c)
    fractions, covered = [], 0
    for s in load_suite("freeform"):
        grams = _ngrams(s.prompt)
        if not grams:
            continue
        share = len(grams & seen) / len(grams)
        fractions.append(share)
        covered += share == 1.0
    mean, full = sum(fractions) / len(fractions), covered / len(fractions)
    print(
        f"free-form word {NGRAM}-grams found in training captions: mean {mean:.3f}; "
        f"prompts fully covered {full:.3f}"
    )
    assert mean <= MAX_MEAN_NGRAM_OVERLAP and full <= MAX_FULLY_COVERED


@pytest.mark.skipif(not HAVE_EMOJI_CLS, reason="needs the shipped emoji classifier (emoji names)")
def test_freeform_suite_is_valid_split_and_rebuilds_identically(tmp_path):
    from bitdance.evaluation.freeform import write_freeform

    suite = load_suite("freeform")
    assert len(suite) >= 300 and len({_norm(s.prompt) for s in suite}) == len(suite)
    assert {s.category for s in suite} == set(CATEGORIES)
    assert {s.expect["domain"] for s in suite} == {"shapes", "fashion", "emoji"}
    dev, test = load_suite("freeform", split="dev"), load_suite("freeform", split="test")
    assert len(dev) + len(test) == len(suite) and {s.split for s in suite} == {"dev", "test"}
    per = Counter((s.category, s.split) for s in suite)
    for cat in CATEGORIES:  # stratified: every category in both splits, close to the dev fraction
        n = per[cat, "dev"] + per[cat, "test"]
        assert per[cat, "dev"] >= 1 and per[cat, "test"] >= 1
        assert abs(per[cat, "dev"] / n - DEV_FRACTION) <= 0.1, cat
    path = write_freeform(tmp_path / SUITES["freeform"])
    assert path.read_bytes() == (assets_dir() / SUITES["freeform"]).read_bytes()


def test_colour_swapped_pairs_stay_in_one_split():
    rows = [r for r in build_freeform() if r["category"] == "colour_attribution"]
    assert len(rows) % 2 == 0
    for a, b in zip(rows[::2], rows[1::2]):
        oa, ob = a["expect"]["objects"], b["expect"]["objects"]
        assert a["split"] == b["split"]
        # the same two shapes in the same order with their colours exchanged
        assert [o["shape"] for o in oa] == [o["shape"] for o in ob]
        assert [o["colour"] for o in oa] == [o["colour"] for o in ob][::-1]
        assert oa[0]["colour"] != oa[1]["colour"]


def test_split_option_needs_a_split_suite():
    with pytest.raises(ValueError, match="needs a suite whose every line has a 'split'"):
        load_suite("default", split="dev", emoji_names=None)
    with pytest.raises(ValueError, match="allowed: all, dev, test"):
        load_suite("freeform", split="train", emoji_names=None)
