"""Caption templates for the built-in datasets (the vocabularies live in ``bitdance.core.vocabulary``).

Captions vary (synonyms, sentence structure) but never change meaning; every choice is drawn from a
``random.Random`` seeded per (seed, index), so a dataset item always gets the same caption. The first entry
of every synonym list / template list is the canonical phrasing (used when paraphrasing is off).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# re-exported: the data side keeps importing them from here
from ..core.vocabulary import (  # noqa: F401
    COLOURS,
    COUNTS,
    NUMBER_WORDS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
)

_AN_EXCEPTIONS = ("one", "once", "uni", "use", "usu", "euro", "ewe")
_A_EXCEPTIONS = ("hour", "honest", "honor", "honour", "heir")


def pick(rng: random.Random | None, options: Sequence[str]) -> str:
    """The canonical (first) option when ``rng`` is None, else a seeded random choice."""
    if not options:
        raise ValueError("pick() needs at least one option")
    return options[0] if rng is None else rng.choice(list(options))


def article(phrase: str) -> str:
    """``"a"`` or ``"an"`` for the first word of ``phrase`` (spelling rule with common exceptions)."""
    word = phrase.strip().lower()
    if word.startswith(_A_EXCEPTIONS):
        return "an"
    if word.startswith(_AN_EXCEPTIONS):
        return "a"
    return "an" if word[:1] and word[0] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    """``"maple leaf"`` -> ``"a maple leaf"``; ``"apple"`` -> ``"an apple"``."""
    return f"{article(phrase)} {phrase}"


def plural(noun: str) -> str:
    """Regular English plural, enough for the shape and garment vocabulary."""
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def capitalize_first(text: str) -> str:
    """Upper-case the first character only (``str.capitalize`` would lower the rest)."""
    return text[:1].upper() + text[1:]


# --- digits ----------------------------------------------------------------------------------------------
DIGIT_TEMPLATES: tuple[str, ...] = (
    "the digit {word}",
    "a handwritten {num}",
    "a handwritten {word}",
    "the number {word}",
    "a handwritten digit {num}",
    "an image of the digit {word}",
    "digit {num}, handwritten",
)


def digit_caption(digit: int, rng: random.Random | None) -> str:
    """``7`` -> e.g. ``"the digit seven"`` or ``"a handwritten 7"``."""
    template = pick(rng, DIGIT_TEMPLATES)
    return template.format(num=digit, word=NUMBER_WORDS[digit])


# --- Fashion-MNIST ---------------------------------------------------------------------------------------
# Per class: (singular noun phrase without article, synonyms). "trousers" is plural-only, hence "pair of".
FASHION_NOUNS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "tee"),
    "trousers": ("trousers", "pants"),
    "pullover": ("pullover", "sweater", "jumper"),
    "dress": ("dress",),
    "coat": ("coat", "jacket"),
    "sandal": ("sandal",),
    "shirt": ("shirt",),
    "sneaker": ("sneaker", "trainer", "running shoe"),
    "bag": ("bag", "handbag"),
    "ankle boot": ("ankle boot", "boot"),
}
_PLURAL_ONLY = {"trousers", "pants"}

FASHION_TEMPLATES: tuple[str, ...] = (
    "{np}",
    "a photo of {np}",
    "{np} on a black background",
    "a picture of {np}",
    "a product shot of {np}",
    "{np}, isolated on black",
)


def garment_phrase(noun: str, colour: str | None) -> str:
    """``("sneaker", "red")`` -> ``"a red sneaker"``; ``("trousers", "blue")`` -> ``"a pair of blue
    trousers"``."""
    adjective_noun = f"{colour} {noun}" if colour else noun
    if noun in _PLURAL_ONLY:
        return f"a pair of {adjective_noun}"
    return with_article(adjective_noun)


def fashion_caption(class_name: str, colour: str | None, rng: random.Random | None) -> str:
    """Caption for a (possibly tinted) garment, e.g. ``"a photo of a pair of blue trousers"``."""
    noun = pick(rng, FASHION_NOUNS[class_name])
    return pick(rng, FASHION_TEMPLATES).format(np=garment_phrase(noun, colour))


# --- emoji -----------------------------------------------------------------------------------------------
EMOJI_TEMPLATES: tuple[str, ...] = (
    "{np}",
    "an emoji of {np}",
    "{name} icon",
    "{name} emoji",
    "an icon of {np}",
    "a picture of {np}",
    "{np}, emoji style",
)


def looks_plural(phrase: str) -> bool:
    """Heuristic for names such as "linked paperclips" that take no article ("bus", "glass" do)."""
    last = phrase.rsplit(" ", 1)[-1]
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ous"))


def emoji_caption(name: str, rng: random.Random | None) -> str:
    """``"maple leaf"`` -> e.g. ``"a maple leaf"``, ``"an emoji of a maple leaf"``, ``"maple leaf icon"``."""
    noun_phrase = name if looks_plural(name) else with_article(name)
    return pick(rng, EMOJI_TEMPLATES).format(np=noun_phrase, name=name)


# --- shapes ----------------------------------------------------------------------------------------------
INVERSE_RELATION: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
SIZE_SYNONYMS: dict[str, tuple[str, ...]] = {"small": ("small", "little"), "large": ("large", "big")}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the upper left", "at the top left", "in the top left corner"),
    "top right": ("in the top right", "in the upper right", "at the top right", "in the top right corner"),
    "bottom left": (
        "in the bottom left",
        "in the lower left",
        "at the bottom left",
        "in the bottom left corner",
    ),
    "bottom right": (
        "in the bottom right",
        "in the lower right",
        "at the bottom right",
        "in the bottom right corner",
    ),
    "center": ("in the center", "in the middle", "at the center", "in the centre"),
}
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left of"),
    "right of": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "beneath", "lower than"),
}
# "... and, left of it, a red circle" / "... with a red circle to its left".
RELATION_PRONOUN_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("left of it", "to its left", "on its left"),
    "right of": ("right of it", "to its right", "on its right"),
    "above": ("above it", "over it"),
    "below": ("below it", "under it", "beneath it"),
}

SINGLE_TEMPLATES: tuple[str, ...] = (
    "{np} {pos}",
    "there is {np} {pos}",
    "{pos}, {np}",
    "{np} placed {pos}",
    "{np} {pos} on a black background",
)
RELATION_TEMPLATES: tuple[str, ...] = (
    "{a} {rel} {b}",  # a red circle left of a blue square
    "there is {b} and, {rel_it}, {a}",  # there is a blue square and, left of it, a red circle
    "{b} with {a} {rel_it}",  # a blue square with a red circle to its left
    "{b} {inv} {a}",  # a blue square right of a red circle
    "{a} is {rel} {b}",
)
COUNT_TEMPLATES: tuple[str, ...] = (
    "{word} {colour} {noun}",
    "{num} {colour} {noun}",
    "there are {word} {colour} {noun}",
    "exactly {word} {colour} {noun}",
    "a group of {word} {colour} {noun}",
)
COUNT_ONE_TEMPLATES: tuple[str, ...] = (
    "one {colour} {noun}",
    "a single {colour} {noun}",
    "exactly one {colour} {noun}",
    "there is one {colour} {noun}",
)
