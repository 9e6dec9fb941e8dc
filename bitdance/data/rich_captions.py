"""The second training captioner: many phrasings per item, drawn freshly each time a caption is needed.

``caption_templates`` gives every item one fixed caption from a few templates; this module describes the
same structured item (a dataset's ``meta``) the way people type: synonyms and hypernyms, carrier phrases
and filler ("please draw", "I'd like"), other word orders, plurals, counts as words or digits, relations in
many phrasings, two objects with no relation, casing and light typos. Every phrasing stays true to the item:
a relation scene may be described without its relation (both objects are there), a sized object without its
size, but never with a fact the image does not show. It imports nothing from the evaluation suites; the
free-form suite was written independently of it (``docs/evaluation.md`` reports the overlap).

Emoji names come from the font's Unicode names plus, when installed, Unicode CLDR annotations (Debian
``unicode-cldr-core``: the short "tts" name and the specific keywords of each emoji) and the ``emoji``
package's aliases (``emoji_names.py``).
"""

from __future__ import annotations

import random
from typing import Any

from .caption_templates import plural, with_article
from .emoji_names import emoji_aliases

CARRIERS: tuple[str, ...] = (
    "a photo of ", "a picture of ", "an image of ", "please draw ", "draw ", "i'd like ", "I want ",
    "can you make ", "show me ", "generate ", "make me ", "render ", "give me ", "a drawing of ",
    "a simple illustration of ", "create ", "i need ", "paint ", "could you draw ", "an illustration of ",
    "a small picture of ", "sketch ", "here is ", "a rendering of ",
)  # fmt: skip
SUFFIXES: tuple[str, ...] = (", please", " please", " pls", "!", ".", ", nothing else", " only", " thanks")
DARK_SUFFIXES: tuple[str, ...] = (
    " on a black background",
    " on black",
    ", isolated on black",
    " against black",
)

# ---------------------------------------------------------------------------------------------- fashion
GARMENTS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "tee", "tee shirt", "tshirt", "t shirt", "short-sleeved t-shirt", "crew neck tee",
                "top with short sleeves", "short sleeve top", "T-shirt", "basic tee", "cotton t-shirt"),
    "trousers": ("trousers", "pants", "jeans", "slacks", "chinos", "joggers", "sweatpants", "leggings",
                 "pair of trousers", "pair of jeans", "dress pants", "long pants"),
    "pullover": ("pullover", "sweater", "jumper", "sweatshirt", "hoodie", "knit sweater", "woolly jumper",
                 "long-sleeved sweater", "knitted pullover", "crewneck sweater", "cardigan"),
    "dress": ("dress", "frock", "gown", "sundress", "summer dress", "party dress", "evening dress",
              "shift dress", "long dress", "maxi dress", "cocktail dress"),
    "coat": ("coat", "jacket", "parka", "overcoat", "raincoat", "winter coat", "anorak", "trench coat",
             "puffer jacket", "long coat", "zip-up jacket"),
    "sandal": ("sandal", "flip flop", "flip-flop", "strappy sandal", "slide", "summer sandal",
               "beach sandal", "open-toe sandal", "high-heeled sandal", "sandal shoe"),
    "shirt": ("shirt", "button-up shirt", "button-down shirt", "dress shirt", "blouse", "collared shirt",
              "long-sleeved shirt", "flannel shirt", "work shirt", "checked shirt", "oxford shirt"),
    "sneaker": ("sneaker", "trainer", "running shoe", "sports shoe", "athletic shoe", "tennis shoe",
                "gym shoe", "low-top sneaker", "jogging shoe", "canvas sneaker", "kicks"),
    "bag": ("bag", "handbag", "purse", "tote bag", "tote", "shoulder bag", "satchel", "clutch",
            "shopping bag", "leather bag", "messenger bag"),
    "ankle boot": ("ankle boot", "boot", "chelsea boot", "bootie", "short boot", "leather boot",
                   "heeled boot", "winter boot", "ankle-high boot", "ankle-boot", "suede boot"),
}  # fmt: skip
PLURAL_ONLY = {"trousers", "pants", "jeans", "slacks", "chinos", "joggers", "sweatpants", "leggings", "kicks"}
PAIRED = {"sandal", "sneaker", "ankle boot"}  # worn in pairs: "a pair of ...", plurals
GARMENT_ADJECTIVES: tuple[str, ...] = (
    "nice", "stylish", "simple", "classic", "casual", "new", "cozy", "comfortable", "plain", "women's",
    "men's", "kids'", "fashionable", "everyday", "cute", "modern", "vintage", "cheap", "designer",
)  # fmt: skip
FASHION_CARRIERS: tuple[str, ...] = (
    "a product photo of ", "a product shot of ", "a catalogue photo of ", "an online shop photo of ",
    "a flat lay of ", "clothing: ", "a fashion item: ", "a studio photo of ", "a thumbnail of ",
    "someone's ", "a photo of my ",
)  # fmt: skip
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "red", "red", "crimson", "scarlet", "bright red"),
    "orange": ("orange", "orange", "orange", "tangerine", "bright orange"),
    "yellow": ("yellow", "yellow", "yellow", "lemon yellow", "bright yellow"),
    "green": ("green", "green", "green", "grass green", "bright green"),
    "blue": ("blue", "blue", "blue", "royal blue", "bright blue"),
    "purple": ("purple", "purple", "purple", "violet", "bright purple"),
    "pink": ("pink", "pink", "pink", "hot pink", "bright pink"),
    "white": ("white", "white", "white", "snow white", "pure white"),
}


def _colour(rng: random.Random, name: str) -> str:
    return rng.choice(COLOUR_WORDS[name]) if rng.random() < 0.3 else name


def _garment_np(rng: random.Random, cls: str, colour: str | None) -> str:
    noun = rng.choice(GARMENTS[cls])
    many = noun in PLURAL_ONLY or (cls in PAIRED and rng.random() < 0.4)
    adj = rng.choice(GARMENT_ADJECTIVES) + " " if rng.random() < 0.2 else ""
    word = noun if noun in PLURAL_ONLY or not many else plural(noun)
    if colour is not None:
        c = _colour(rng, colour)
        form = rng.random()
        if form < 0.6:
            core = f"{adj}{c} {word}"
        elif form < 0.75:
            core = f"{adj}{word} in {c}"
        elif form < 0.85:
            core = f"{adj}{word} {rng.choice(('coloured', 'colored', 'that is', 'which is'))} {c}"
        elif form < 0.93:
            core = f"{adj}{c}-coloured {word}"
        else:
            core = f"{adj}{word}, {c}"
    else:
        core = f"{adj}{word}"
    if many:
        return (
            rng.choice(("a pair of ", "some ", "", "two ")) + core
            if noun not in PLURAL_ONLY or rng.random() < 0.5
            else core
        )
    return with_article(core)


def fashion_rich(meta: dict[str, Any], rng: random.Random) -> str:
    np_ = _garment_np(rng, meta["class_name"], meta.get("colour"))
    r = rng.random()
    if r < 0.25:
        carrier = rng.choice(FASHION_CARRIERS)
        if carrier.endswith(("'s ", "my ")):  # "someone's red sneaker", not "someone's a red sneaker"
            np_ = np_.split(" ", 1)[1] if np_.startswith(("a ", "an ", "some ", "two ")) else np_
        text = carrier + np_
    elif r < 0.5:
        text = rng.choice(CARRIERS) + np_
    else:
        text = np_
    return text + _suffix(rng, DARK_SUFFIXES)


# ---------------------------------------------------------------------------------------------- emoji
EMOJI_FORMS: tuple[str, ...] = (
    "{np}", "{np}", "{name} emoji", "an emoji of {np}", "{name} icon", "a cartoon {name}", "the {name} emoji",
    "a cute {name}", "a little {name} icon", "an illustration of {np}", "{name} sticker",
    "{np}, flat icon style", "{np} emoji on white", "{np} on a white background", "emoji: {name}",
    "a {name} symbol", "{np} clipart", "a drawing of {np}", "{np}, emoji style", "an icon of {np}",
)  # fmt: skip


def emoji_rich(meta: dict[str, Any], rng: random.Random) -> str:
    names = [meta["name"], *emoji_aliases(meta.get("char", ""))]
    name = names[0] if rng.random() < 0.35 else rng.choice(names)
    np_ = name if name.endswith("s") and not name.endswith(("ss", "us")) else with_article(name)
    text = rng.choice(EMOJI_FORMS).format(np=np_, name=name)
    if rng.random() < 0.2:
        text = rng.choice(CARRIERS) + text
    return text + _suffix(rng, ())


# ---------------------------------------------------------------------------------------------- shapes
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "circle", "circle", "disc", "disk", "dot", "round shape", "circular shape", "ball",
               "round blob"),
    "square": ("square", "square", "square", "box", "block", "square shape", "tile", "rectangle"),
    "triangle": ("triangle", "triangle", "triangle", "triangular shape", "triangle shape", "wedge"),
}  # fmt: skip
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny", "mini", "very small", "itty bitty", "wee", "smallish", "teeny"),
    "large": ("large", "big", "huge", "giant", "enormous", "very large", "massive", "very big", "oversized"),
}
POSITION_WORDS: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the upper left", "at the top left", "in the top left corner",
                 "top-left", "in the upper-left corner", "near the top left", "up in the top left"),
    "top right": ("in the top right", "in the upper right", "at the top right", "in the top right corner",
                  "top-right", "in the upper-right corner", "near the top right", "up in the top right"),
    "bottom left": ("in the bottom left", "in the lower left", "at the bottom left",
                    "in the bottom left corner", "bottom-left", "in the lower-left corner",
                    "near the bottom left", "down in the bottom left"),
    "bottom right": ("in the bottom right", "in the lower right", "at the bottom right",
                     "in the bottom right corner", "bottom-right", "in the lower-right corner",
                     "near the bottom right", "down in the bottom right"),
    "center": ("in the center", "in the middle", "at the center", "in the centre", "centered",
               "in the middle of the picture", "right in the middle", "in the center of the image"),
}  # fmt: skip
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left of", "on the left side of", "left of and beside",
                "to the left hand side of", "further left than"),
    "right of": ("right of", "to the right of", "on the right of", "on the right side of",
                 "to the right hand side of", "further right than"),
    "above": ("above", "over", "higher than", "on top of", "up above", "sitting on top of", "stacked over",
              "higher up than", "atop", "placed above"),
    "below": ("below", "under", "beneath", "lower than", "underneath", "down below", "sitting under",
              "lower down than", "placed below"),
}  # fmt: skip
SIDE_WORDS: dict[str, str] = {
    "left of": "on the left",
    "right of": "on the right",
    "above": "on top",
    "below": "at the bottom",
}
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
PAIR_JOINERS: tuple[str, ...] = (
    " and ", " and ", " and ", " & ", " plus ", " along with ", " together with ", ", ", " and also ",
    " with ", " as well as ", " next to ", " beside ",
)  # fmt: skip


def _shape_np(rng: random.Random, obj: dict[str, Any], colour: bool = True, size: bool = False) -> str:
    words = []
    if size and obj.get("size"):
        words.append(rng.choice(SIZE_WORDS[obj["size"]]))
    if colour:
        words.append(_colour(rng, obj["colour"]))
    words.append(rng.choice(SHAPE_WORDS[obj["shape"]]))
    return with_article(" ".join(words))


def _single(scene: dict[str, Any], rng: random.Random) -> str:
    obj = scene["objects"][0]
    np_ = _shape_np(rng, obj, size=rng.random() < 0.7)
    if rng.random() < 0.25:  # the position left out: still true
        return np_
    pos = rng.choice(POSITION_WORDS[obj["position"]])
    form = rng.random()
    if form < 0.5:
        return f"{np_} {pos}"
    if form < 0.7:
        return f"{pos}, {np_}"
    if form < 0.85:
        return f"{np_} placed {pos}"
    return f"{pos} there is {np_}"


def _relation(scene: dict[str, Any], rng: random.Random) -> str:
    a, b = scene["objects"]
    rel = scene["relation"]
    if rng.random() < 0.3:  # two objects without their relation
        return _pair(a, b, rng)
    na, nb = _shape_np(rng, a), _shape_np(rng, b)
    form = rng.random()
    if form < 0.3:
        return f"{na} {rng.choice(RELATION_WORDS[rel])} {nb}"
    if form < 0.45:
        return f"{nb} {rng.choice(RELATION_WORDS[OPPOSITE[rel]])} {na}"
    if form < 0.55:
        return f"{na} is {rng.choice(RELATION_WORDS[rel])} {nb}"
    if form < 0.65:
        side = SIDE_WORDS[rel]
        return (
            f"{na} and {nb}, the {a['shape']} {side}"
            if a["shape"] != b["shape"]
            else (f"{na} {rng.choice(RELATION_WORDS[rel])} {nb}")
        )
    if form < 0.75:
        first, second = (a, b) if rel in ("left of", "above") else (b, a)
        s1, s2 = ("left", "right") if rel in ("left of", "right of") else ("top", "bottom")
        return f"{s1}: {_shape_np(rng, first)}. {s2}: {_shape_np(rng, second)}."
    if form < 0.87:
        pron = {
            "left of": "to its left",
            "right of": "to its right",
            "above": "above it",
            "below": "below it",
        }
        return f"{nb}, and {pron[rel]} {na}" if rng.random() < 0.5 else f"{nb} with {na} {pron[rel]}"
    return f"there's {nb} and, {rng.choice(RELATION_WORDS[rel])} it, {na}"


def _pair(a: dict[str, Any], b: dict[str, Any], rng: random.Random) -> str:
    if rng.random() < 0.5:
        a, b = b, a
    if a["shape"] == b["shape"] and rng.random() < 0.5:
        return f"two {plural(a['shape'])}, one {a['colour']} and one {b['colour']}"
    colour = a["shape"] == b["shape"] or rng.random() < 0.85  # "a square and a circle" is also true
    form = rng.random()
    if form < 0.12:
        return f"one {_shape_np(rng, a, colour)[2:]}, one {_shape_np(rng, b, colour)[2:]}"
    text = _shape_np(rng, a, colour) + rng.choice(PAIR_JOINERS) + _shape_np(rng, b, colour)
    if rng.random() < 0.15:
        text += rng.choice((" anywhere in the picture", ", in any position", ", side by side", " somewhere"))
    return text


def _count(scene: dict[str, Any], rng: random.Random) -> str:
    obj, n = scene["objects"][0], scene["count"]
    colour = _colour(rng, obj["colour"])
    shape = rng.choice(SHAPE_WORDS[obj["shape"]][:3] + SHAPE_WORDS[obj["shape"]][3:4])
    if n == 1:
        return rng.choice(
            (f"one {colour} {shape}", f"only one {colour} {shape}", f"just one {colour} {shape}",
             f"a single {colour} {shape}", f"1 {colour} {shape}", f"a {colour} {shape} - just the one",
             f"one {shape} ({colour})", f"exactly one {colour} {shape}", f"1 {colour} {shape} on its own")
        )  # fmt: skip
    many = plural(shape)
    num = str(n) if rng.random() < 0.4 else ("two", "three", "four")[n - 2]
    forms = [
        f"{num} {colour} {many}", f"{num} {many} in {colour}", f"{num} {many} that are {colour}",
        f"{num} {many}, {colour} ones", f"{num} {many} coloured {colour}", f"a set of {num} {colour} {many}",
        f"{num} {colour} {many} in total", f"exactly {num} {colour} {many}",
        f"a group of {num} {colour} {many}",
        f"{num} {colour} {many}, no other shapes", f"{num} {colour} {many} on a black canvas",
    ]  # fmt: skip
    if n == 2:
        forms.append(f"a pair of {colour} {many}")
    if n == 3:
        forms.append(f"a trio of {colour} {many}")
    return rng.choice(forms)


_SHAPE_KINDS = {"single": _single, "relation": _relation, "count": _count}


def shapes_rich(scene: dict[str, Any], rng: random.Random) -> str:
    text = _SHAPE_KINDS[scene["kind"]](scene, rng)
    if rng.random() < 0.2:
        text = rng.choice(CARRIERS) + text
    return text + _suffix(rng, DARK_SUFFIXES)


# ---------------------------------------------------------------------------------------------- noise
def _suffix(rng: random.Random, domain: tuple[str, ...]) -> str:
    r = rng.random()
    if r < 0.15 and domain:
        return rng.choice(domain)
    if r < 0.3:
        return rng.choice(SUFFIXES)
    return ""


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)
    kind = rng.random()
    if kind < 0.4:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if kind < 0.7:
        return word[:i] + word[i + 1 :]  # drop
    return word[:i] + word[i] + word[i:]  # double


# words whose misspelling could change the meaning (a typo never lands on these)
PROTECTED = {
    "three", "seven", "eight", "left", "right", "above", "below", "under", "beneath", "lower", "higher",
    "upper", "bottom", "middle", "center", "centre", "single", "exactly", *COLOUR_WORDS,
}  # fmt: skip


def add_noise(text: str, rng: random.Random) -> str:
    """Casing and light typos as people type them (a typo in at most one word of >= 5 letters, never in a
    number, colour or position word)."""
    if rng.random() < 0.06:
        words = text.split(" ")
        long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha() and w.lower() not in PROTECTED]
        if long:
            i = rng.choice(long)
            words[i] = _typo(words[i], rng)
            text = " ".join(words)
    r = rng.random()
    if r < 0.12:
        return text[:1].upper() + text[1:]
    if r < 0.18:
        return text.title()
    if r < 0.21:
        return text.upper()
    return text


def rich_caption(source: str, meta: dict[str, Any], rng: random.Random) -> str:
    """A fresh caption of one item: ``source`` is the dataset name (fashion_mnist, shapes, emoji), ``meta``
    the item's structured description (the dataset's ``meta``)."""
    if source == "fashion_mnist":
        text = fashion_rich(meta, rng)
    elif source == "shapes":
        text = shapes_rich(meta, rng)
    elif source == "emoji":
        text = emoji_rich(meta, rng)
    else:
        raise ValueError(f"no rich captions for source {source!r}; allowed: fashion_mnist, shapes, emoji")
    return add_noise(text, rng)


RICH_SOURCES = ("fashion_mnist", "shapes", "emoji")
