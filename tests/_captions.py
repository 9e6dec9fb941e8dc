"""Every caption the training captioner can produce, enumerated exhaustively (test helper).

The captioner draws every choice with ``rng.choice(options)`` (``caption_templates.pick``); a replaying
rng walks every path of choices, so the set is exact, not sampled."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache


class _ReplayRng:
    """Answers choice() from a fixed path, recording the branching factor of every call."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.sizes = path, []

    def choice(self, options):  # noqa: ANN001, ANN201
        i = len(self.sizes)
        self.sizes.append(len(options))
        return options[self.path[i] if i < len(self.path) else 0]


def all_outputs(fn: Callable[[_ReplayRng], str]) -> set[str]:
    """Every string ``fn(rng)`` can return over all choice paths (depth-first)."""
    out: set[str] = set()
    stack: list[list[int]] = [[]]
    while stack:
        path = stack.pop()
        rng = _ReplayRng(path)
        out.add(fn(rng))
        sizes = rng.sizes
        # extend: every sibling of every position past the fixed prefix
        for i in range(len(path), len(sizes)):
            for j in range(1, sizes[i]):
                stack.append([*path, *([0] * (i - len(path))), j])
    return out


@lru_cache(maxsize=1)
def training_captions() -> frozenset[str]:
    """All shapes, fashion, emoji and digit captions (lower-cased): canonical and paraphrased."""
    from bitdance.core.vocabulary import COLOURS, FASHION_CLASSES, POSITIONS, RELATIONS, SHAPES, SIZES
    from bitdance.data import list_emoji
    from bitdance.data.caption_templates import digit_caption, emoji_caption, fashion_caption
    from bitdance.data.shapes import caption_scene

    caps: set[str] = set()
    for cls, colour in itertools.product(FASHION_CLASSES, [None, *COLOURS]):
        caps |= all_outputs(lambda r, c=cls, k=colour: fashion_caption(c, k, r))
    names = [name for _, name in list_emoji()]
    for name in names:
        caps |= all_outputs(lambda r, n=name: emoji_caption(n, r))
    for d in range(10):
        caps |= all_outputs(lambda r, d=d: digit_caption(d, r))
    things = list(itertools.product(COLOURS, SHAPES))
    for (colour, shape), size, pos in itertools.product(things, [None, *SIZES], POSITIONS):
        scene = {"kind": "single", "objects": [{"shape": shape, "colour": colour, "size": size, "position": pos}]}
        caps |= all_outputs(lambda r, s=scene: caption_scene(s, r, paraphrase=True))
    for (ca, sa), (cb, sb), rel in itertools.product(things, things, RELATIONS):
        scene = {
            "kind": "relation",
            "relation": rel,
            "objects": [{"shape": sa, "colour": ca, "size": None}, {"shape": sb, "colour": cb, "size": None}],
        }
        caps |= all_outputs(lambda r, s=scene: caption_scene(s, r, paraphrase=True))
    for (colour, shape), n in itertools.product(things, (1, 2, 3, 4)):
        scene = {"kind": "count", "count": n, "objects": [{"shape": shape, "colour": colour, "size": None}] * n}
        caps |= all_outputs(lambda r, s=scene: caption_scene(s, r, paraphrase=True))
    return frozenset(c.lower() for c in caps)
