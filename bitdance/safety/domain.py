"""Benign examples of the shipped model's own domain, generated from the training captioners.

The semantic layer learns what to block from labelled examples; without examples of what the model is
*for*, a bare object name ("a coffin", "a hammer", "a drop of blood") can sit closer to a must-block
example than to any benign one. `domain_examples()` writes the model's vocabulary as benign rows:
every emoji name of the font (as the template captioner phrases it), garments of every class and
colour, and shapes scenes from both captioners. Deterministic (fixed seeds, a stream of its own, so
the scenes differ from the ones tests draw). A row whose reading is also a red-team suite prompt ("a
shooting star" is both an emoji name and a benign test prompt) is left out, so the suite stays held
out. `bitdance filter-train` writes them to
`semantic_domain.jsonl` next to the hand-written `semantic_train.jsonl`; both feed the index.
"""

from __future__ import annotations

import random

from bitdance.safety.semantic import DOMAIN_CATEGORY, assets_dir

DOMAIN_NAME = "semantic_domain.jsonl"
N_SHAPES = 120  # scenes per captioner (template paraphrase, rich)
SEED = "bitdance/safety/domain"


def domain_examples(with_emoji: bool = True) -> list[dict[str, str]]:
    """Benign rows {"prompt", "label": "allow", "category": "none"}, duplicates removed, in a fixed
    order. `with_emoji=False` leaves out the emoji names (no emoji font installed)."""
    from bitdance.core.vocabulary import COLOURS, FASHION_CLASSES  # noqa: PLC0415
    from bitdance.data.caption_templates import FASHION_NOUNS, emoji_caption, garment_phrase  # noqa: PLC0415
    from bitdance.data.rich_captions import rich_caption  # noqa: PLC0415
    from bitdance.data.shapes import caption_scene, sample_scene  # noqa: PLC0415

    rng = random.Random(SEED)
    prompts: list[str] = []
    if with_emoji:
        from bitdance.data.emoji import list_emoji  # noqa: PLC0415

        prompts += [emoji_caption(name, None) for _, name in list_emoji()]
    for cls in FASHION_CLASSES:
        for noun in FASHION_NOUNS[cls]:
            prompts += [garment_phrase(noun, colour) for colour in (None, *COLOURS)]
        prompts += [rich_caption("fashion_mnist", {"class_name": cls, "colour": None}, rng) for _ in range(4)]
    for _ in range(N_SHAPES):
        prompts.append(caption_scene(sample_scene(rng), rng, paraphrase=True))
        prompts.append(rich_caption("shapes", sample_scene(rng), rng))
    from bitdance.safety.normalize import reading  # noqa: PLC0415
    from bitdance.safety.redteam import SUITE_FILE, load_suite  # noqa: PLC0415

    suite = {reading(c.prompt) for c in load_suite(assets_dir() / SUITE_FILE)}
    keep = [p for p in dict.fromkeys(prompts) if reading(p) not in suite]
    return [{"prompt": p, "label": "allow", "category": DOMAIN_CATEGORY} for p in keep]
