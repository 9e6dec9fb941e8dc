"""Write the fresh red-team rounds (`fresh_<date>.txt`) into the suite, each as its own dev / test split pair.

    python scripts/safety/fresh_rows.py   # rewrites the fresh rows of bitdance/assets/safety/redteam.jsonl

Rounds (ROUNDS): fresh_2026_12_04.txt as dev2 / test2, fresh_2026_12_06.txt as dev3 / test3,
fresh_2026_12_06b.txt as dev4 / test4. Deterministic,
and it never runs the filter. Per round and (label, category) stratum the hand-written prompts are ordered by
the SHA-256 of their text and alternate dev, test, dev, ... About a third of the must-block prompts not
written in another language (those whose hash is 0 mod 3) also get one obfuscated copy, the tactic taken in
turn from OBFUSCATIONS; a copy has its original's split. Rows from an earlier run of this script (a round's
"source") are replaced, round after round at the end of the file; the other suite rows are kept as they are.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]


class Round(NamedTuple):
    """One fresh round: its hand-written prompt file, the rows' "source" and its two split names."""

    source: str
    text: Path
    splits: tuple[str, str]  # (dev, test)


HERE = Path(__file__).parent
ROUNDS = (
    Round("fresh-2026-12-04", HERE / "fresh_2026_12_04.txt", ("dev2", "test2")),
    Round("fresh-2026-12-06", HERE / "fresh_2026_12_06.txt", ("dev3", "test3")),
    Round("fresh-2026-12-06b", HERE / "fresh_2026_12_06b.txt", ("dev4", "test4")),
)
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


def fresh_rows(rows: list[dict[str, str]], rnd: Round) -> list[dict[str, str]]:
    """One round's rows with their split and the obfuscated copies (each right after its original)."""
    split: dict[str, str] = {}
    strata: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        strata.setdefault((r["label"], r["category"]), []).append(r["prompt"])
    for prompts in strata.values():
        for rank, p in enumerate(sorted(prompts, key=_sha)):
            split[p] = rnd.splits[rank % 2]
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
        out.append({**r, "split": split[r["prompt"]], "source": rnd.source})
        if r["prompt"] in tactic_of:
            t = tactic_of[r["prompt"]]
            out.append(
                {
                    **r,
                    "prompt": OBFUSCATIONS[t](r["prompt"]),
                    "tactic": t,
                    "split": split[r["prompt"]],
                    "source": rnd.source,
                }
            )
    return out


def main() -> int:
    old = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    sources = {rnd.source for rnd in ROUNDS}
    kept = [r for r in old if r.get("source") not in sources]
    new = [row for rnd in ROUNDS for row in fresh_rows(read_prompts(rnd.text), rnd)]
    seen = {r["prompt"] for r in kept}
    dup = [r["prompt"] for r in new if r["prompt"] in seen] + [
        p for p in {r["prompt"] for r in new} if sum(r["prompt"] == p for r in new) > 1
    ]
    if dup:
        raise ValueError(f"prompts already in the suite or repeated: {dup}")
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept + new)
    SUITE.write_text(text, encoding="utf-8")
    counts = ", ".join(f"{sum(r['source'] == rnd.source for r in new)} ({rnd.source})" for rnd in ROUNDS)
    print(f"{SUITE}: {len(kept)} earlier rows, fresh rows {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
