"""Prompt content filter shared by the pipeline, the CLI and the server (docs/safety.md).

    from bitdance.safety import check_prompt
    v = check_prompt("a photo of a cat")            # Verdict(allowed=True, ...)
    if not v.allowed: raise PromptBlockedError(v)   # callers refuse; the filter never makes images

Two layers: keyword rules over a normalized token stream (case, spacing, punctuation, leetspeak,
look-alike letters, zero-width characters and accents are folded), with context rules and allow-list
exceptions; then, for a prompt no rule blocks, a semantic layer (`bitdance.safety.semantic`: nearest
labelled examples in MiniLM sentence space, loaded on first use, never when filtering is off).
"""

from bitdance.safety.filter import (
    MAX_PROMPT_CHARS,
    MODES,
    ContentFilter,
    PromptBlockedError,
    Verdict,
    check_prompt,
    explain,
    format_verdict,
)
from bitdance.safety.matcher import CATEGORIES, AllowRule, Match, Rule
from bitdance.safety.rules import RuleSet

__all__ = [
    "CATEGORIES",
    "MAX_PROMPT_CHARS",
    "MODES",
    "AllowRule",
    "ContentFilter",
    "Match",
    "PromptBlockedError",
    "Rule",
    "RuleSet",
    "Verdict",
    "check_prompt",
    "explain",
    "format_verdict",
]
