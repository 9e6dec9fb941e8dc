"""Prompt normalization for the content filter: fold obfuscations into a lattice of word forms.

The filter never matches substrings of ordinary words (that is how "Scunthorpe" and "cocktail" get
blocked by naive filters). Instead the prompt becomes a sequence of *pieces* (runs of letters, digits
and leet symbols) and a small set of *edges* over them, each carrying the spellings ("forms") a rule
may match:

- every piece is an edge with forms: the folded text, leetspeak readings (only if the piece also has a
  letter, so "2024" stays a number), squeezed letter repeats ("nuuude" -> "nude") and a de-pluralized
  form ("nudes" -> "nude");
- a whitespace-free chunk split by punctuation ("n.u.d.e", "spider-man") also gets one edge with the
  pieces joined ("nude", "spiderman");
- a run of >= 3 single-character pieces ("n u d e", "n-u-d-e") gets one edge with the run collapsed,
  and is reported in `Lattice.runs` so the matcher may look for rule words inside it.

Character folding (per code point, cached): casefold, NFKD (fullwidth and other compatibility forms),
drop combining marks and format characters (zero-width space/joiners, BOM, word joiner, soft hyphen),
then map Cyrillic/Greek/Armenian/Cherokee look-alikes, small capitals and enclosed or regional-indicator
letters to Latin. Every piece also offers its English gloss when it is a common foreign form of a
listed word (`bitdance/assets/safety/glossary.json`: "juifs" -> "jews", "nackt" -> "naked").
Everything is linear in the prompt length.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

# Cyrillic and Greek letters that render like Latin ones (after casefold, so lower case only).
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "г": "r", "з": "3", "и": "u", "к": "k", "м": "m", "н": "h",
    "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "і": "i", "ї": "i",
    "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h", "ɡ": "g", "ѵ": "v",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "ρ": "p", "σ": "o", "ς": "s", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin small capitals (no decomposition either)
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
    "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # Latin letters without a decomposition
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ƅ": "b", "ɑ": "a", "ɩ": "i", "ʋ": "u",
    "ɾ": "r", "ʂ": "s", "ȿ": "s", "ƙ": "k", "ɲ": "n", "ŋ": "n", "ɱ": "m", "ʐ": "z", "ɨ": "i",
    "ꞵ": "b", "ꭓ": "x", "ǝ": "e", "ɘ": "e", "ɔ": "c", "ʌ": "v", "ʍ": "w", "ɥ": "h", "ɹ": "r", "ʇ": "t",
    # more Cyrillic and Greek (upper-case forms casefold onto these)
    "ԍ": "g", "ԏ": "t", "ӕ": "ae", "ҝ": "k", "ҡ": "k", "ң": "h", "ү": "y", "ұ": "y", "ҳ": "x", "ђ": "h",
    "ћ": "h", "џ": "u", "ѡ": "w", "ѳ": "o", "ӧ": "o", "ӓ": "a", "ӱ": "y", "л": "n", "д": "d",
    "ш": "w", "щ": "w", "ц": "u", "я": "r", "б": "b", "э": "e",
    "ϐ": "b", "ϑ": "o", "ϒ": "y", "ϕ": "o", "ϖ": "w", "ϱ": "p", "ϵ": "e", "ϻ": "m", "ζ": "z", "λ": "a",
    "θ": "o", "ξ": "e", "π": "n", "φ": "o", "ψ": "w",
    # Armenian and Cherokee letters that look Latin
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "ք": "p", "զ": "q", "ա": "w", "ւ": "l", "ռ": "n",
    "ꭺ": "a", "ꭼ": "e", "ꮋ": "h", "ꭵ": "i", "ꮶ": "k", "ꮇ": "m", "ꮎ": "o", "ꮲ": "p", "ꮪ": "s", "ꮖ": "t",
}  # fmt: skip
HOMOGLYPHS["ꮮ"] = "l"
# Cherokee casefolds to its upper-case letters: map those too
HOMOGLYPHS.update({k.casefold(): v for k, v in list(HOMOGLYPHS.items()) if k.casefold() not in HOMOGLYPHS})
# Enclosed letters NFKD does not decompose (negative circled/squared 🅐 🅰) and regional indicators 🇦.
for _base in (0x1F150, 0x1F170, 0x1F1E6, 0x1F130):
    for _k in range(26):
        HOMOGLYPHS[chr(_base + _k)] = chr(ord("a") + _k)

# Leetspeak: symbol -> letters it may stand for. Ambiguous symbols list several letters.
LEET: dict[str, str] = {
    "0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "li", "+": "t", "€": "e", "£": "l",
}  # fmt: skip
# Symbols that are part of a word inside it, but ordinary punctuation at its edges ("kill!", "|x|").
EDGE_PUNCT = frozenset("!|+")
WORD_SYMBOLS = frozenset(c for c in LEET if not c.isalnum())
MAX_AMBIGUOUS = 2  # leet symbols with several readings: enumerate all readings up to this many
MIN_RUN = 3  # single characters in a row that count as a spaced-out word ("n u d e")


@lru_cache(maxsize=1)
def glossary() -> dict[str, str]:
    """Folded foreign word -> English gloss (`bitdance/assets/safety/glossary.json`)."""
    import json  # noqa: PLC0415
    from importlib import resources  # noqa: PLC0415

    data = json.loads(
        (resources.files("bitdance") / "assets" / "safety" / "glossary.json").read_text("utf-8")
    )
    return {fold_text(k): fold_text(v) for k, v in data["words"].items()}


@lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """Fold one code point: casefold, NFKD, drop marks/format chars, map look-alikes. May return ''."""
    out = []
    for c in unicodedata.normalize("NFKD", ch.casefold()):
        if unicodedata.combining(c) or unicodedata.category(c) in ("Cf", "Mn", "Me"):
            continue
        out.append(HOMOGLYPHS.get(c, c))
    return "".join(out)


def fold_text(text: str) -> str:
    """Fold a whole string (used for rule phrases; prompts go through `build_lattice`)."""
    return "".join(fold_char(c) for c in text)


# A piece: word characters and leet symbols, but "!|+" only inside it ("kill!" is "kill").
_INNER = "[^\\W_]|[" + re.escape("".join(sorted(WORD_SYMBOLS - EDGE_PUNCT))) + "]"
_EDGE = "[" + re.escape("".join(sorted(EDGE_PUNCT))) + "]"
_PIECE = re.compile(f"(?:{_INNER})(?:(?:{_INNER}|{_EDGE})*(?:{_INNER}))?")
_SPACE = re.compile(r"\s")


def _leet_readings(text: str) -> list[str]:
    """All leet readings of `text` (bounded: ambiguous symbols beyond MAX_AMBIGUOUS get one reading each)."""
    options = [LEET.get(c, c) if c in LEET else c for c in text]
    ambiguous = [i for i, o in enumerate(options) if len(o) > 1]
    if len(ambiguous) <= MAX_AMBIGUOUS:
        return ["".join(p) for p in itertools.product(*options)]
    # Too many to enumerate: read every ambiguous symbol as its first letter, then as its second.
    return ["".join(o[k] if len(o) > 1 else o for o in options) for k in (0, 1)]


def _squeeze(text: str, keep: int) -> str:
    """Shorten runs of >= 3 equal characters to `keep` characters."""
    out: list[str] = []
    for ch, grp in itertools.groupby(text):
        n = len(list(grp))
        out.append(ch * (min(n, keep) if n >= 3 else n))
    return "".join(out)


def same_length_forms(text: str) -> list[str]:
    """`text` plus its leet readings (only if it has a letter, so "2024" stays a number)."""
    if any(c in LEET for c in text) and any(c.isalpha() for c in text):
        return list(dict.fromkeys([text, *_leet_readings(text)]))
    return [text]


def word_forms(text: str) -> tuple[str, ...]:
    """Spellings a folded piece of text may stand for; the text itself comes first."""
    # Cache ordinary words only: joined chunks and letter runs can be arbitrarily long.
    return _word_forms_cached(text) if len(text) <= 48 else _word_forms(text)


def _word_forms(text: str) -> tuple[str, ...]:
    forms = same_length_forms(text)
    if any(a == b == c for a, b, c in zip(text, text[1:], text[2:])):
        forms += [_squeeze(f, k) for f in list(forms) for k in (1, 2)]
    for f in list(forms):
        if len(f) > 3 and f.endswith("s") and not f.endswith("ss"):
            forms.append(f[:-1])
            if f.endswith("es"):
                forms.append(f[:-2])
    gloss = glossary()
    forms += [gloss[f] for f in forms if f in gloss and " " not in gloss[f]]
    return tuple(dict.fromkeys(forms))


_word_forms_cached = lru_cache(maxsize=16384)(_word_forms)


@dataclass
class Lattice:
    """Pieces of a folded prompt plus the edges (alternative tokens) over them.

    Piece i covers prompt[starts[i]:ends[i]]; `edges[i]` lists (end_piece, forms) for tokens that begin
    at piece i; `runs` lists (first_piece, end_piece, collapsed_text) for spaced-out single letters.
    """

    prompt: str
    texts: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    edges: list[list[tuple[int, tuple[str, ...]]]] = field(default_factory=list)
    runs: list[tuple[int, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def char_span(self, first: int, end: int) -> tuple[int, int]:
        """Character span in the original prompt covered by pieces [first, end)."""
        return self.starts[first], self.ends[end - 1]

    def add_edge(self, first: int, end: int, text: str) -> None:
        self.edges[first].append((end, word_forms(text)))


def _split_pieces(prompt: str) -> tuple[list[str], list[int], list[int], list[int]]:
    """Fold `prompt` and cut it into pieces; returns (texts, starts, ends, chunk ids)."""
    origin: list[int] | range = range(len(prompt))
    dropped = False  # did some code point fold to nothing (combining mark, zero-width char)?
    if prompt.isascii():  # fast path: folding ASCII is lower-casing
        text = prompt.lower()
    else:
        parts = [fold_char(c) for c in prompt]
        text = "".join(parts)
        if len(text) != len(prompt) or not all(parts):  # some code point folded to 0 or several chars
            origin = [i for i, p in enumerate(parts) for _ in p]
            dropped = not all(parts)
    texts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    chunks: list[int] = []
    chunk, prev = 0, 0
    for m in _PIECE.finditer(text):
        lo, hi = m.span()
        if _SPACE.search(text, prev, lo):
            chunk += 1
        prev = hi
        end = origin[hi - 1] + 1
        while dropped and end < len(prompt) and not fold_char(prompt[end]):
            end += 1  # keep trailing marks/zero-width chars in the span ("n̸u̸d̸e̸")
        texts.append(m.group())
        starts.append(origin[lo])
        ends.append(end)
        chunks.append(chunk)
    return texts, starts, ends, chunks


def build_lattice(prompt: str) -> Lattice:
    """Fold `prompt` and build its token lattice (see module docstring)."""
    texts, starts, ends, chunks = _split_pieces(prompt)
    lat = Lattice(prompt, texts, starts, ends, [[] for _ in texts])
    n = len(texts)
    for i, text in enumerate(texts):
        lat.add_edge(i, i + 1, text)
    # Whitespace-free chunks split by punctuation: also read them joined ("n.u.d.e", "spider-man").
    i = 0
    while i < n:
        j = i + 1
        while j < n and chunks[j] == chunks[i]:
            j += 1
        if j - i > 1:
            lat.add_edge(i, j, "".join(texts[i:j]))
        i = j
    # Runs of single characters, across spaces or punctuation: "n u d e", "k 1 l l".
    i = 0
    while i < n:
        j = i
        while j < n and len(texts[j]) == 1:
            j += 1
        if j - i >= MIN_RUN:
            collapsed = "".join(texts[i:j])
            lat.runs.append((i, j, collapsed))
            lat.add_edge(i, j, collapsed)
        i = max(j, i + 1)
    return lat


def reading(prompt: str, vocab: frozenset[str] | set[str] | None = None) -> str:
    """The prompt read back as plain words for the semantic layer: "k1ll 4ll j3ws" -> "kill all jews".

    Pieces are folded (case, width, accents, look-alikes); a piece with a letter and leet symbols takes
    its first leet reading that is a `vocab` word (else its first reading); runs of three or more equal
    letters are squeezed to one; a spaced-out run of single characters ("n u d e") becomes one word,
    or, with a `vocab`, the fewest vocab words that spell it ("a s u b h u m a n" -> "a subhuman");
    a common foreign form takes its English gloss ("juifs" -> "jews"). Pieces are joined by spaces.
    """
    lat = build_lattice(prompt)
    runs = {first: (end, text) for first, end, text in lat.runs}
    gloss = glossary()
    words: list[str] = []
    i = 0
    while i < len(lat):
        if i in runs:
            end, text = runs[i]
        else:
            end, text = i + 1, lat.texts[i]
        forms = same_length_forms(text)
        word = forms[1] if len(forms) > 1 else forms[0]
        if vocab is not None and len(forms) > 1:
            word = next((f for f in forms[1:] if _squeeze(f, 1) in vocab or _squeeze(f, 2) in vocab), word)
        word = _squeeze(word, 1) if vocab is None or _squeeze(word, 2) not in vocab else _squeeze(word, 2)
        if i in runs and vocab is not None and word not in vocab:
            word = segment(word, vocab)
        words.append(" ".join(gloss.get(w, w) for w in word.split()))
        i = end
    return " ".join(words)


MAX_SEGMENT = 200  # longer spaced-out runs are not split into words (bounded work)
# the only words under three letters a segmentation may use ("de capita ted" is not a reading)
SHORT_WORDS = frozenset("a i an of on in to is at by me my we us or as be no so up he it do am".split())


def segment(text: str, vocab: frozenset[str] | set[str]) -> str:
    """`text` split into the fewest `vocab` words ("photoofnudewoman" -> "photo of nude woman"), or
    `text` unchanged when it cannot be spelled with vocab words. Dynamic programming, O(len * 24)."""
    n = len(text)
    if n > MAX_SEGMENT or n == 0:
        return text
    best: list[tuple[int, int] | None] = [None] * (n + 1)  # best[j] = (words, start of last word)
    best[0] = (0, 0)
    for j in range(1, n + 1):
        for k in range(max(0, j - 24), j):
            prev = best[k]
            word = text[k:j]
            if prev is not None and word in vocab and (j - k > 2 or word in SHORT_WORDS):
                cand = (prev[0] + 1, k)
                if best[j] is None or cand[0] < best[j][0]:  # type: ignore[index]
                    best[j] = cand
    if best[n] is None:
        return text
    out, j = [], n
    while j > 0:
        k = best[j][1]  # type: ignore[index]
        out.append(text[k:j])
        j = k
    if sum(len(w) <= 2 for w in out) > max(1, len(out) // 3):  # "dec a pit a ted": not a reading
        return text
    return " ".join(reversed(out))
