"""Edge validation: an `ImageRequest` body -> a `GenerationSpec` the scheduler can run, or a 4xx.

Everything a request can get wrong is checked here, before it is queued, and reported with the
offending field in `param`: model, prompt(s) and their length, template and variables, n and the
image count, size (parsed as OpenAI's WIDTHxHEIGHT), steps, guidance, parallel_num, and the content
filter on every prompt (a block names category and rule). Defaults are resolved to concrete values,
so two specs with the same `batch_key` can share one pipeline call.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..core.blank import is_blank
from .config import ServerConfig
from .errors import APIError
from .schemas import ImageRequest

SIZE_RE = re.compile(r"^([1-9][0-9]{0,5})x([1-9][0-9]{0,5})$")


@dataclass
class GenerationSpec:
    """A validated request: one entry per image in `prompts`/`labels`/`seeds` (prompt groups x n)."""

    prompts: list[str] | None  # text models: one per image
    labels: list[int] | None  # class models: one per image
    seeds: list[int]
    height: int
    width: int
    steps: int
    guidance_scale: float
    guidance_schedule: str
    parallel_num: int
    negative_prompt: str | None
    n: int
    response_format: str
    template: str | None = None
    variables: list[dict[str, str]] | None = None  # one per prompt group
    user: str | None = None
    ignored: list[str] = field(default_factory=list)  # per image: prompt text past the model's text length
    output_format: str = "png"
    output_compression: int | None = None  # jpeg / webp quality
    filter_mode: str | None = None  # None: the server's mode
    ignored_fields: list[str] = field(default_factory=list)  # request fields accepted without effect
    kind: str = "generation"  # "generation" | "edit" | "variation" (names the stream events)
    solver: str | None = None  # None: the pipeline's default
    known: Any = None  # KnownTokens for one image (edits, variations): teacher-forced tokens
    edit_info: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return len(self.seeds)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Specs with equal keys run in one pipeline call with identical per-image results."""
        return (
            self.height,
            self.width,
            self.steps,
            self.guidance_scale,
            self.guidance_schedule,
            self.parallel_num,
            self.negative_prompt is not None,
            self.prompts is None,
            self.filter_mode,
            self.solver,
            None if self.known is None else id(self),  # edits run alone: their known tokens differ
        )


class TemplateCatalog:
    """The templates the server offers (built-ins plus an optional user file chosen at startup)."""

    def __init__(self, user_file: str | None = None) -> None:
        try:
            from ..pipeline.templates import load_templates  # noqa: PLC0415
        except ImportError:  # templates module absent: the server offers none
            self.templates: Any = None
        else:
            self.templates = load_templates(user_file)

    def names(self) -> list[str]:
        return self.templates.names() if self.templates is not None else []

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            t = self.templates.get(name)
            out.append(
                {
                    "name": name,
                    "template": t.text,
                    "variables": list(t.placeholders),
                    "description": t.description or None,
                    "defaults": dict(t.defaults),
                }
            )
        return out

    def render(self, name: str, variables: dict[str, str], param: str) -> str:
        if name not in self.names():
            allowed = ", ".join(self.names()) or "none"
            raise APIError(
                400, f"unknown template {name!r}; allowed: {allowed}", "template", "unknown_template"
            )
        try:
            return self.templates.render(name, variables)
        except ValueError as e:
            raise APIError(400, str(e), param, "invalid_template_variables") from None


def variable_limit(
    template_text: str, names: list[str] | tuple[str, ...], limit: int, value_limit: int
) -> int:
    """Longest value one variable of a template may have, so that the rendered prompt fits in `limit`."""
    return max(1, min(value_limit, (limit - len(template_text)) // max(1, len(names))))


def parse_size(
    size: str | None, config: ServerConfig, supported: list[tuple[int, int]], default: tuple[int, int]
) -> tuple[int, int]:
    """OpenAI 'WIDTHxHEIGHT' (or None / 'auto') -> (height, width) the model supports."""
    if size is None or size == "auto":
        h, w = default
    else:
        m = SIZE_RE.match(size)
        if not m:
            raise APIError(
                400, f"size must look like '32x32' (WIDTHxHEIGHT) or 'auto', got {size[:40]!r}", "size"
            )
        w, h = int(m.group(1)), int(m.group(2))
    if h * w > config.max_pixels:
        raise APIError(
            400, f"size {w}x{h} has {h * w} pixels; this server allows at most {config.max_pixels}", "size"
        )
    if (h, w) not in supported:
        shown = ", ".join(f"{b}x{a}" for a, b in supported[:16]) + (" ..." if len(supported) > 16 else "")
        raise APIError(
            400, f"size {w}x{h} is not supported by this model; supported (WIDTHxHEIGHT): {shown}", "size"
        )
    return h, w


def _check_text(text: str, param: str, limit: int) -> None:
    if is_blank(text):
        raise APIError(400, f"{param} is empty; give a short description such as 'a red sneaker'", param)
    if len(text) > limit:
        raise APIError(400, f"{param} has {len(text)} characters; the limit is {limit}", param)


def _prompt_groups(
    req: ImageRequest, config: ServerConfig, templates: TemplateCatalog
) -> tuple[list[str], list[str], list[dict[str, str]] | None]:
    """(prompts, param name per prompt, variable sets) from `prompt` or `template` + `variables`."""
    if req.template is not None:
        if req.prompt is not None:
            raise APIError(400, "give either prompt or template (+ variables), not both", "prompt")
        sets = req.variables if isinstance(req.variables, list) else [req.variables or {}]
        if not sets:
            raise APIError(
                400, "variables is an empty list; give at least one set of template variables", "variables"
            )
        if len(sets) > config.max_prompts:
            raise APIError(
                400,
                f"{len(sets)} variable sets; this server allows at most {config.max_prompts}",
                "variables",
            )
        params = [
            "variables" if not isinstance(req.variables, list) else f"variables[{i}]"
            for i in range(len(sets))
        ]
        if req.template in templates.names():
            _check_variable_lengths(templates, req.template, sets, params, config)
        prompts = [templates.render(req.template, dict(s), p) for s, p in zip(sets, params)]
        return prompts, params, [dict(s) for s in sets]
    if req.variables is not None:
        raise APIError(400, "variables need a template; see /v1/templates", "variables")
    if req.prompt is None:
        raise APIError(
            400, "prompt is required (a string or a list of strings), or give a template", "prompt"
        )
    if isinstance(req.prompt, str):
        return [req.prompt], ["prompt"], None
    if not req.prompt:
        raise APIError(400, "prompt is an empty list; give at least one prompt", "prompt")
    if len(req.prompt) > config.max_prompts:
        raise APIError(
            400, f"{len(req.prompt)} prompts; this server allows at most {config.max_prompts}", "prompt"
        )
    return list(req.prompt), [f"prompt[{i}]" for i in range(len(req.prompt))], None


def _check_variable_lengths(
    templates: TemplateCatalog, name: str, sets: list[Any], params: list[str], config: ServerConfig
) -> None:
    from ..pipeline.templates import MAX_VALUE_CHARS  # noqa: PLC0415

    t = templates.templates.get(name)
    most = variable_limit(t.text, t.placeholders, prompt_limit(config), MAX_VALUE_CHARS)
    for s, p in zip(sets, params):
        for k, v in dict(s).items():
            if isinstance(v, str) and len(v) > most:
                raise APIError(
                    400,
                    f"{p}.{k} has {len(v)} characters; values of template {name!r} may have at most {most} "
                    "(the rendered prompt must fit the prompt limit)",
                    f"{p}.{k}",
                    "invalid_template_variables",
                )


def _class_label(pipe: Any, text: str, param: str) -> int:
    names = pipe.class_names or []
    if text in names:
        return names.index(text)
    n = pipe.generator.config.num_classes
    if text.isdigit() and int(text) < n:
        return int(text)
    allowed = (
        f"a class name ({', '.join(names[:20])}{' ...' if len(names) > 20 else ''}) or " if names else ""
    )
    raise APIError(
        400,
        f"{param}: this is a class-conditional model; give {allowed}an integer in 0..{n - 1}",
        param,
        "unknown_class",
    )


IGNORED_VALUES = {  # OpenAI fields without an effect here, and the value that is "no request"
    "quality": "auto",
    "style": None,
    "background": "auto",
    "complexity": None,
    "user": None,
    "safety_identifier": None,
}


@dataclass
class OutputOptions:
    """The OpenAI output / moderation fields of a request, resolved."""

    output_format: str
    output_compression: int | None
    filter_mode: str
    ignored_fields: list[str]
    stream: bool
    partial_images: int


def output_options(req: Any, config: ServerConfig, fields: dict[str, Any] | None = None) -> OutputOptions:
    """Map output_format / output_compression / moderation / stream / partial_images; list ignored fields.

    `fields` names the request's own set of ignorable fields (default: IGNORED_VALUES).
    """
    for name, what in (("frame_count", "GIF"), ("frame_duration_ms", "GIF"), ("svg", "SVG")):
        if getattr(req, name, None) is not None:
            raise APIError(
                400,
                f"{name} applies to {what} output, which this server does not produce "
                "(output_format: png, jpeg or webp); leave it out",
                name,
                "unsupported_value",
            )
    fmt = getattr(req, "output_format", None) or "png"
    if fmt not in ("png", "jpeg", "webp"):
        raise APIError(
            400,
            f"output_format {fmt!r} is not produced by this server; allowed: png, jpeg, webp",
            "output_format",
            "unsupported_value",
        )
    ignored = []
    for name, neutral in (fields or IGNORED_VALUES).items():
        v = getattr(req, name, None)
        if v is not None and v != neutral:
            ignored.append(name)
    compression = getattr(req, "output_compression", None)
    if compression is not None and fmt == "png":
        ignored.append("output_compression")  # PNG is lossless
        compression = None
    moderation = getattr(req, "moderation", None) or "auto"
    mode = config.filter_mode if moderation == "auto" else config.low_filter_mode
    stream = bool(getattr(req, "stream", None))
    partial = getattr(req, "partial_images", None)
    if partial is not None and not stream:
        ignored.append("partial_images")  # only streams carry partial images
    return OutputOptions(fmt, compression, mode, sorted(set(ignored)), stream, partial or 0)


def build_spec(
    req: ImageRequest,
    pipe: Any,
    config: ServerConfig,
    templates: TemplateCatalog,
    content_filter: Any,
    served_name: str,
) -> GenerationSpec:
    """Validate `req` against the model and the server's limits; raise APIError(4xx, param=field).

    `content_filter`: one filter, or a dict filter mode -> filter (None: no filter in that mode).
    """
    opts = output_options(req, config)
    if isinstance(content_filter, dict):
        content_filter = content_filter.get(opts.filter_mode)
    if req.model is not None and req.model != served_name:
        raise APIError(
            400,
            f"unknown model {req.model!r}; this server serves {served_name!r} (see /v1/models)",
            "model",
            "model_not_found",
        )
    text_model = pipe.generator.config.cond_type == "text"
    if req.n > config.max_n:
        raise APIError(400, f"n must be at most {config.max_n} on this server, got {req.n}", "n")
    limit = prompt_limit(config)
    prompts, params, var_sets = _prompt_groups(req, config, templates)
    for text, param in zip(prompts, params):
        _check_text(text, param, limit)
    count = len(prompts) * req.n
    if count > config.max_images_per_request:
        raise APIError(
            400,
            f"{len(prompts)} prompt(s) x n={req.n} = {count} images; this server allows at most "
            f"{config.max_images_per_request} per request",
            "n",
        )
    if req.negative_prompt is not None:
        if not text_model:
            raise APIError(400, "negative_prompt needs a text-conditioned model", "negative_prompt")
        _check_text(req.negative_prompt, "negative_prompt", limit)
    h, w = parse_size(req.size, config, pipe.supported_sizes, pipe.default_size)
    d = pipe.defaults
    steps = req.steps if req.steps is not None else d["num_sampling_steps"]
    if steps > config.max_steps:
        raise APIError(400, f"steps must be at most {config.max_steps} on this server, got {steps}", "steps")
    pnum = req.parallel_num if req.parallel_num is not None else d["parallel_num"]
    allowed_p = list(pipe.generator.config.supported_parallel)
    if pnum not in allowed_p:
        raise APIError(
            400, f"parallel_num {pnum} is not supported by this model; allowed: {allowed_p}", "parallel_num"
        )
    try:  # the pipeline's own checks, as a backstop (e.g. a P that does not tile this size)
        settings = pipe.resolve_settings(h, w, steps, req.guidance_scale, req.guidance_schedule, pnum)
    except ValueError as e:
        raise APIError(400, str(e), _guess_param(str(e))) from None
    labels = None
    if text_model:
        for text, param in zip(prompts, params):
            verdict = content_filter.check(text) if content_filter is not None else None
            if verdict is not None and not verdict.allowed:
                raise APIError(
                    400,
                    f"{param} refused by the content filter: {verdict.reason}",
                    param,
                    "content_policy_violation",
                    headers={"X-Filter-Category": str(verdict.category), "X-Filter-Rule": str(verdict.rule)},
                )
        dropped = getattr(pipe.text_encoder, "dropped_text", None)
        ignored = [dropped(t) if dropped is not None else "" for t in prompts for _ in range(req.n)]
    else:
        labels = [
            _class_label(pipe, text, param) for text, param in zip(prompts, params) for _ in range(req.n)
        ]
        ignored = [""] * count
    base = req.seed if req.seed is not None else secrets.randbelow(2**31)
    return GenerationSpec(
        prompts=[p for p in prompts for _ in range(req.n)] if text_model else None,
        labels=labels,
        seeds=[base + i for i in range(count)],
        height=h,
        width=w,
        steps=settings["num_sampling_steps"],
        guidance_scale=settings["guidance_scale"],
        guidance_schedule=settings["guidance_schedule"],
        parallel_num=settings["parallel_num"],
        negative_prompt=req.negative_prompt,
        n=req.n,
        response_format="b64_json" if opts.stream else (req.response_format or "b64_json"),
        template=req.template,
        variables=var_sets,
        user=req.user or req.safety_identifier,
        ignored=ignored,
        output_format=opts.output_format,
        output_compression=opts.output_compression,
        filter_mode=opts.filter_mode,
        ignored_fields=opts.ignored_fields,
    )


def prompt_limit(config: ServerConfig) -> int:
    """The longest prompt a request may carry: the server's limit within the pipeline's."""
    return min(config.max_prompt_chars, _pipeline_prompt_limit())


def _pipeline_prompt_limit() -> int:
    from .. import pipeline  # noqa: PLC0415

    return int(getattr(pipeline, "MAX_PROMPT_CHARS", 2000))


def _guess_param(message: str) -> str | None:
    for name, param in (
        ("parallel", "parallel_num"),
        ("guidance_scale", "guidance_scale"),
        ("guidance_schedule", "guidance_schedule"),
        ("num_sampling_steps", "steps"),
        ("size", "size"),
        ("patch side", "parallel_num"),
    ):
        if name in message:
            return param
    return None
