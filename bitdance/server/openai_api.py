"""OpenAI images API: /v1/images/generations, /v1/images/edits, /v1/images/variations (+ streaming).

Every field the reference defines is accepted: mapped where it means something here, reported in
`ignored_fields` (and the `X-BitDance-Ignored-Fields` header) where it has no effect, refused by name
where we cannot honour the value. Streaming (`stream: true`) answers with server-sent events in the
reference's shape: up to `partial_images` AR previews as `image_generation.partial_image` (edits:
`image_edit.partial_image`), then one `...completed` event per image. See docs/server.md.
"""

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import APIError, ErrorResponse
from .images_io import (
    check_size,
    image_alpha_mask,
    open_upload,
    recipe_of,
    reencode_data_url,
    transparent_mask,
)
from .jobs import Job
from .requests import SIZE_RE, GenerationSpec
from .schemas import BACKGROUNDS, QUALITIES, ImageRequest, ImagesResponse

UNEDITED_KEEP = 0.25  # edits without a mask, and variations: keep the first quarter of the AR steps


SSE_EVENT = {  # one server-sent event (OpenAPI 3.2 style): its name and JSON data
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "enum": [
                "image_generation.partial_image",
                "image_generation.completed",
                "image_edit.partial_image",
                "image_edit.completed",
                "error",
            ]
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EditForm(BaseModel):
    """The non-file fields of POST /v1/images/edits (multipart: every value arrives as text)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=32000)
    model: str | None = None
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, max_length=32)
    response_format: str | None = Field(None, pattern="^(url|b64_json)$")
    output_format: str | None = Field(None, pattern="^(png|jpeg|webp|gif|svg)$")
    output_compression: int | None = Field(None, ge=0, le=100)
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=3)
    quality: str | None = Field(None, pattern="^(" + "|".join(QUALITIES) + ")$")
    background: str | None = Field(None, pattern="^(" + "|".join(BACKGROUNDS) + ")$")
    complexity: str | None = Field(None, pattern="^(low|medium|high)$")
    input_fidelity: str | None = Field(None, pattern="^(high|low)$")
    moderation: str | None = Field(None, pattern="^(low|auto)$")
    user: str | None = Field(None, max_length=256)
    safety_identifier: str | None = Field(None, max_length=256)
    frame_count: str | None = None
    frame_duration_ms: str | None = None
    svg: str | None = None
    # BitDance extensions (as in the JSON generation body)
    seed: int | None = Field(None, ge=0, le=2**53 - 1)
    steps: int | None = Field(None, ge=1, le=1000)
    guidance_scale: float | None = Field(None, ge=0, le=50, allow_inf_nan=False)
    guidance_schedule: str | None = Field(None, pattern="^(constant|linear)$")
    parallel_num: int | None = Field(None, ge=1, le=4096)
    negative_prompt: str | None = Field(None, max_length=32000)


class VariationForm(BaseModel):
    """The non-file fields of POST /v1/images/variations."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, max_length=32)
    response_format: str | None = Field(None, pattern="^(url|b64_json)$")
    user: str | None = Field(None, max_length=256)


def _binary(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


def _form_schema(model: type[BaseModel], files: dict[str, Any], required: list[str]) -> dict[str, Any]:
    props = {}
    for name, f in model.model_fields.items():
        props[name] = {"type": "string", "description": f.description or "see docs/server.md"}
    props.update(files)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": props, "required": required}
                }
            },
        }
    }


EDIT_FILES = {
    "image": {
        "anyOf": [_binary("the image to edit"), {"type": "array", "items": _binary("image")}],
        "description": "PNG / JPEG / WebP of a supported size; with several, the first is edited",
    },
    "image[]": {"type": "array", "items": _binary("image (the client's array form)")},
    "mask": _binary("PNG whose fully transparent pixels mark the area to edit"),
    "markup": _binary("refused: not supported (use mask)"),
}


async def _form(request: Request) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """Text fields and uploaded files of a multipart (or urlencoded) body; repeated text fields refused."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise APIError(
            400, "send the request as multipart/form-data (as the openai client does)", "body", "invalid_body"
        )
    try:
        form = await request.form(max_files=32, max_fields=64)
    except Exception:  # noqa: BLE001 (python-multipart raises several kinds for a malformed body)
        raise APIError(400, "the multipart body could not be parsed", "body", "invalid_body") from None
    fields: dict[str, str] = {}
    files: dict[str, list[bytes]] = {}
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            files.setdefault(key, []).append(await value.read())
        elif key.startswith("svg["):
            fields["svg"] = str(value)
        elif key in fields:
            raise APIError(400, f"field {key!r} is given twice", key)
        else:
            fields[key] = str(value)
    return fields, files


def _validate_form(model: type[BaseModel], fields: dict[str, str]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None


def register_openai_routes(app: FastAPI, state: Any, gen_request: type, deps: list[Any]) -> None:
    """Add the three OpenAI image endpoints to `app` (state: the app's ServerState)."""
    pipe, config = state.pipe, state.config

    def headers_for(spec: GenerationSpec) -> dict[str, str]:
        return {"X-BitDance-Ignored-Fields": ", ".join(spec.ignored_fields)} if spec.ignored_fields else {}

    async def wait_result(job: Job, request: Request) -> Any:
        info = await state.wait(job, request)
        if info is None:
            return Response(status_code=499)
        return JSONResponse(state.present(info, request, job)["result"], headers=headers_for(job.spec))

    def stream(job: Job, request: Request, partial_images: int, quality: str | None) -> StreamingResponse:
        spec = job.spec
        prefix = "image_edit" if spec.kind == "edit" else "image_generation"
        base = {
            "background": "opaque",
            "output_format": spec.output_format,
            "quality": quality if quality in ("low", "medium", "high", "xhigh", "max") else "auto",
            "size": f"{spec.width}x{spec.height}",
        }
        f = pipe.tokenizer.downsample
        out_tokens = (spec.height // f) * (spec.width // f)
        known_tokens = 0 if spec.known is None else int(spec.known.keep.sum())
        text_tokens = getattr(pipe.generator.config, "text_len", 0) if spec.prompts is not None else 0

        async def events() -> AsyncIterator[str]:
            q = job.subscribe()
            sent = 0
            try:
                while True:
                    try:
                        event, data = await asyncio.wait_for(q.get(), timeout=15.0)
                    except asyncio.TimeoutError:
                        state.scheduler.expire_if_late(job)
                        yield ": keep-alive\n\n"
                        continue
                    if event == "progress" and data.get("preview") and sent < partial_images:
                        target = math.ceil(data["total"] * (sent + 1) / (partial_images + 1))
                        if target <= data["step"] < data["total"]:
                            for url in data["preview"]:
                                body = {
                                    "type": f"{prefix}.partial_image",
                                    "b64_json": reencode_data_url(url, spec.output_format),
                                    "created_at": int(time.time()),
                                    "partial_image_index": sent,
                                    **base,
                                }
                                yield _sse(body["type"], body)
                            sent += 1
                    if event != "done" and not job.finished:
                        continue
                    info = job.info()
                    if info["status"] != "succeeded":
                        err = info["error"] or {"message": "job failed", "type": "server_error"}
                        yield _sse("error", {"type": "error", "error": err})
                        return
                    for item in info["result"]["data"]:
                        body = {
                            "type": f"{prefix}.completed",
                            "b64_json": item["b64_json"],
                            "created_at": info["result"]["created"],
                            **base,
                            "usage": {
                                "input_tokens": text_tokens + known_tokens,
                                "input_tokens_details": {
                                    "image_tokens": known_tokens,
                                    "text_tokens": text_tokens,
                                },
                                "output_tokens": out_tokens,
                                "total_tokens": text_tokens + known_tokens + out_tokens,
                            },
                        }
                        if spec.user:
                            body["safety_identifier"] = spec.user
                        yield _sse(body["type"], body)
                    return
            finally:
                job.unsubscribe(q)
                if not job.finished:
                    state.scheduler.cancel(job.id, "event stream client disconnected")

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers_for(spec)},
        )

    responses_200: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "the images; with stream=true, server-sent events (partial_image, completed)",
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        429: {"model": ErrorResponse, "description": "the queue is full; see Retry-After"},
        503: {"model": ErrorResponse, "description": "the server is shutting down"},
        504: {"model": ErrorResponse, "description": "generation timed out"},
    }

    @app.post(
        "/v1/images/generations",
        response_model=ImagesResponse,
        dependencies=deps,
        tags=["images"],
        responses=responses_200,
    )
    async def generate(req: gen_request, request: Request) -> Any:  # type: ignore[valid-type]
        """Generate images (OpenAI style) and wait, or stream them; a client that disconnects cancels."""
        spec = state.build(req)
        job = state.submit(spec, previews=bool(req.stream and req.partial_images))  # type: ignore[attr-defined]
        if req.stream:  # type: ignore[attr-defined]
            return stream(job, request, req.partial_images or 0, req.quality)  # type: ignore[attr-defined]
        return await wait_result(job, request)

    # ------------------------------------------------------------------ edits
    def edit_request(form: EditForm, size: str) -> ImageRequest:
        d = form.model_dump(exclude_none=True, exclude={"input_fidelity"})
        d["size"] = size
        return ImageRequest.model_validate(d, strict=False)

    async def prepare(
        image: Any, regen: np.ndarray | None, size: tuple[int, int], canvas: Any, p: int
    ) -> Any:
        from ..pipeline.editing import prepare_edit, vary_known  # noqa: PLC0415

        def work() -> Any:
            if regen is None and canvas is None:
                grid_tokens = (size[0] // pipe.tokenizer.downsample) * (size[1] // pipe.tokenizer.downsample)
                keep_steps = int(grid_tokens // p * UNEDITED_KEEP)
                known, _, info = vary_known(
                    pipe.tokenizer, image, keep_steps, p, pipe.generator.config.supported_parallel
                )
                return known, {**info, "mode": "reroll"}
            known, _, info = prepare_edit(
                pipe.tokenizer,
                image,
                mask=regen,
                canvas=canvas,
                supported_sizes=pipe.supported_sizes,
            )
            return known, info

        try:
            return await asyncio.to_thread(work)
        except ValueError as e:
            raise APIError(400, str(e), "image", "invalid_edit") from None

    @app.post(
        "/v1/images/edits",
        response_model=ImagesResponse,
        dependencies=deps,
        tags=["images"],
        responses=responses_200,
        openapi_extra=_form_schema(EditForm, EDIT_FILES, ["image", "prompt"]),
    )
    async def edit(request: Request) -> Any:
        """Edit an image (multipart, as the openai client sends it): the mask's fully transparent pixels
        are regenerated; no mask: the image's own transparent pixels, else a re-roll keeping its first
        quarter of AR steps; a larger `size` outpaints onto that canvas."""
        fields, files = await _form(request)
        unknown_files = sorted(set(files) - {"image", "image[]", "mask", "markup"})
        if unknown_files:
            raise APIError(400, f"unknown file field {unknown_files[0]!r}", unknown_files[0])
        if "markup" in files:
            raise APIError(
                400, "markup is not supported here; send a mask instead", "markup", "unsupported_value"
            )
        for name in ("mask", "image", "image[]"):
            if name in fields:
                raise APIError(400, f"{name} must be an uploaded file, not a text field", name)
        form = _validate_form(EditForm, fields)
        uploads = files.get("image", []) + files.get("image[]", [])
        if not uploads:
            raise APIError(400, "image is required: upload the image to edit", "image")
        image = open_upload(uploads[0], "image")
        img_size = check_size(image, pipe.supported_sizes, "image")
        regen = None
        if files.get("mask"):
            if len(files["mask"]) > 1:
                raise APIError(400, "give one mask", "mask")
            regen = transparent_mask(open_upload(files["mask"][0], "mask"), img_size, "mask")
        else:
            regen = image_alpha_mask(image)
        canvas = None
        size = form.size
        if size not in (None, "auto"):
            m = SIZE_RE.match(size)
            if m and (int(m.group(2)), int(m.group(1))) != img_size:
                canvas = (int(m.group(2)), int(m.group(1)))
        out_size = canvas or img_size
        req = edit_request(form, f"{out_size[1]}x{out_size[0]}" if canvas or size in (None, "auto") else size)
        spec = state.build(req)
        if form.input_fidelity is not None:
            spec.ignored_fields.append("input_fidelity")
        known, info = await prepare(image, regen, img_size, canvas, spec.parallel_num)
        spec.known, spec.edit_info, spec.kind = known, info, "edit"
        if len(uploads) > 1:
            spec.ignored_fields.append("image[1:]")
        job = state.submit(spec, previews=bool(form.stream and form.partial_images))
        if form.stream:
            return stream(job, request, form.partial_images or 0, form.quality)
        return await wait_result(job, request)

    # ------------------------------------------------------------------ variations
    @app.post(
        "/v1/images/variations",
        response_model=ImagesResponse,
        dependencies=deps,
        tags=["images"],
        responses={k: v for k, v in responses_200.items() if k != 200},
        openapi_extra=_form_schema(
            VariationForm, {"image": _binary("a PNG written by BitDance (its recipe is used)")}, ["image"]
        ),
    )
    async def variations(request: Request) -> Any:
        """Variations of a BitDance PNG: its recipe's prompt and settings, the first quarter of its AR
        steps kept, the rest re-sampled with new seeds."""
        fields, files = await _form(request)
        extra = sorted(set(files) - {"image"})
        if extra:
            raise APIError(400, f"unknown file field {extra[0]!r}", extra[0])
        if "image" in fields:
            raise APIError(400, "image must be an uploaded file, not a text field", "image")
        form = _validate_form(VariationForm, fields)
        if not files.get("image"):
            raise APIError(400, "image is required: upload a PNG written by BitDance", "image")
        image = open_upload(files["image"][0], "image")
        img_size = check_size(image, pipe.supported_sizes, "image")
        if form.size not in (None, "auto", f"{img_size[1]}x{img_size[0]}"):
            raise APIError(
                400,
                f"a variation keeps the image's size ({img_size[1]}x{img_size[0]}); leave size out",
                "size",
            )
        recipe = recipe_of(image)
        if recipe is None:
            raise APIError(
                400,
                "image carries no BitDance recipe, so there is no prompt to vary it with; "
                "use /v1/images/edits with a prompt",
                "image",
                "no_recipe",
            )
        prompt = recipe.get("prompt")
        if prompt is None and recipe.get("class_label") is not None:
            prompt = str(recipe["class_label"])
        if not isinstance(prompt, str):
            raise APIError(400, "the image's recipe names no prompt or class", "image", "no_recipe")
        p = recipe.get("parallel_num") or pipe.defaults["parallel_num"]
        body: dict[str, Any] = {
            "prompt": prompt,
            "n": form.n,
            "size": f"{img_size[1]}x{img_size[0]}",
            "response_format": form.response_format,
            "user": form.user,
            "model": form.model,
            "parallel_num": p,
        }
        for key, rkey in (("steps", "num_sampling_steps"), ("guidance_scale", "guidance_scale")):
            if recipe.get(rkey) is not None:
                body[key] = recipe[rkey]
        if isinstance(body.get("steps"), int) and body["steps"] > config.max_steps:
            body.pop("steps")
        req = ImageRequest.model_validate({k: v for k, v in body.items() if v is not None}, strict=False)
        spec = state.build(req)
        from ..pipeline.editing import vary_known  # noqa: PLC0415

        grid_tokens = (img_size[0] // pipe.tokenizer.downsample) * (img_size[1] // pipe.tokenizer.downsample)
        keep_steps = int(grid_tokens // p * UNEDITED_KEEP)
        try:
            known, _, info = await asyncio.to_thread(
                vary_known, pipe.tokenizer, image, keep_steps, p, pipe.generator.config.supported_parallel
            )
        except ValueError as e:
            raise APIError(400, str(e), "image", "invalid_edit") from None
        spec.known, spec.edit_info, spec.kind = known, info, "variation"
        job = state.submit(spec, previews=False)
        return await wait_result(job, request)
