"""Rule model and matching: phrase rules, context (co-occurrence) rules and allow-list exceptions.

Every phrase of every rule is expanded (list references, optional words) into word tuples and stored
in one trie. Matching walks the prompt's token lattice (`normalize.build_lattice`) from each piece,
so a phrase matches only whole tokens, never the inside of a longer word. Allow-list phrases live in
the same trie; an occurrence that lies inside an allow-list occurrence is dropped before rules are
evaluated, so "killer whale" suppresses a "killer" term but not a second, separate "killer".

Phrase syntax (rule files): words separated by spaces; `@name` expands to every entry of the named
list; a trailing `?` makes a word optional; `<age>` matches an age under 18 ("12", "twelve") and
`<age_yo>` matches forms like "12yo". Multi-word phrases also match their words written together
("spider man" -> "spiderman") unless they contain a short function word ("the rapist").
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bitdance.safety.normalize import Lattice, fold_text, same_length_forms

# Severity order: the first category that matches is the one a verdict reports.
CATEGORIES = ("minors_sexual", "hate", "sexual_explicit", "graphic_violence", "copyrighted_character")
AGE, AGE_YO = "<age>", "<age_yo>"
MAX_EXPANSIONS = 50_000  # word tuples one phrase may expand to
MIN_RUN_KEY = 4  # rule words this long are also searched inside spaced-out letter runs
MAX_RUN_WALK = 200  # runs up to this long are also searched for multi-word phrases (bounded work)
MAX_RUN_WORD = 24  # longest rule word looked for inside a run
NO_JOIN = frozenset("a an the to of in on at is are be by for with from and or all my his her its".split())
NUMBER_WORDS = dict(zip(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen".split(), range(1, 18),
))  # fmt: skip
_AGE_YO = re.compile(r"(\d{1,2})(?:yo|yr|yrs|yearold|yearsold|yrold|yrsold)")
_WORDS = re.compile(r"[^\W_]+")
RULE, GROUP, ALLOW, UNLESS = 0, 1, 2, 3  # kinds of trie tags: (kind, rule or allow index, group index)


@dataclass(frozen=True)
class Rule:
    """A content rule: `phrases` (any one matches) or `all_of` (each group must match somewhere)."""

    id: str
    category: str
    description: str = ""
    phrases: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...], ...] = ()
    window: int | None = None  # all_of only: max pieces between the first group and each other group
    unless: tuple[str, ...] = ()  # context phrases: if any occurs anywhere in the prompt, the rule is off


@dataclass(frozen=True)
class AllowRule:
    """An allow-list exception: rule matches inside one of these phrases are ignored."""

    id: str
    phrases: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Match:
    """One rule that fired, with the original-prompt spans (and their text) that made it fire."""

    rule: Rule
    spans: tuple[tuple[int, int], ...]
    texts: tuple[str, ...]

    @property
    def category(self) -> str:
        return self.rule.category


@lru_cache(maxsize=4096)
def is_minor_age(form: str, yo: bool = False) -> bool:
    """True for an age under 18: "12"/"twelve" (or, with yo=True, "12yo", "12yearold")."""
    if yo:
        m = _AGE_YO.fullmatch(form)
        return bool(m) and 0 < int(m.group(1)) < 18
    return (form.isdecimal() and len(form) <= 2 and 0 < int(form) < 18) or form in NUMBER_WORDS


def _literal(raw: str) -> tuple[str, ...]:
    if raw in (AGE, AGE_YO):
        return (raw,)
    words = tuple(_WORDS.findall(fold_text(raw)))
    if not words:
        raise ValueError(f"word {raw!r} has no letters or digits")
    return words


def _phrase_choices(phrase: str, lists: Mapping[str, Sequence[str]]) -> list[list[tuple[str, ...]]]:
    """The word-tuple alternatives of each word of a rule phrase (an optional word also has `()`), with
    the variant count checked against MAX_EXPANSIONS; raises ValueError naming the problem."""
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"phrase must be a non-empty string, got {phrase!r}")
    choices: list[list[tuple[str, ...]]] = []
    for raw in phrase.split():
        optional = len(raw) > 1 and raw.endswith("?")
        raw = raw[:-1] if optional else raw
        if raw.startswith("@"):
            if raw[1:] not in lists:
                raise ValueError(f"phrase {phrase!r} uses unknown list {raw!r}; known: {sorted(lists)}")
            alts = []
            for entry in lists[raw[1:]]:
                if any(w.startswith("@") or w.endswith("?") for w in entry.split()):
                    raise ValueError(f"list {raw!r} entry {entry!r}: list entries cannot use '@' or '?'")
                alts.append(tuple(w for word in entry.split() for w in _literal(word)))
        else:
            alts = [_literal(raw)]
        choices.append(alts + [()] if optional else alts)
    total = math.prod(len(alts) for alts in choices)
    if total > MAX_EXPANSIONS:
        raise ValueError(f"phrase {phrase!r} expands to {total} variants (max {MAX_EXPANSIONS})")
    return choices


def expand_phrase(phrase: str, lists: Mapping[str, Sequence[str]]) -> list[tuple[str, ...]]:
    """Expand a rule phrase into the word tuples it matches; raises ValueError naming the problem."""
    out = [
        tuple(w for part in combo for w in part)
        for combo in itertools.product(*_phrase_choices(phrase, lists))
    ]
    return [words for words in dict.fromkeys(out) if words]


def check_phrase(phrase: str, lists: Mapping[str, Sequence[str]]) -> int:
    """Validate a rule phrase like `expand_phrase` without expanding it; returns its variant count."""
    return math.prod(len(alts) for alts in _phrase_choices(phrase, lists))


class _Node:
    __slots__ = ("children", "tags")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.tags: list[tuple[int, int, int]] = []


class Matcher:
    """Compiled rules: `evaluate(lattice)` returns the rules that fire and the exceptions used."""

    def __init__(self, rules: Sequence[Rule], allow: Sequence[AllowRule], lists: Mapping[str, Sequence[str]]):
        self.rules = tuple(rules)
        self.allow = tuple(allow)
        self.root = _Node()
        self.run_keys: dict[str, _Node] = {}  # single rule words searched inside spaced-out runs
        self._run_prefixes: set[str] | None = None  # every prefix of a run key, built on first use
        for ri, rule in enumerate(self.rules):
            for gi, group in enumerate(rule.all_of or (rule.phrases,)):
                for phrase in group:
                    self._add(phrase, lists, (GROUP if rule.all_of else RULE, ri, gi))
            for phrase in rule.unless:
                self._add(phrase, lists, (UNLESS, ri, 0))
        for ai, exc in enumerate(self.allow):
            for phrase in exc.phrases:
                self._add(phrase, lists, (ALLOW, ai, 0))

    def _add(self, phrase: str, lists: Mapping[str, Sequence[str]], tag: tuple[int, int, int]) -> None:
        for words in expand_phrase(phrase, lists):
            variants = [words]
            if len(words) > 1 and not NO_JOIN.intersection(words) and not {AGE, AGE_YO}.intersection(words):
                variants.append(("".join(words),))
            for variant in variants:
                node = self.root
                for w in variant:
                    child = node.children.get(w)
                    if child is None:  # (setdefault would build a throw-away node per word: slow start-up)
                        child = node.children[w] = _Node()
                    node = child
                if tag not in node.tags:
                    node.tags.append(tag)
                key = variant[0]
                if tag[0] in (RULE, GROUP) and len(variant) == 1 and len(key) >= MIN_RUN_KEY:
                    self.run_keys[key] = node

    @property
    def run_prefixes(self) -> set[str]:
        """Every prefix of a run key (a character trie as a set); built the first time a prompt has a
        spaced-out run, which keeps compiling cheap."""
        if self._run_prefixes is None:
            self._run_prefixes = {key[:k] for key in self.run_keys for k in range(1, len(key) + 1)}
        return self._run_prefixes

    @staticmethod
    def _children(node: _Node, forms: tuple[str, ...]) -> list[_Node]:
        kids = node.children
        found: list[_Node] = []
        for f in forms:
            child = kids.get(f)
            if child is not None and child not in found:
                found.append(child)
        if AGE in kids or AGE_YO in kids:
            for f in forms:
                if len(f) <= 12 and (f[0].isdigit() or f in NUMBER_WORDS):
                    for key, yo in ((AGE, False), (AGE_YO, True)):
                        child = kids.get(key)
                        if child is not None and child not in found and is_minor_age(f, yo):
                            found.append(child)
        return found

    def find(self, lat: Lattice) -> set[tuple[tuple[int, int, int], int, int]]:
        """All (tag, first_piece, end_piece) occurrences of rule and allow phrases in the lattice."""
        occ: set[tuple[tuple[int, int, int], int, int]] = set()
        n, edges, children = len(lat), lat.edges, self._children
        for first in range(n):
            stack = [(first, self.root)]
            while stack:
                pos, node = stack.pop()
                for end, forms in edges[pos]:
                    for child in children(node, forms):
                        occ.update((tag, first, end) for tag in child.tags)
                        if child.children and end < n:
                            stack.append((end, child))
        # Spaced-out letters ("p h o t o o f n u d e"): look for rule words anywhere inside the run.
        prefixes = self.run_prefixes if lat.runs else set()
        for first, _end, text in lat.runs:
            for form in same_length_forms(text):
                for at in range(len(form)):
                    stop = at + 1
                    while stop <= len(form) and form[at:stop] in prefixes:
                        node = self.run_keys.get(form[at:stop])
                        if node is not None:
                            occ.update((tag, first + at, first + stop) for tag in node.tags)
                        stop += 1
            if len(text) <= MAX_RUN_WALK:
                self._find_in_run(first, text, occ)
        return occ

    def _find_in_run(self, first: int, text: str, occ: set) -> None:
        """Multi-word rule phrases spelled inside a spaced-out run ("k i l l a l l j e w s"): walk the
        trie over the run's characters (each is one piece), word boundaries anywhere."""
        for form in same_length_forms(text):
            n = len(form)
            for at in range(n):
                stack = [(at, self.root, 0)]
                while stack:
                    pos, node, depth = stack.pop()
                    for stop in range(pos + 1, min(n, pos + MAX_RUN_WORD) + 1):
                        child = node.children.get(form[pos:stop])
                        if child is None:
                            continue
                        if depth:  # single words are the run keys' job (four letters or more)
                            occ.update((tag, first + at, first + stop) for tag in child.tags)
                        if child.children and stop < n:
                            stack.append((stop, child, depth + 1))

    def evaluate(
        self, lat: Lattice, allow_spans: list[tuple[int, int]] | None = None
    ) -> tuple[list[Match], tuple[str, ...]]:
        """Rules that fire (severity order, then position) and ids of allow exceptions that applied;
        `allow_spans`, if given, receives the prompt character spans of those exceptions."""
        occ = self.find(lat)
        # reach[i] = furthest end of an allow occurrence starting at or before piece i.
        reach = [0] * (len(lat) + 1)
        for (kind, _, _), first, end in occ:
            if kind == ALLOW:
                reach[first] = max(reach[first], end)
        for i in range(1, len(reach)):
            reach[i] = max(reach[i], reach[i - 1])
        allow_occ = [(t[1], f, e) for t, f, e in occ if t[0] == ALLOW]
        used: set[str] = set()
        hits: dict[tuple[int, int], list[tuple[int, int]]] = {}
        switched_off = {ri for (kind, ri, _), _, _ in occ if kind == UNLESS}
        for (kind, ri, gi), first, end in sorted(occ, key=lambda o: (o[1], o[2], o[0])):
            if kind in (ALLOW, UNLESS) or ri in switched_off:
                continue
            if reach[first] >= end:  # inside an allow-list phrase
                for ai, f, e in allow_occ:
                    if f <= first and e >= end:
                        used.add(self.allow[ai].id)
                        if allow_spans is not None:
                            allow_spans.append(lat.char_span(f, e))
                continue
            hits.setdefault((ri, gi), []).append((first, end))
        matches = []
        for ri, rule in enumerate(self.rules):
            pieces = self._fire(rule, [hits.get((ri, gi), []) for gi in range(len(rule.all_of) or 1)])
            if pieces:
                spans = tuple(lat.char_span(f, e) for f, e in pieces)
                matches.append(Match(rule, spans, tuple(lat.prompt[a:b] for a, b in spans)))
        matches.sort(key=lambda m: (CATEGORIES.index(m.category), m.spans[0]))
        return matches, tuple(sorted(used))

    @staticmethod
    def _fire(rule: Rule, groups: list[list[tuple[int, int]]]) -> list[tuple[int, int]] | None:
        """Piece spans that make `rule` fire (one per group), or None."""
        if not all(groups):
            return None
        if rule.window is None:
            return [g[0] for g in groups]
        w = rule.window
        starts_per_group = [[f for f, _ in g] for g in groups]
        for anchor in groups[0]:
            picked = [anchor]
            for g, starts in zip(groups[1:], starts_per_group[1:]):
                # Candidates start at most w pieces after the anchor ends; scan back a bounded amount.
                i = bisect.bisect_right(starts, anchor[1] + w) - 1
                near = None
                while i >= 0 and starts[i] >= anchor[0] - w - 8:
                    f, e = g[i]
                    if max(0, f - anchor[1], anchor[0] - e) <= w:
                        near = (f, e)
                        break
                    i -= 1
                if near is None:
                    break
                picked.append(near)
            else:
                return picked
        return None
