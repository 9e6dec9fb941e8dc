"""Other names people use for an emoji: Unicode CLDR annotations and the ``emoji`` package's aliases.

Sources (both optional; without them an emoji keeps only its Unicode name):

- CLDR ``annotations/en.xml`` (Debian ``unicode-cldr-core``): the short name ("tts", e.g. "eggplant" for
  U+1F346 AUBERGINE) and keywords ("aubergine | eggplant | vegetable"). Only *specific* keywords are used:
  those that name at most ``MAX_SHARED`` emoji ("vegetable" or "face" would name dozens).
- the ``emoji`` package (``pip install emoji``): its English name and GitHub-style aliases (":hotdog:").
"""

from __future__ import annotations

import functools
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

CLDR_PATHS = (
    "/usr/share/unicode/cldr/common/annotations/en.xml",
    "/usr/share/unicode/cldr/common/annotationsDerived/en.xml",
)
MAX_SHARED = 3


def _clean(text: str) -> str:
    text = text.strip().strip(":").replace("_", " ")
    return re.sub(r"\s+", " ", text).lower()


@functools.lru_cache(maxsize=1)
def _cldr() -> dict[str, tuple[str, ...]]:
    tts: dict[str, str] = {}
    keywords: dict[str, list[str]] = {}
    paths = [os.environ.get("BITDANCE_CLDR_ANNOTATIONS", ""), *CLDR_PATHS]
    for path in (p for p in paths if p and Path(p).is_file()):
        for node in ET.parse(path).getroot().iter("annotation"):
            cp = (node.get("cp") or "").replace("\ufe0f", "")
            text = node.text or ""
            if node.get("type") == "tts":
                tts.setdefault(cp, _clean(text))
            else:
                keywords.setdefault(cp, [_clean(k) for k in text.split("|") if k.strip()])
    shared = Counter(k for ks in keywords.values() for k in set(ks))
    out: dict[str, tuple[str, ...]] = {}
    for cp in set(tts) | set(keywords):
        names = [tts[cp]] if cp in tts else []
        names += [k for k in keywords.get(cp, []) if shared[k] <= MAX_SHARED and k not in names]
        out[cp] = tuple(n for n in names if n)
    return out


@functools.lru_cache(maxsize=1)
def _emoji_package() -> dict[str, tuple[str, ...]]:
    try:
        import emoji
    except ImportError:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for ch, data in emoji.EMOJI_DATA.items():
        names = [_clean(data.get("en", ""))] + [_clean(a) for a in data.get("alias", [])]
        out[ch.replace("\ufe0f", "")] = tuple(dict.fromkeys(n for n in names if n))
    return out


def emoji_aliases(char: str) -> tuple[str, ...]:
    """Other names of the emoji ``char`` (its Unicode name excluded), most common first; () when unknown."""
    char = char.replace("\ufe0f", "")
    names = list(_cldr().get(char, ())) + list(_emoji_package().get(char, ()))
    return tuple(dict.fromkeys(n for n in names if n and len(n) <= 40))


def sources_available() -> dict[str, bool]:
    """Which alias sources this machine has (recorded in training recipes)."""
    return {"cldr": bool(_cldr()), "emoji_package": bool(_emoji_package())}
