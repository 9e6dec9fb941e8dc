"""RuleSet: the built-in content rules plus user rule files (JSON, or YAML when pyyaml is installed).

A rule file is one mapping (the built-in `bitdance/assets/safety_rules.json` uses the same format):

    {"version": 1,
     "lists":   {"name": ["phrase", ...]},          # merged into same-named lists
     "rules":   [{"id": "x.y", "category": "...", "description": "...", "phrases": [...]},
                 {"id": "x.z", "category": "...", "all_of": [["@list"], ["a", "b"]], "window": 6,
                  "unless": ["context phrase"]}],          # rule is off when an unless phrase occurs
     "allow":   [{"id": "allow.x", "description": "...", "phrases": [...]}],
     "disable": ["rule or allow id", ...]}

User files extend the built-ins; ids must be unique, `disable` removes earlier rules or exceptions.
Problems raise ValueError naming the file, the field and, where it can be found, the line.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from bitdance.safety.matcher import CATEGORIES, AllowRule, Matcher, Rule, check_phrase

_ID = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")
_LIST_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TOP_KEYS = {"version", "description", "lists", "rules", "allow", "disable"}
_RULE_KEYS = {"id", "category", "description", "phrases", "all_of", "window", "unless"}
_ALLOW_KEYS = {"id", "description", "phrases"}


class _Reader:
    """Validates one rule mapping; errors name the source, the field and (if found) the line."""

    def __init__(self, source: str, text: str | None):
        self.source = source
        self.text = text

    def fail(self, where: str, msg: str, needle: str | None = None) -> ValueError:
        line = ""
        if self.text is not None and needle:
            at = self.text.find(f'"{needle}"')
            at = self.text.find(needle) if at < 0 else at
            if at >= 0:
                line = f" line {self.text.count(chr(10), 0, at) + 1},"
        return ValueError(f"{self.source}:{line} {where}: {msg}")

    def strings(self, value: Any, where: str, needle: str | None = None) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(where, f"expected a non-empty list of strings, got {value!r}", needle)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{where}[{i}]", f"expected a non-empty string, got {item!r}", needle)
        return tuple(value)

    def keys(self, obj: Any, allowed: set[str], where: str, needle: str | None = None) -> None:
        if not isinstance(obj, dict):
            raise self.fail(where, f"expected an object, got {type(obj).__name__}", needle)
        unknown = sorted(set(obj) - allowed)
        if unknown:
            msg = f"unknown field(s) {unknown}; allowed: {sorted(allowed)}"
            raise self.fail(where, msg, needle or unknown[0])

    def ident(self, obj: dict, where: str, seen: set[str]) -> str:
        rid = obj.get("id")
        if not isinstance(rid, str) or not _ID.fullmatch(rid):
            raise self.fail(where + ".id", f"expected an id like 'violence.gore', got {rid!r}")
        if rid in seen:
            raise self.fail(where + ".id", f"duplicate id {rid!r}", rid)
        seen.add(rid)
        return rid

    def phrases(self, phrases: tuple[str, ...], lists: Mapping, where: str, needle: str) -> None:
        for i, phrase in enumerate(phrases):
            try:
                check_phrase(phrase, lists)
            except ValueError as e:
                raise self.fail(f"{where}[{i}]", str(e), needle) from None


@dataclass(frozen=True, eq=False)
class RuleSet:
    """Named phrase lists, content rules and allow-list exceptions; compiled lazily on first use."""

    lists: Mapping[str, tuple[str, ...]]
    rules: tuple[Rule, ...]
    allow: tuple[AllowRule, ...] = ()
    sources: tuple[str, ...] = ()

    @classmethod
    def empty(cls) -> RuleSet:
        """A rule set with no rules (base for `from_dict` without the built-ins)."""
        return cls({}, ())

    @classmethod
    def builtin(cls) -> RuleSet:
        """The rules shipped in `bitdance/assets/safety_rules.json` (loaded and compiled once)."""
        return _builtin()

    @classmethod
    def from_dict(cls, data: Any, source: str = "<rules>", base: RuleSet | None = None) -> RuleSet:
        """Validate a rule mapping and merge it into `base` (the built-ins by default)."""
        return (cls.builtin() if base is None else base)._merge(data, _Reader(source, None))

    @classmethod
    def from_file(cls, path: str | Path, extend_builtin: bool = True) -> RuleSet:
        """Load a JSON (or YAML) rule file; it extends the built-in rules unless `extend_builtin=False`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read rule file: {e}") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                msg = "YAML rule files need pyyaml (pip install pyyaml), or use JSON"
                raise ValueError(f"{path}: {msg}") from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
                raise ValueError(f"{path}:{where} invalid YAML: {getattr(e, 'problem', e)}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON: {e.msg}") from e
        base = cls.builtin() if extend_builtin else cls.empty()
        return base._merge(data, _Reader(str(path), text))

    def _merge(self, data: Any, rd: _Reader) -> RuleSet:
        rd.keys(data, _TOP_KEYS, "top level")
        if data.get("version", 1) != 1:
            raise rd.fail("version", f"unsupported version {data['version']!r}; supported: 1", "version")
        lists = {k: list(v) for k, v in self.lists.items()}
        raw_lists = data.get("lists", {})
        if not isinstance(raw_lists, dict):
            raise rd.fail("lists", "expected an object mapping list names to phrase lists", "lists")
        for name, entries in raw_lists.items():
            if not isinstance(name, str) or not _LIST_NAME.fullmatch(name):
                raise rd.fail(f"lists.{name}", "list names are lower-case identifiers like 'minor'", name)
            merged = lists.setdefault(name, [])
            for entry in rd.strings(entries, f"lists.{name}", name):
                if entry not in merged:
                    merged.append(entry)
        seen = {r.id for r in self.rules} | {a.id for a in self.allow}
        rules = list(self.rules)
        for i, obj in enumerate(_as_list(data.get("rules", []), rd, "rules")):
            rules.append(self._rule(obj, f"rules[{i}]", rd, seen, lists))
        allow = list(self.allow)
        for i, obj in enumerate(_as_list(data.get("allow", []), rd, "allow")):
            where = f"allow[{i}]"
            rd.keys(obj, _ALLOW_KEYS, where)
            aid = rd.ident(obj, where, seen)
            phrases = rd.strings(obj.get("phrases"), where + ".phrases", aid)
            rd.phrases(phrases, lists, where + ".phrases", aid)
            allow.append(AllowRule(aid, phrases, str(obj.get("description", ""))))
        disable = rd.strings(data["disable"], "disable", "disable") if data.get("disable") else ()
        for rid in disable:
            if rid not in seen:
                raise rd.fail("disable", f"unknown rule or exception id {rid!r}", rid)
        rules = [r for r in rules if r.id not in disable]
        allow = [a for a in allow if a.id not in disable]
        frozen_lists = {k: tuple(v) for k, v in lists.items()}
        return RuleSet(frozen_lists, tuple(rules), tuple(allow), (*self.sources, rd.source))

    @staticmethod
    def _rule(obj: Any, where: str, rd: _Reader, seen: set[str], lists: Mapping) -> Rule:
        rd.keys(obj, _RULE_KEYS, where)
        rid = rd.ident(obj, where, seen)
        where = f"{where} ({rid})"
        category = obj.get("category")
        if category not in CATEGORIES:
            msg = f"unknown category {category!r}; allowed: {', '.join(CATEGORIES)}"
            raise rd.fail(where + ".category", msg, rid)
        if ("phrases" in obj) == ("all_of" in obj):
            msg = "give exactly one of 'phrases' (any one matches) or 'all_of' (every group matches)"
            raise rd.fail(where, msg, rid)
        window = obj.get("window")
        if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 0):
            raise rd.fail(where + ".window", f"expected a non-negative integer or null, got {window!r}", rid)
        description = str(obj.get("description", ""))
        unless: tuple[str, ...] = ()
        if "unless" in obj:
            unless = rd.strings(obj["unless"], where + ".unless", rid)
            rd.phrases(unless, lists, where + ".unless", rid)
        if "phrases" in obj:
            if window is not None:
                raise rd.fail(where + ".window", "'window' only applies to 'all_of' rules", rid)
            phrases = rd.strings(obj["phrases"], where + ".phrases", rid)
            rd.phrases(phrases, lists, where + ".phrases", rid)
            return Rule(rid, category, description, phrases=phrases, unless=unless)
        groups = obj["all_of"]
        if not isinstance(groups, list) or len(groups) < 2:
            raise rd.fail(where + ".all_of", "expected a list of at least 2 phrase groups", rid)
        all_of = tuple(rd.strings(g, f"{where}.all_of[{i}]", rid) for i, g in enumerate(groups))
        for i, group in enumerate(all_of):
            rd.phrases(group, lists, f"{where}.all_of[{i}]", rid)
        return Rule(rid, category, description, all_of=all_of, window=window, unless=unless)

    @property
    def matcher(self) -> Matcher:
        """The compiled matcher (built on first use, or by `compile_in_background`, then reused)."""
        cached = self.__dict__.get("_matcher")
        if cached is not None:
            return cached
        with _COMPILE_LOCK:  # one compile at a time; a second caller waits and reuses it
            cached = self.__dict__.get("_matcher")
            if cached is None:
                cached = Matcher(self.rules, self.allow, self.lists)
                object.__setattr__(self, "_matcher", cached)
            return cached

    def compile_in_background(self) -> threading.Thread | None:
        """Start compiling the matcher in a daemon thread (None if it is compiled already), so the
        work overlaps with e.g. loading model weights; `matcher` waits for it."""
        if "_matcher" in self.__dict__:
            return None
        thread = threading.Thread(target=lambda: self.matcher, name="bitdance-safety-compile", daemon=True)
        thread.start()
        return thread

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError if absent)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def summary(self) -> dict[str, list[str]]:
        """Rule ids per category, in severity order (for docs, `bitdance inspect`, logs)."""
        return {c: [r.id for r in self.rules if r.category == c] for c in CATEGORIES}


_COMPILE_LOCK = threading.Lock()


def _as_list(value: Any, rd: _Reader, where: str) -> list:
    if not isinstance(value, list):
        raise rd.fail(where, f"expected a list, got {type(value).__name__}", where)
    return value


@lru_cache(maxsize=1)
def _builtin() -> RuleSet:
    ref = resources.files("bitdance") / "assets" / "safety_rules.json"
    text = ref.read_text(encoding="utf-8")
    return RuleSet.empty()._merge(json.loads(text), _Reader("builtin safety_rules.json", text))
