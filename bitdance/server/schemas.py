"""Request and response bodies (pydantic) of the HTTP API; they are what /openapi.json publishes.

`ImageRequest` is OpenAI's images/generations body (model, prompt, n, size, response_format) plus
typed BitDance extensions. Bodies are strict: unknown fields and wrong JSON types are refused, never
coerced ("2" is not an integer). Bounds here are hard caps; the configured limits are checked after.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model


def _integral(v: Any) -> Any:
    """JSON Schema counts 2.0 as an integer: accept integral floats, nothing else (strings stay refused)."""
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**63 else v


Int = Annotated[int, BeforeValidator(_integral)]
Seed = Annotated[Int, Field(ge=0, le=2**53 - 1)]
VarName = Annotated[str, Field(min_length=1, max_length=64)]
VarValue = Annotated[str, Field(max_length=10_000)]
VariableSet = dict[VarName, VarValue]

# OpenAI images API values (the `openai` client's generated types are the reference); see docs/server.md
OUTPUT_FORMATS = ("png", "jpeg", "webp")  # produced here; the reference also defines gif and svg
QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto", "standard", "hd")
BACKGROUNDS = ("transparent", "opaque", "auto")
OutputFormat = Annotated[
    Literal["png", "webp", "jpeg", "gif", "svg"] | None,
    WithJsonSchema({"anyOf": [{"enum": list(OUTPUT_FORMATS)}, {"type": "null"}]}),
]
# fields the reference defines only for output we do not produce (gif frames, svg authoring): the schema
# allows null; any other value is refused by name at the edge (requests.py)
Unproduced = Annotated[Any, WithJsonSchema({"type": "null"})]


class OpenAIImageFields(BaseModel):
    """Fields of OpenAI's images API that BitDance maps, ignores (and reports) or refuses by value."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    output_format: OutputFormat = Field(None, description="png (default, with the recipe), jpeg or webp")
    output_compression: Int | None = Field(
        None, ge=0, le=100, description="jpeg/webp quality 0-100 (default 100); ignored for png"
    )
    stream: bool | None = Field(None, description="server-sent events: partial images, then completed")
    partial_images: Int | None = Field(
        None, ge=0, le=3, description="AR previews sent as partial_image events when streaming"
    )
    quality: Literal[QUALITIES] | None = Field(None, description="accepted; ignored (reported)")  # type: ignore[valid-type]
    background: Literal[BACKGROUNDS] | None = Field(None, description="accepted; ignored (images are opaque)")  # type: ignore[valid-type]
    complexity: Literal["low", "medium", "high"] | None = Field(None, description="accepted; ignored")
    safety_identifier: str | None = Field(None, max_length=256, description="end-user id; only logged")
    frame_count: Unproduced = Field(None, description="GIF only; this server produces no GIFs (null only)")
    frame_duration_ms: Unproduced = Field(None, description="GIF only (null only)")
    svg: Unproduced = Field(None, description="SVG only; this server produces no SVGs (null only)")


class ImageRequest(OpenAIImageFields):
    """POST /v1/images/generations and POST /v1/jobs."""

    model: str | None = Field(
        None, max_length=200, description="model id from /v1/models; default: the served model"
    )
    prompt: str | list[str] = Field(  # may be left out (then: template), but not null
        None, description="a prompt or a list of prompts (batch); for class models a class name or index"
    )
    n: Int = Field(1, ge=1, le=64, description="images per prompt (server limit: see /v1/models)")
    size: str | None = Field(
        None,
        max_length=32,
        description="WIDTHxHEIGHT in pixels, e.g. '32x32', or 'auto' (the model's native size)",
    )
    response_format: Literal["b64_json", "url"] | None = Field(
        None, description="inline base64 (default), or a URL valid for the server's result lifetime"
    )
    user: str | None = Field(None, max_length=256, description="end-user id (OpenAI field; only logged)")
    moderation: Literal["low", "auto"] | None = Field(
        None, description="auto: the server's filter mode; low: the server's relaxed mode (see /v1/models)"
    )
    style: Literal["vivid", "natural"] | None = Field(None, description="accepted; ignored (reported)")
    seed: Seed | None = Field(
        None, description="seed of the first image; image i uses seed + i; default: random"
    )
    steps: Int | None = Field(None, ge=1, le=1000, description="head sampling steps per AR step")
    guidance_scale: float | None = Field(None, ge=0, le=50, description="classifier-free guidance scale")
    guidance_schedule: Literal["constant", "linear"] | None = None
    negative_prompt: str | None = Field(None, description="negative prompt (text models)")
    template: str = Field(None, max_length=200, description="template name from /v1/templates")
    variables: VariableSet | list[VariableSet] = Field(
        None, description="template variables: one set, or a list of sets (one image group per set)"
    )
    parallel_num: Int | None = Field(None, ge=1, le=4096, description="tokens per AR step P")


class JobRequest(ImageRequest):
    """POST /v1/jobs: an ImageRequest that runs in the background."""

    previews: bool = Field(True, description="send decoded previews of partial images in the event stream")


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = Field(None, description="the prompt actually used (after the template)")
    index: int
    seed: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    output_format: Literal[OUTPUT_FORMATS] | None = None  # type: ignore[valid-type]
    size: str | None = None
    background: Literal["opaque"] | None = None
    ignored_fields: list[str] = Field(
        default_factory=list, description="request fields accepted but without effect here"
    )


class Progress(BaseModel):
    step: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None


class JobError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class JobInfo(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created: float
    started_at: float | None = None
    finished_at: float | None = None
    queue_position: int | None = None
    progress: Progress
    batch_size: int | None = Field(None, description="images in the pipeline call this job ran in")
    error: JobError | None = None
    result: ImagesResponse | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "bitdance"
    cond_type: str
    sizes: list[str]
    parallel_nums: list[int]
    defaults: dict[str, Any]
    model_hash: str
    class_names: list[str] | None = None
    text_tokens: int | None = Field(
        None,
        description="prompt length in text-encoder tokens; text past it is not used "
        "(each image's metadata.prompt_ignored_text names it)",
    )
    limits: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TemplateInfo(BaseModel):
    name: str
    template: str
    variables: list[str]
    description: str | None = None
    defaults: dict[str, str] = Field(default_factory=dict, description="values used for variables left out")


class TemplateList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TemplateInfo]


class Health(BaseModel):
    status: Literal["ok", "starting", "shutting_down"]
    live: bool
    ready: bool
    model: str
    queue_depth: int
    running: int
    auth_required: bool


def bind_limits(
    max_n: int,
    max_steps: int,
    max_prompt_chars: int,
    max_prompts: int,
    model_name: str,
    sizes: list[str],
    parallel_nums: list[int],
    template_names: list[str],
) -> tuple[type[ImageRequest], type[JobRequest]]:
    """Request models whose published schema carries this server's limits and the model's choices.

    Clients (and schema-driven fuzzers) then see the real bounds: n, steps, prompt length and count,
    the model id, sizes, P values and template names. The edge checks in requests.py stay as a backstop.
    """
    text = Annotated[str, Field(max_length=max_prompt_chars)]
    prompts = Annotated[list[text], Field(min_length=1, max_length=max_prompts)]  # type: ignore[valid-type]
    lit = Literal.__getitem__  # Literal[tuple] built at run time
    fields: dict[str, Any] = {
        "model": (lit((model_name,)) | None, Field(None, description="model id from /v1/models")),  # type: ignore[operator]
        "prompt": (
            text | prompts,
            Field(None, description=ImageRequest.model_fields["prompt"].description),
        ),
        "n": (Int, Field(1, ge=1, le=max_n, description="images per prompt")),
        "size": (
            lit((*sizes, "auto")) | None,
            Field(None, description="WIDTHxHEIGHT, or 'auto' (native size)"),
        ),
        "steps": (Int | None, Field(None, ge=1, le=max_steps, description="head sampling steps per AR step")),
        "negative_prompt": (text | None, Field(None, description="negative prompt (text models)")),
        "parallel_num": (
            Annotated[lit(tuple(parallel_nums)), BeforeValidator(_integral)] | None,
            Field(None, description="tokens per AR step P"),
        ),
        "variables": (
            VariableSet | Annotated[list[VariableSet], Field(min_length=1, max_length=max_prompts)],
            Field(None, description=ImageRequest.model_fields["variables"].description),
        ),
    }
    if template_names:
        fields["template"] = (
            lit(tuple(template_names)),
            Field(None, description="template from /v1/templates"),
        )
    image = create_model("ImageRequest", __base__=ImageRequest, __doc__=ImageRequest.__doc__, **fields)
    job = create_model(
        "JobRequest",
        __base__=image,
        __doc__=JobRequest.__doc__,
        previews=(bool, JobRequest.model_fields["previews"]),
    )
    return image, job
