"""AUTOMATIC1111-compatible endpoints (`/sdapi/v1/...`), enough for the `webuiapi` client and scripts.

txt2img and img2img map onto our generation and editing: prompt, negative_prompt, seed (-1 random),
batch_size x n_iter, steps (head steps per AR step), cfg_scale, width/height, sampler_name ("Euler a" =
euler_maruyama, "Euler" = euler); img2img's `mask` (white = repaint) inpaints, without a mask
`denoising_strength` d re-samples all but the first (1 - d) of the AR steps. Fields without an effect
here are accepted and listed in `info.ignored_fields`; values we cannot honour (hires fix, scripts,
styles, variation seeds, other samplers) are refused by name. See docs/server.md for every field.
"""

import asyncio
import json
import math
import time
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from ..core.blank import NON_BLANK_PATTERN
from .errors import APIError
from .images_io import check_size, decode_base64_image, recipe_of, white_mask
from .requests import prompt_limit
from .schemas import ImageRequest, Int

SAMPLERS = {
    "Euler a": "euler_maruyama",
    "Euler": "euler",
    "euler_maruyama": "euler_maruyama",
    "euler": "euler",
}
SamplerName = Literal["Euler a", "Euler", "euler_maruyama", "euler"]
Ignored = Any  # accepted, without effect (reported in info.ignored_fields when not the A1111 default)
OnlyFalse = Annotated[bool, WithJsonSchema({"type": "boolean", "enum": [False]})]
Empty = Annotated[Any, WithJsonSchema({"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]})]
OnlyNull = Annotated[Any, WithJsonSchema({"type": "null"})]

# ignored fields and the values that mean "nothing asked" (A1111's and webuiapi's defaults)
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "subseed": (-1,),
    "seed_resize_from_h": (-1, 0),
    "seed_resize_from_w": (-1, 0),
    "scheduler": ("automatic", "Automatic"),
    "restore_faces": (False,),
    "tiling": (False,),
    "do_not_save_samples": (False, True),
    "do_not_save_grid": (False, True),
    "eta": (1.0, 0.0),
    "s_churn": (0, 0.0),
    "s_tmax": (0, 0.0),
    "s_tmin": (0, 0.0),
    "s_noise": (1, 1.0),
    "s_min_uncond": (0, 0.0),
    "override_settings": ({},),
    "override_settings_restore_afterwards": (True, False),
    "refiner_checkpoint": ("",),
    "refiner_switch_at": (0, 0.0),
    "disable_extra_networks": (False,),
    "comments": ({},),
    "save_images": (False,),
    "script_args": ([],),
    "force_task_id": ("",),
    "infotext": ("",),
    "firstpass_image": ("",),
    # img2img
    "resize_mode": (0,),
    "image_cfg_scale": (1.5,),
    "mask_blur": (4,),
    "mask_blur_x": (4,),
    "mask_blur_y": (4,),
    "mask_round": (True,),
    "inpainting_fill": (0,),
    "inpaint_full_res": (True, 1, False, 0),
    "inpaint_full_res_padding": (0, 32),
    "initial_noise_multiplier": (1, 1.0),
    "latent_mask": ("",),
    "include_init_images": (False,),
}
HIRES = (  # only meaningful with enable_hr, which is refused: never reported
    "denoising_strength",
    "firstphase_width",
    "firstphase_height",
    "hr_scale",
    "hr_upscaler",
    "hr_second_pass_steps",
    "hr_resize_x",
    "hr_resize_y",
    "hr_checkpoint_name",
    "hr_sampler_name",
    "hr_scheduler",
    "hr_prompt",
    "hr_negative_prompt",
    "hr_additional_modules",
)
IMG2IMG_ONLY = tuple(k for k in list(NEUTRAL)[list(NEUTRAL).index("resize_mode") :])


def bind_a1111_models(
    max_batch: int, max_iter: int, max_steps: int, max_chars: int, sizes: list[tuple[int, int]]
) -> tuple[type[BaseModel], type[BaseModel]]:
    """txt2img / img2img bodies whose schema carries this server's limits and the model's sizes."""
    text = Annotated[str, Field(max_length=max_chars, json_schema_extra={"pattern": NON_BLANK_PATTERN})]
    size_rule = {  # (width, height) a supported pair, or both left out (the model's default size)
        "anyOf": [
            {"properties": {"width": {"const": w}, "height": {"const": h}}, "required": ["width", "height"]}
            for h, w in sizes
        ]
        + [{"not": {"anyOf": [{"required": ["width"]}, {"required": ["height"]}]}}]
    }
    fields: dict[str, Any] = {
        "prompt": (text, Field(description="the prompt (required: this is a text model)")),
        "negative_prompt": (Annotated[str, Field(max_length=max_chars)] | None, None),
        "styles": (Annotated[list[str], Field(max_length=0)] | None, Field(None, description="refused")),
        "seed": (Annotated[Int, Field(ge=-1, le=2**53 - 1)], Field(-1, description="-1: random")),
        "subseed_strength": (float | None, Field(None, ge=0, le=0, description="variation seeds: refused")),
        "sampler_name": (SamplerName | None, Field(None, description="Euler a | Euler (our solvers)")),
        "sampler_index": (SamplerName | None, Field(None, description="older name of sampler_name")),
        "batch_size": (Annotated[Int, Field(ge=1, le=max_batch)], 1),
        "n_iter": (Annotated[Int, Field(ge=1, le=max_iter)], 1),
        "steps": (Annotated[Int, Field(ge=1, le=max_steps)] | None, None),
        "cfg_scale": (Annotated[float, Field(ge=0, le=50)] | None, None),
        "width": (Int, Field(None, description="with height: a supported size; both out: the default")),
        "height": (Int, None),
        "enable_hr": (OnlyFalse, Field(False, description="hires fix: refused")),
        "script_name": (OnlyNull, Field(None, description="scripts: refused")),
        "alwayson_scripts": (Empty, Field(None, description="extensions: refused when not empty")),
        "send_images": (bool, True),
        **{k: (Ignored, None) for k in NEUTRAL if k not in IMG2IMG_ONLY},
        **{k: (Ignored, None) for k in HIRES},
    }
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, json_schema_extra=size_rule)
    txt = create_model("A1111Txt2Img", __config__=config, **fields)
    img_fields = dict(fields)
    img_fields.pop("denoising_strength")
    img_fields.update(
        init_images=(Annotated[list[str], Field(min_length=1, max_length=16)], ...),
        denoising_strength=(Annotated[float, Field(ge=0, le=1)] | None, None),
        mask=(str | None, Field(None, description="base64 mask: white = repaint")),
        inpainting_mask_invert=(Annotated[Int, Field(ge=0, le=1)] | None, None),
        **{k: (Ignored, None) for k in IMG2IMG_ONLY},
    )
    img = create_model("A1111Img2Img", __config__=config, **img_fields)
    return txt, img


class PngInfoRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    image: str = Field(min_length=1, description="base64 PNG")


def _ignored(body: BaseModel) -> list[str]:
    out = []
    for name in body.model_fields_set:
        v = getattr(body, name)
        if name in NEUTRAL and v is not None and v not in NEUTRAL[name]:
            out.append(name)
    return sorted(out)


def register_a1111_routes(app: FastAPI, state: Any, deps: list[Any]) -> None:
    """Add the /sdapi/v1 endpoints (state: the app's ServerState)."""
    pipe, config = state.pipe, state.config
    title = f"{state.name} [{pipe.model_hash[:10]}]"
    txt_model, img_model = bind_a1111_models(
        config.max_n,
        config.max_prompts,
        min(config.max_steps, 1000),
        prompt_limit(config),
        [s for s in pipe.supported_sizes if s[0] * s[1] <= config.max_pixels],
    )
    tags = ["automatic1111"]
    default = f"{pipe.default_size[1]}x{pipe.default_size[0]}"

    def refuse_unsupported(body: Any) -> None:
        if body.enable_hr:
            raise APIError(
                400, "enable_hr (hires fix) is not supported here", "enable_hr", "unsupported_value"
            )
        if body.script_name is not None:
            raise APIError(400, "scripts are not supported here", "script_name", "unsupported_value")
        scripts = body.alwayson_scripts
        if scripts is not None and scripts != {}:
            name = next(iter(scripts), "?") if isinstance(scripts, dict) else type(scripts).__name__
            raise APIError(
                400, f"extension scripts are not supported here (got {name!r}); send {{}}", "alwayson_scripts"
            )
        if body.negative_prompt is not None and not isinstance(body.negative_prompt, str):
            raise APIError(400, "negative_prompt must be a string", "negative_prompt")
        ov = body.override_settings
        if isinstance(ov, dict) and ov.get("sd_model_checkpoint") not in (None, title, state.name):
            raise APIError(
                400,
                f"override_settings.sd_model_checkpoint: this server serves {title!r}",
                "override_settings.sd_model_checkpoint",
                "model_not_found",
            )

    def size_of(body: Any) -> tuple[int, int] | None:
        if body.width is None and body.height is None:
            return None
        if body.width is None or body.height is None:
            missing = "height" if body.height is None else "width"
            raise APIError(400, f"give width and height together (or neither: {default})", missing)
        return body.height, body.width

    def build(body: Any, size: tuple[int, int] | None) -> Any:
        refuse_unsupported(body)
        neg = body.negative_prompt if body.negative_prompt and body.negative_prompt.strip() else None
        req: dict[str, Any] = {
            "prompt": body.prompt if body.n_iter == 1 else [body.prompt] * body.n_iter,
            "n": body.batch_size,
            "seed": None if body.seed == -1 else body.seed,
            "steps": body.steps,
            "guidance_scale": body.cfg_scale,
            "negative_prompt": neg,
            "size": None if size is None else f"{size[1]}x{size[0]}",
        }
        spec = state.build(ImageRequest.model_validate({k: v for k, v in req.items() if v is not None}))
        sampler = body.sampler_name or body.sampler_index
        spec.solver = SAMPLERS[sampler] if sampler else None
        spec.ignored_fields = _ignored(body)
        return spec

    async def respond(body: Any, spec: Any, request: Request) -> Any:
        job = state.submit(spec, previews=False)
        info = await state.wait(job, request)
        if info is None:
            return Response(status_code=499)
        from ..pipeline.provenance import a1111_parameters  # noqa: PLC0415

        data = info["result"]["data"]
        recipes = [d["metadata"] for d in data]
        r0 = recipes[0]
        details = {
            "prompt": body.prompt,
            "all_prompts": [r.get("prompt") for r in recipes],
            "negative_prompt": body.negative_prompt or "",
            "all_negative_prompts": [r.get("negative_prompt") or "" for r in recipes],
            "seed": spec.seeds[0],
            "all_seeds": list(spec.seeds),
            "subseed": -1,
            "all_subseeds": [-1] * len(spec.seeds),
            "subseed_strength": 0,
            "width": spec.width,
            "height": spec.height,
            "sampler_name": {"euler": "Euler"}.get(r0.get("solver"), "Euler a"),
            "cfg_scale": r0.get("guidance_scale"),
            "steps": r0.get("num_sampling_steps"),
            "batch_size": body.batch_size,
            "restore_faces": False,
            "sd_model_name": state.name,
            "sd_model_hash": pipe.model_hash[:10],
            "seed_resize_from_w": -1,
            "seed_resize_from_h": -1,
            "denoising_strength": getattr(body, "denoising_strength", None),
            "extra_generation_params": {"Parallel tokens": r0.get("parallel_num")},
            "index_of_first_image": 0,
            "infotexts": [a1111_parameters(r) for r in recipes],
            "styles": [],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "clip_skip": 1,
            "is_using_inpainting_conditioning": False,
            "version": f"bitdance {r0.get('bitdance_version')}",
            "ignored_fields": spec.ignored_fields,
        }
        params = body.model_dump(exclude={"init_images", "mask"})
        return {
            "images": [d["b64_json"] for d in data] if body.send_images else [],
            "parameters": params,
            "info": json.dumps(details),
        }

    result_schema = {
        200: {
            "description": "images (base64 PNG with the recipe), the request, and info (a JSON string)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["images", "parameters", "info"],
                        "properties": {
                            "images": {"type": "array", "items": {"type": "string"}},
                            "parameters": {"type": "object"},
                            "info": {"type": "string"},
                        },
                    }
                }
            },
        },
        429: {"description": "the queue is full; see Retry-After"},
        503: {"description": "the server is shutting down"},
        504: {"description": "generation timed out"},
    }

    @app.post("/sdapi/v1/txt2img", dependencies=deps, tags=tags, responses=result_schema)
    async def txt2img(body: txt_model, request: Request) -> Any:  # type: ignore[valid-type]
        """A1111 txt2img (see docs/server.md for what each field does here)."""
        return await respond(body, build(body, size_of(body)), request)

    @app.post("/sdapi/v1/img2img", dependencies=deps, tags=tags, responses=result_schema)
    async def img2img(body: img_model, request: Request) -> Any:  # type: ignore[valid-type]
        """A1111 img2img: with `mask` (white = repaint) an inpaint; without, a re-roll of the later AR
        steps set by `denoising_strength`. The first init image is used (resized to width x height)."""
        from PIL import Image  # noqa: PLC0415

        from ..pipeline.editing import prepare_edit, vary_known  # noqa: PLC0415

        image = decode_base64_image(body.init_images[0], "init_images[0]").convert("RGB")
        size = size_of(body) or (image.height, image.width)
        if (image.height, image.width) != size:  # resize_mode 0 ("just resize")
            image = image.resize((size[1], size[0]), Image.LANCZOS)
        check_size(image, pipe.supported_sizes, "init_images[0]")
        spec = build(body, size)
        ignored = set(spec.ignored_fields) | ({"init_images[1:]"} if len(body.init_images) > 1 else set())
        if body.mask is not None:
            m = decode_base64_image(body.mask, "mask")
            if (m.height, m.width) != size:
                m = m.resize((size[1], size[0]), Image.NEAREST)
            regen = white_mask(m, size, "mask", invert=bool(body.inpainting_mask_invert))
            if body.denoising_strength is not None:
                ignored.add("denoising_strength")  # the masked area is regenerated in full

            def work() -> Any:
                known, _, info = prepare_edit(pipe.tokenizer, image, mask=regen)
                return known, info
        else:
            d = 0.75 if body.denoising_strength is None else body.denoising_strength
            f = pipe.tokenizer.downsample
            total = (size[0] // f) * (size[1] // f) // spec.parallel_num
            keep = min(total - 1, max(0, math.floor((1 - d) * total)))

            def work() -> Any:
                known, _, info = vary_known(
                    pipe.tokenizer, image, keep, spec.parallel_num, pipe.generator.config.supported_parallel
                )
                return known, {**info, "denoising_strength": d}

        try:
            spec.known, spec.edit_info = await asyncio.to_thread(work)
        except ValueError as e:
            raise APIError(400, str(e), "init_images[0]", "invalid_edit") from None
        spec.kind, spec.ignored_fields = "edit", sorted(ignored)
        return await respond(body, spec, request)

    @app.post("/sdapi/v1/png-info", dependencies=deps, tags=tags)
    async def png_info(body: PngInfoRequest) -> dict[str, Any]:
        """The A1111 `parameters` text of a PNG, parsed, plus its other text chunks."""
        from ..pipeline.provenance import PARAMETERS_KEY, parse_parameters  # noqa: PLC0415

        image = decode_base64_image(body.image, "image")
        text = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
        info = text.pop(PARAMETERS_KEY, "")
        return {
            "info": info,
            "items": {**text, **({"bitdance": recipe_of(image)} if recipe_of(image) else {})},
            "parameters": parse_parameters(info) if info else {},
        }

    @app.get("/sdapi/v1/progress", dependencies=deps, tags=tags)
    async def progress(skip_current_image: bool = False) -> dict[str, Any]:
        """Progress of the batch now running (0..1) and its ETA; current_image is always null."""
        running = state.scheduler.running_jobs()
        p = running[0].progress if running else {"step": 0, "total": 0, "eta_s": None}
        frac = p["step"] / p["total"] if p["total"] else 0.0
        return {
            "progress": round(frac, 4),
            "eta_relative": p.get("eta_s") or 0.0,
            "state": {
                "skipped": False,
                "interrupted": False,
                "job": running[0].id if running else "",
                "job_count": len(running) + state.scheduler.queue_depth,
                "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
                "job_no": 0,
                "sampling_step": p["step"],
                "sampling_steps": p["total"],
            },
            "current_image": None,
            "textinfo": None,
        }

    @app.post("/sdapi/v1/interrupt", dependencies=deps, tags=tags)
    async def interrupt() -> dict[str, Any]:
        """Cancel the batch now running (as A1111's Interrupt button)."""
        jobs = state.scheduler.running_jobs()
        for job in jobs:
            state.scheduler.cancel(job.id, "interrupted (/sdapi/v1/interrupt)")
        return {"interrupted": [j.id for j in jobs]}

    @app.get("/sdapi/v1/sd-models", dependencies=deps, tags=tags)
    async def sd_models() -> list[dict[str, Any]]:
        """The one served model, in A1111's shape (hash: the first 10 hex of our model hash)."""
        return [
            {
                "title": title,
                "model_name": state.name,
                "hash": pipe.model_hash[:10],
                "sha256": None,
                "filename": state.name,
                "config": None,
            }
        ]

    @app.get("/sdapi/v1/options", dependencies=deps, tags=tags)
    async def get_options() -> dict[str, Any]:
        """The few A1111 options that mean something here (read-only)."""
        return {"sd_model_checkpoint": title, "samples_format": "png", "sd_checkpoint_hash": None}

    @app.post("/sdapi/v1/options", dependencies=deps, tags=tags)
    async def set_options(body: dict[str, Any]) -> dict[str, Any]:
        """Only `sd_model_checkpoint` naming the served model is accepted; other options are ignored."""
        ck = body.get("sd_model_checkpoint")
        if ck is not None and ck not in (title, state.name):
            raise APIError(400, f"sd_model_checkpoint: this server serves {title!r}", "sd_model_checkpoint")
        return {"ignored_fields": sorted(k for k in body if k != "sd_model_checkpoint")}

    @app.get("/sdapi/v1/samplers", dependencies=deps, tags=tags)
    async def samplers() -> list[dict[str, Any]]:
        return [
            {"name": "Euler a", "aliases": ["euler_maruyama"], "options": {}},
            {"name": "Euler", "aliases": ["euler"], "options": {}},
        ]

    @app.get("/sdapi/v1/schedulers", dependencies=deps, tags=tags)
    async def schedulers() -> list[dict[str, Any]]:
        return [{"name": "automatic", "label": "Automatic", "aliases": None}]

    @app.get("/sdapi/v1/scripts", dependencies=deps, tags=tags)
    async def scripts() -> dict[str, list[str]]:
        return {"txt2img": [], "img2img": []}
