"""ContentFilter and check_prompt: prompt -> Verdict. The filter only judges; callers act on the verdict.

Two layers: the keyword rules (`rules.RuleSet`) and, for a prompt no rule blocks, the semantic layer
(`semantic.SemanticIndex`: nearest labelled examples and a small classifier in MiniLM sentence space).
Construction is cheap: the rules are compiled (or read from the compiled cache) on the first check,
the encoder is loaded on the first prompt that reaches the semantic layer, or passed in (`encoder=`).

The pipeline, CLI and server all call `ContentFilter.check` (or `check_prompt`) before generating and
refuse a blocked prompt with an error that carries the verdict (`PromptBlockedError`); nothing here
ever produces an image, blank or otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bitdance.safety.matcher import CATEGORIES, Match
from bitdance.safety.normalize import build_lattice
from bitdance.safety.rules import RuleSet

if TYPE_CHECKING:
    from bitdance.safety.semantic import SemanticIndex, SemanticResult

MODES = ("block", "warn", "off")
MAX_PROMPT_CHARS = 100_000  # longer input is refused (keeps the worst case bounded for the server)
SEMANTIC_RULE = "semantic.nearest_example"  # `rule` of a verdict the nearest labelled examples decided
CLASSIFIER_RULE = "semantic.classifier"  # `rule` of a verdict the semantic layer's classifier decided
SEMANTIC_RULES = (SEMANTIC_RULE, CLASSIFIER_RULE)


@dataclass(frozen=True)
class Verdict:
    """The filter's decision on one prompt.

    allowed: False only when a rule fired in "block" mode. category/rule: the most severe rule that
    fired (also set for warnings), else None. reason: one human-readable sentence naming category, rule
    and matched text. matched/spans: the original prompt text (and [start, end) character spans) that
    fired the rule. exceptions: allow-list ids that suppressed a near-miss (useful when tuning rules).
    nearest/similarity/score: for a semantic-layer verdict (rule "semantic.nearest_example" or
    "semantic.classifier"), the labelled must-block example closest to the prompt, its cosine
    similarity and the classifier's P(block) (None without a classifier); else None.
    """

    allowed: bool
    category: str | None
    rule: str | None
    reason: str
    mode: str
    matched: tuple[str, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()
    exceptions: tuple[str, ...] = ()
    nearest: str | None = None
    similarity: float | None = None
    score: float | None = None

    @property
    def flagged(self) -> bool:
        """True when some rule fired (blocked, or allowed with a warning)."""
        return self.rule is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists instead of tuples) for server responses, logs and metadata."""
        d = asdict(self)
        d["matched"] = list(self.matched)
        d["spans"] = [list(s) for s in self.spans]
        d["exceptions"] = list(self.exceptions)
        # the semantic layer's fields appear only when it decided: verdicts of the rules alone keep the
        # shape they had before the layer existed (recipes in PNGs, and so byte-identical replays)
        for key in ("nearest", "similarity", "score"):
            if d.get(key) is None:
                d.pop(key, None)
        return d


class PromptBlockedError(ValueError):
    """Raised by `ContentFilter.enforce` for a blocked prompt; `.verdict` has the details."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.reason)
        self.verdict = verdict


def validate_mode(mode: str, what: str = "mode") -> str:
    """Return `mode` if it is one of MODES, else raise ValueError listing them."""
    if mode not in MODES:
        raise ValueError(f"{what} must be one of {', '.join(repr(m) for m in MODES)}; got {mode!r}")
    return mode


def _validate_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"prompt has {len(prompt)} characters; the content filter accepts at most {MAX_PROMPT_CHARS}"
        )
    return prompt


def _blank(prompt: str, spans: list[tuple[int, int]]) -> str:
    """`prompt` with the character spans replaced by spaces."""
    if not spans:
        return prompt
    chars = list(prompt)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


def _describe(match: Match) -> str:
    parts = [f"{text!r} (chars {a}-{b})" for text, (a, b) in zip(match.texts, match.spans)]
    what = " together with ".join(parts)
    about = f" [{match.rule.description}]" if match.rule.description else ""
    return f"category '{match.category}', rule '{match.rule.id}'{about} matched {what}"


class ContentFilter:
    """A RuleSet, a semantic index and a mode ("block", "warn" or "off"); `category_modes` overrides
    the mode per category.

    semantic: "builtin" (default: the shipped index, loaded on the first prompt no rule blocks), a
    `SemanticIndex`, or None (rules only). encoder: an already-loaded text encoder for the semantic
    layer (anything with `sentence_embedding(list[str]) -> Tensor (B, 384)`, L2-normalised: the
    pipeline's `MiniLMTextEncoder`), so no second MiniLM copy is loaded; None loads one on first use.
    Example: ContentFilter(mode="block", category_modes={"copyrighted_character": "warn"}) blocks
    everything except named characters and brands, which are only reported.
    """

    def __init__(
        self,
        rules: RuleSet | None = None,
        mode: str = "block",
        category_modes: Mapping[str, str] | None = None,
        semantic: SemanticIndex | str | None = "builtin",
        encoder: Any = None,
    ):
        if rules is not None and not isinstance(rules, RuleSet):
            raise TypeError(f"rules must be a RuleSet or None, got {type(rules).__name__}")
        self._rules = rules  # None: the built-ins, loaded on first use (construction stays cheap)
        if isinstance(semantic, str) and semantic != "builtin":
            raise ValueError(f"semantic must be 'builtin', a SemanticIndex or None; got {semantic!r}")
        if encoder is not None and not callable(getattr(encoder, "sentence_embedding", None)):
            raise TypeError(
                "encoder must be a loaded text encoder with a sentence_embedding(list[str]) method "
                f"(e.g. the pipeline's MiniLMTextEncoder) or None; got {type(encoder).__name__}"
            )
        if encoder is not None and semantic is not None and not isinstance(semantic, str):
            from bitdance.safety.semantic import embedder_for  # noqa: PLC0415

            semantic = semantic.with_embedder(embedder_for(encoder))
        self._semantic = semantic
        self.encoder = encoder
        self.mode = validate_mode(mode)
        self.category_modes = dict(category_modes or {})
        for cat, m in self.category_modes.items():
            if cat not in CATEGORIES:
                raise ValueError(
                    f"unknown category {cat!r} in category_modes; allowed: {', '.join(CATEGORIES)}"
                )
            validate_mode(m, f"category_modes[{cat!r}]")

    @property
    def rules(self) -> RuleSet:
        """The rule set (the built-ins are loaded here, on first use)."""
        if self._rules is None:
            self._rules = RuleSet.builtin()
        return self._rules

    def warm_up(self, background: bool = True) -> threading.Thread | None:
        """Load and compile the rules now, in a daemon thread when `background` (returned), so that
        the first `check` does not pay for it: call it before loading model weights. Idempotent."""
        if self.mode == "off" and all(m == "off" for m in self.category_modes.values()):
            return None
        if not background:
            _ = self.rules.matcher
            return None
        thread = threading.Thread(target=lambda: self.rules.matcher, name="bitdance-safety", daemon=True)
        thread.start()
        return thread

    def __repr__(self) -> str:
        n = len(self.rules.rules)
        sem = "builtin" if self._semantic == "builtin" else ("off" if self._semantic is None else "custom")
        modes = self.category_modes
        return f"ContentFilter(mode={self.mode!r}, rules={n}, semantic={sem}, category_modes={modes})"

    @property
    def semantic(self) -> SemanticIndex | None:
        """The semantic index (the shipped one is loaded here, on first use), or None."""
        if self._semantic == "builtin":
            from bitdance.safety.semantic import SemanticIndex  # noqa: PLC0415

            self._semantic = SemanticIndex.builtin(self.encoder)
        return self._semantic  # type: ignore[return-value]

    def _semantic_verdict(self, prompt: str, exceptions: tuple[str, ...]) -> Verdict | None:
        """The semantic layer's verdict when it flags `prompt` in a category that is not off."""
        if self._semantic is None or all(
            self.category_modes.get(c, self.mode) == "off" for c in CATEGORIES if c != "copyrighted_character"
        ):
            return None
        result: SemanticResult = self.semantic.judge(prompt)  # type: ignore[union-attr]
        eff = self.category_modes.get(result.category, self.mode)
        if not result.blocked or eff == "off":
            return None
        nb = result.nearest_block
        rule = SEMANTIC_RULE if result.by == "nearest" else CLASSIFIER_RULE
        head = "Blocked" if eff == "block" else f"Warning only, not blocked (mode='{eff}')"
        reason = f"{head}: category '{result.category}', rule '{rule}': {result.describe()}."
        return Verdict(
            eff != "block", result.category, rule, reason, self.mode, exceptions=exceptions,
            nearest=nb.text, similarity=round(nb.similarity, 4), score=result.score,
        )  # fmt: skip

    def semantic_text(self, prompt: str) -> str:
        """The text the semantic layer judges: `prompt` with allow-listed near-misses blanked out."""
        spans: list[tuple[int, int]] = []
        self.rules.matcher.evaluate(build_lattice(_validate_prompt(prompt)), spans)
        return _blank(prompt, spans)

    def scan(self, prompt: str) -> list[Match]:
        """Every rule that fires on `prompt`, most severe first, regardless of mode."""
        return self.rules.matcher.evaluate(build_lattice(_validate_prompt(prompt)))[0]

    def check(self, prompt: str) -> Verdict:
        """Judge one prompt. Raises TypeError/ValueError for a non-str or over-long prompt."""
        _validate_prompt(prompt)
        if self.mode == "off" and all(m == "off" for m in self.category_modes.values()):
            return Verdict(True, None, None, "Allowed: content checks are off (mode='off').", self.mode)
        allow_spans: list[tuple[int, int]] = []
        matches, exceptions = self.rules.matcher.evaluate(build_lattice(prompt), allow_spans)
        decided = [(self.category_modes.get(m.category, self.mode), m) for m in matches]
        blocking = [m for eff, m in decided if eff == "block"]
        warning = [m for eff, m in decided if eff == "warn"]
        if blocking:
            m = blocking[0]
            reason = f"Blocked: {_describe(m)}."
            return Verdict(False, m.category, m.rule.id, reason, self.mode, m.texts, m.spans, exceptions)
        # an allow-listed near-miss ("nude lipstick", "food porn") is benign by decision: the semantic
        # layer judges the rest of the prompt
        semantic = self._semantic_verdict(_blank(prompt, allow_spans), exceptions)
        if semantic is not None and (not semantic.allowed or not warning):
            return semantic
        if warning:
            m = warning[0]
            eff = self.category_modes.get(m.category, self.mode)
            reason = f"Warning only, not blocked (mode='{eff}'): {_describe(m)}."
            return Verdict(True, m.category, m.rule.id, reason, self.mode, m.texts, m.spans, exceptions)
        reason = "Allowed: no content rule matched."
        if exceptions:
            reason = f"Allowed: no content rule matched (allow-list exceptions: {', '.join(exceptions)})."
        return Verdict(True, None, None, reason, self.mode, exceptions=exceptions)

    def enforce(self, prompt: str) -> Verdict:
        """`check`, but raise PromptBlockedError for a blocked prompt; returns the verdict otherwise."""
        verdict = self.check(prompt)
        if not verdict.allowed:
            raise PromptBlockedError(verdict)
        return verdict


def check_prompt(
    prompt: str,
    mode: str = "block",
    rules: RuleSet | None = None,
    semantic: SemanticIndex | str | None = "builtin",
    encoder: Any = None,
) -> Verdict:
    """Judge `prompt` with `rules` (the built-ins by default) and the semantic layer in `mode`."""
    return ContentFilter(rules, mode, semantic=semantic, encoder=encoder).check(prompt)


def format_verdict(verdict: Verdict) -> str:
    """One line for a CLI or log: 'safety: BLOCKED hate/hate.nazi matched 'heil hitler''."""
    if verdict.rule is None:
        return f"safety: ok (mode={verdict.mode})"
    status = "BLOCKED" if not verdict.allowed else "WARNING"
    if verdict.nearest is not None:
        shown = f"nearest example {verdict.nearest!r} (similarity {verdict.similarity:.3f})"
        if verdict.score is not None:
            shown += f", classifier P(block) {verdict.score:.3f}"
        return f"safety: {status} {verdict.category}/{verdict.rule} {shown} (mode={verdict.mode})"
    shown = " + ".join(repr(t) for t in verdict.matched)
    return f"safety: {status} {verdict.category}/{verdict.rule} matched {shown} (mode={verdict.mode})"


def explain(verdict: Verdict) -> str:
    """A few sentences for a user: what matched, why, and what they can do about it."""
    lines = [verdict.reason]
    if verdict.rule is not None:
        if not verdict.allowed:
            lines.append("The prompt was refused. Rephrase it without the matched text.")
        if verdict.nearest is not None:
            lines.append(
                "The semantic layer judged the prompt by its closest labelled examples and a classifier "
                "trained on them, and can be wrong: "
                "for a false positive, add a benign example to the training list and rebuild the index "
                "(docs/safety.md, 'Semantic layer')."
            )
        else:
            lines.append(
                "The keyword rules can be wrong: for a false positive, add an allow-list "
                "exception in a rule file (docs/safety.md, 'Extending the rules')."
            )
        if verdict.exceptions:
            lines.append(f"Near-miss exceptions that also applied: {', '.join(verdict.exceptions)}.")
    return "\n".join(lines)
