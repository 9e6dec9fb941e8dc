"""Prompt templates: named texts with `{placeholders}` from a built-in set and user files (JSON / YAML).

    {"version": 1,
     "templates": {
        "product": {"text": "product photo of {subject}, {style}",
                    "description": "...", "defaults": {"style": "studio lighting"}},
        "short": "a {colour} {item}"}}              # a bare string is the text

The built-in set is `bitdance/assets/templates.json`; a user file adds templates and may replace built-in
ones of the same name. Rendering is strict: an unknown template, a missing variable or a variable the
template does not use raises ValueError naming it and listing the allowed ones.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.blank import is_blank

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VALUE_CHARS = 500


@dataclass(frozen=True)
class Template:
    """One named prompt template; `placeholders` lists its variables in order of first use."""

    name: str
    text: str
    description: str = ""
    defaults: Mapping[str, str] = field(default_factory=dict)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return placeholders_of(self.text, self.name)

    def render(self, variables: Mapping[str, str] | None = None) -> str:
        """Fill the placeholders from `variables` (then `defaults`); strict about unknown / missing names."""
        variables = dict(variables or {})
        allowed = self.placeholders
        unknown = sorted(set(variables) - set(allowed))
        if unknown:
            raise ValueError(
                f"template {self.name!r} has no variable {unknown[0]!r}; "
                f"its variables are: {', '.join(allowed)}"
            )
        values = {**self.defaults, **variables}
        missing = [p for p in allowed if p not in values]
        if missing:
            raise ValueError(
                f"template {self.name!r} needs variable {missing[0]!r} (missing: {', '.join(missing)}); "
                f"its variables are: {', '.join(allowed)}"
                + (f" (defaults for: {', '.join(self.defaults)})" if self.defaults else "")
            )
        for k in allowed:
            check_value(k, values[k])
        return self.text.format(**{k: values[k].strip() for k in allowed})


def check_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"template variable {name!r} must be a string, got {type(value).__name__}")
    if is_blank(value):
        raise ValueError(f"template variable {name!r} is empty")
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(
            f"template variable {name!r} has {len(value)} characters; the limit is {MAX_VALUE_CHARS}"
        )
    return value


def placeholders_of(text: str, name: str = "?") -> tuple[str, ...]:
    """Named `{placeholders}` of a template text; positional, attribute, index and format specs refused."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ValueError(
            f"template {name!r}: malformed braces in {text!r} ({e}); write {{{{ or }}}} for a literal brace"
        ) from None
    out: list[str] = []
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if not _VAR.fullmatch(field_name) or spec or conversion:
            raise ValueError(
                f"template {name!r}: placeholder {{{field_name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} is not allowed; use plain names like {{subject}}"
            )
        if field_name not in out:
            out.append(field_name)
    return tuple(out)


class TemplateSet:
    """A name -> Template mapping with strict lookup and rendering."""

    def __init__(self, templates: Iterable[Template] = ()) -> None:
        self.templates: dict[str, Template] = {t.name: t for t in templates}

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def __len__(self) -> int:
        return len(self.templates)

    def names(self) -> list[str]:
        return sorted(self.templates)

    def get(self, name: str) -> Template:
        if name not in self.templates:
            raise ValueError(f"unknown template {name!r}; allowed: {', '.join(self.names()) or 'none'}")
        return self.templates[name]

    def render(self, name: str, variables: Mapping[str, str] | None = None) -> str:
        return self.get(name).render(variables)

    def merged(self, other: TemplateSet) -> TemplateSet:
        """This set plus `other`; `other` wins on a name clash."""
        return TemplateSet([*self.templates.values(), *other.templates.values()])

    @classmethod
    def builtin(cls) -> TemplateSet:
        """The templates shipped in `bitdance/assets/templates.json`."""
        return cls(_builtin_templates())

    @classmethod
    def from_mapping(cls, data: Any, source: str = "templates") -> TemplateSet:
        if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
            raise ValueError(f"{source}: expected a mapping with a 'templates' mapping of name -> text")
        extra = sorted(set(data) - {"version", "description", "templates"})
        if extra:
            raise ValueError(
                f"{source}: unknown top-level key {extra[0]!r}; allowed: version, description, templates"
            )
        out = []
        for name, spec in data["templates"].items():
            out.append(_parse_template(name, spec, source))
        return cls(out)

    @classmethod
    def from_file(cls, path: str | Path) -> TemplateSet:
        """Read a JSON (.json) or YAML (.yaml / .yml, needs pyyaml) template file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"template file {path} not found")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read template file {path}: {e}") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml  # noqa: PLC0415
            except ImportError:
                raise ValueError(
                    "YAML template files need pyyaml: pip install pyyaml (or use JSON)"
                ) from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        return cls.from_mapping(data, str(path))


def _parse_template(name: Any, spec: Any, source: str) -> Template:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{source}: template name {name!r} must be lower-case letters, digits, '-' or '_'")
    if isinstance(spec, str):
        spec = {"text": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: template {name!r} must be a string or a mapping with 'text'")
    extra = sorted(set(spec) - {"text", "description", "defaults"})
    if extra:
        raise ValueError(
            f"{source}: template {name!r} has unknown key {extra[0]!r}; allowed: text, description, defaults"
        )
    text, desc, defaults = spec.get("text"), spec.get("description", ""), spec.get("defaults") or {}
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{source}: template {name!r} needs a non-empty 'text'")
    if not isinstance(desc, str) or not isinstance(defaults, dict):
        raise ValueError(
            f"{source}: template {name!r}: 'description' must be a string and 'defaults' a mapping"
        )
    holders = placeholders_of(text, name)
    for k, v in defaults.items():
        if k not in holders:
            raise ValueError(
                f"{source}: template {name!r} has a default for {k!r}, which is not one of its "
                f"variables: {', '.join(holders)}"
            )
        check_value(k, v)
    return Template(name, text, desc, dict(defaults))


@lru_cache(maxsize=1)
def _builtin_templates() -> tuple[Template, ...]:
    text = (resources.files("bitdance") / "assets" / "templates.json").read_text(encoding="utf-8")
    return tuple(TemplateSet.from_mapping(json.loads(text), "builtin templates.json").templates.values())


def load_templates(user_file: str | Path | None = None) -> TemplateSet:
    """The built-in templates, extended (and overridden by name) by an optional user file."""
    base = TemplateSet.builtin()
    return base.merged(TemplateSet.from_file(user_file)) if user_file else base


def parse_vars(pairs: Iterable[str]) -> dict[str, str]:
    """['subject=a red sneaker', 'style=flat'] -> dict; malformed or repeated keys raise ValueError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not _VAR.fullmatch(key):
            raise ValueError(f"--var must look like key=value with a name such as subject, got {pair!r}")
        if key in out:
            raise ValueError(f"template variable {key!r} given twice")
        out[key] = value
    return out


def describe(templates: TemplateSet) -> str:
    """One line per template: name, text, defaults (for `--list-templates`)."""
    lines = []
    for name in templates.names():
        t = templates.get(name)
        extra = (
            f"  (defaults: {', '.join(f'{k}={v!r}' for k, v in t.defaults.items())})" if t.defaults else ""
        )
        lines.append(f"{name:<12} {t.text}{extra}")
    return "\n".join(lines)
