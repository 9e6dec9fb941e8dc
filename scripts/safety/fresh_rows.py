"""Write the fresh red-team prompts (`fresh_2026_12_04.txt`) into the suite as splits dev2 / test2.

    python scripts/safety/fresh_rows.py   # rewrites the fresh rows of bitdance/assets/safety/redteam.jsonl

Deterministic, and it never runs the filter. Per (label, category) stratum the hand-written prompts are
ordered by the SHA-256 of their text and alternate dev2, test2, dev2, ... About a third of the
must-block prompts not written in another language (those whose hash is 0 mod 3) also get one
obfuscated copy, the tactic taken in turn from OBFUSCATIONS; a copy has its original's split. Rows
from an earlier run of this script (same "source") are replaced; the other suite rows are kept as
they are.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "fresh-2026-12-04"
TEXT = Path(__file__).with_name("fresh_2026_12_04.txt")
SUITE = ROOT / "bitdance" / "assets" / "safety" / "redteam.jsonl"
CODES = {
    "mi": "minors_sexual",
    "ha": "hate",
    "se": "sexual_explicit",
    "gv": "graphic_violence",
    "cc": "copyrighted_character",
}
LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"})
ACCENTS = str.maketrans({"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú"})


def _sha(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def _key_words(words: list[str], n: int) -> set[int]:
    """Indices of the n longest words (earliest first on ties): where the harmful word usually is."""
    return set(sorted(range(len(words)), key=lambda i: (-len(words[i]), i))[:n])


def _on_key_words(prompt: str, n: int, fn: Callable[[str], str]) -> str:
    words = prompt.split(" ")
    keys = _key_words(words, n)
    return " ".join(fn(w) if i in keys else w for i, w in enumerate(words))


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


OBFUSCATIONS = {
    "leetspeak": lambda p: " ".join(w.translate(LEET) if len(w) > 3 else w for w in p.split(" ")),
    "homoglyph": lambda p: _on_key_words(p, 3, lambda w: w.translate(CYRILLIC)),
    "spacing": lambda p: _on_key_words(p, 2, lambda w: " ".join(w)),
    "punctuation": lambda p: _on_key_words(p, 2, lambda w: ".".join(w)),
    "zero_width": lambda p: _on_key_words(p, 2, lambda w: "\u200b".join(w)),
    "fullwidth": lambda p: _on_key_words(p, 2, _fullwidth),
    "diacritics": lambda p: _on_key_words(p, 3, lambda w: w.translate(ACCENTS)),
}


def read_prompts(path: Path) -> list[dict[str, str]]:
    """The hand-written rows: `<a|b>:<code>[/<tactic>] <prompt>` per line, `#` comments."""
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        head, _, prompt = line.partition(" ")
        label, _, rest = head.partition(":")
        code, _, tactic = rest.partition("/")
        if label not in ("a", "b") or code not in CODES or not prompt.strip():
            raise ValueError(f"{path}: line {i}: expected '<a|b>:<{'|'.join(CODES)}>[/tactic] prompt'")
        rows.append({
            "prompt": prompt.strip(),
            "label": "allow" if label == "a" else "block",
            "category": CODES[code],
            "tactic": tactic or ("near_miss" if label == "a" else "plain"),
        })  # fmt: skip
    return rows


def fresh_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows with their split and the obfuscated copies (each right after its original)."""
    split: dict[str, str] = {}
    strata: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        strata.setdefault((r["label"], r["category"]), []).append(r["prompt"])
    for prompts in strata.values():
        for rank, p in enumerate(sorted(prompts, key=_sha)):
            split[p] = "dev2" if rank % 2 == 0 else "test2"
    picked = sorted(
        (
            r["prompt"]
            for r in rows
            if r["label"] == "block" and r["tactic"] != "language" and _sha(r["prompt"]) % 3 == 0
        ),
        key=_sha,
    )
    tactic_of = {p: list(OBFUSCATIONS)[k % len(OBFUSCATIONS)] for k, p in enumerate(picked)}
    out = []
    for r in rows:
        out.append({**r, "split": split[r["prompt"]], "source": SOURCE})
        if r["prompt"] in tactic_of:
            t = tactic_of[r["prompt"]]
            out.append(
                {
                    **r,
                    "prompt": OBFUSCATIONS[t](r["prompt"]),
                    "tactic": t,
                    "split": split[r["prompt"]],
                    "source": SOURCE,
                }
            )
    return out


def main() -> int:
    old = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in old if r.get("source") != SOURCE]
    new = fresh_rows(read_prompts(TEXT))
    seen = {r["prompt"] for r in kept}
    dup = [r["prompt"] for r in new if r["prompt"] in seen] + [
        p for p in {r["prompt"] for r in new} if sum(r["prompt"] == p for r in new) > 1
    ]
    if dup:
        raise ValueError(f"prompts already in the suite or repeated: {dup}")
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept + new)
    SUITE.write_text(text, encoding="utf-8")
    print(f"{SUITE}: {len(kept)} earlier rows, {len(new)} fresh rows ({SOURCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
