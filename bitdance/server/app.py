"""`create_app(pipeline, config)`: the FastAPI application over one BitDancePipeline.

Routes (all errors are OpenAI-style JSON, see errors.py):
    GET  /                          web page (static files, no external resources)
    GET  /health, /health/live, /health/ready
    GET  /metrics                   Prometheus text format
    GET  /v1/models, /v1/models/{id}, /v1/templates
    POST /v1/images/generations     OpenAI-compatible, waits for the images
    POST /v1/jobs                   background job -> 202 + id
    GET  /v1/jobs/{id}              status, progress, ETA, results
    DELETE /v1/jobs/{id}            cancel
    GET  /v1/jobs/{id}/events       server-sent events: status, progress (+ previews), done
    GET  /v1/files/{token}.png      finished images (response_format "url"), for `result_ttl_s`
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .a1111_api import register_a1111_routes
from .config import ServerConfig
from .errors import APIError, ErrorResponse, install_error_handlers
from .jobs import Job
from .metrics import ServerMetrics
from .middleware import OPEN_PREFIXES, PROTECTED_PREFIXES, EdgeMiddleware
from .openai_api import register_openai_routes
from .openapi import contract_openapi
from .requests import GenerationSpec, TemplateCatalog, build_spec, prompt_limit
from .scheduler import QueueFull, Scheduler, ShuttingDown
from .schemas import (
    Health,
    ImageRequest,
    JobInfo,
    ModelCard,
    ModelList,
    TemplateList,
    bind_limits,
)

log = logging.getLogger("bitdance.server")
STATIC = Path(__file__).resolve().parent / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
STATUS_BY_ERROR_TYPE = {"invalid_request_error": 400, "timeout_error": 504, "cancelled": 409}
JOB_404 = {404: {"model": ErrorResponse, "description": "no such job (unknown or expired)"}}
QUEUE_429 = {
    429: {"model": ErrorResponse, "description": "the queue is full; see Retry-After"},
    503: {"model": ErrorResponse, "description": "the server is shutting down"},
}


class ServerState:
    """Everything a route needs, kept on `app.state.bd`."""

    def __init__(self, pipe: Any, config: ServerConfig, templates_file: str | None) -> None:
        self.pipe, self.config = pipe, config
        self.name = config.model_name or pipe.name
        self.templates = TemplateCatalog(templates_file)
        self.filters: dict[str, Any] = {}  # filter mode -> filter (moderation picks the mode)
        if pipe.generator.config.cond_type == "text":
            for mode in {config.filter_mode, config.low_filter_mode} - {"off"}:
                self.filters[mode] = pipe.content_filter(mode)
        self.metrics = ServerMetrics(
            lambda: self.scheduler.queue_depth,
            lambda: self.scheduler.running,
            lambda: self.scheduler.store.stored_bytes,
        )
        self.scheduler = Scheduler(pipe, config, self.metrics)
        self.created = int(time.time())
        self.shutting_down = False
        self._shutdown_started: float | None = None

    def startup(self) -> None:
        """Start the worker; after a previous shutdown (an app served again) start from a fresh scheduler."""
        if self.shutting_down:
            self.scheduler = Scheduler(self.pipe, self.config, self.metrics)
            self.shutting_down, self._shutdown_started = False, None
        self.scheduler.start()

    def begin_shutdown(self) -> None:
        """Stop taking work (readiness goes 503); accepted jobs keep running. Idempotent."""
        if self._shutdown_started is None:
            self._shutdown_started = time.monotonic()
        self.shutting_down = True
        self.scheduler.stop_accepting()

    def grace_left(self) -> float:
        """Shutdown grace not yet used since `begin_shutdown`."""
        used = 0.0 if self._shutdown_started is None else time.monotonic() - self._shutdown_started
        return max(0.0, self.config.shutdown_grace_s - used)

    def base_url(self, request: Request) -> str:
        return (self.config.public_url or str(request.base_url)).rstrip("/")

    def build(self, req: ImageRequest) -> GenerationSpec:
        """The validated spec of a request (4xx APIError otherwise; filter blocks are counted)."""
        try:
            return build_spec(req, self.pipe, self.config, self.templates, self.filters, self.name)
        except APIError as e:
            if e.code == "content_policy_violation":
                self.metrics.filter_blocks.inc(category=e.headers.get("X-Filter-Category", "unknown"))
            raise

    def submit(self, spec: GenerationSpec, previews: bool) -> Job:
        """Queue `spec`; 429 when the queue is full, 503 while shutting down."""
        try:
            job = self.scheduler.submit(spec, previews=previews)
        except QueueFull as e:
            raise APIError(
                429,
                str(e),
                code="queue_full",
                headers={
                    "Retry-After": str(e.retry_after),
                    "X-Queue-Depth": str(e.depth),
                    "X-Queue-Limit": str(e.limit),
                },
            ) from None
        except ShuttingDown:
            raise APIError(
                503,
                "the server is shutting down; retry on another instance",
                code="shutting_down",
                headers={"Retry-After": "5"},
            ) from None
        log.info(
            "job queued",
            extra={
                "event": "job_queued",
                "job_id": job.id,
                "kind": spec.kind,
                "images": spec.count,
                "prompt_chars": [len(p) for p in (spec.prompts or [])][:16],
                "template": spec.template,
                "user": spec.user,
                **({"prompts": spec.prompts} if self.config.log_prompts else {}),
            },
        )
        return job

    async def wait(self, job: Job, request: Request) -> dict[str, Any] | None:
        """Wait for `job`: its info when it succeeded, None when the client left (the job is cancelled);
        APIError with the job's error otherwise."""
        while not job.finished:
            await job.wait(timeout=0.25)
            if job.finished or self.scheduler.expire_if_late(job):
                break
            if await request.is_disconnected():
                self.scheduler.cancel(job.id, "client disconnected")
                log.info("client gone", extra={"event": "disconnect", "job_id": job.id})
                return None
        info = job.info()
        if info["status"] == "succeeded":
            return info
        err = info["error"] or {"message": "job failed", "type": "server_error"}
        status = STATUS_BY_ERROR_TYPE.get(err["type"], 500)
        if err.get("code") == "shutdown":
            status = 503
        raise APIError(status, err["message"], err.get("param"), err.get("code"), type_=err["type"])

    def present(self, info: dict[str, Any], request: Request, job: Job | None = None) -> dict[str, Any]:
        """Job info for a client: absolute image URLs, queue position and ETA filled in."""
        info = dict(info)
        if job is not None and info["status"] == "queued":
            info["queue_position"] = self.scheduler.queue_position(job)
            info["progress"] = {**info["progress"], "eta_s": self.scheduler.eta(job)}
        if info.get("result"):
            info["result"] = absolute_urls(info["result"], self.base_url(request))
        return info


def absolute_urls(result: dict[str, Any], base: str) -> dict[str, Any]:
    data = [{**d, "url": base + d["url"]} if d.get("url", "").startswith("/") else d for d in result["data"]]
    return {**result, "data": data}


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _load_default_pipeline() -> Any:
    from ..pipeline import BitDancePipeline  # noqa: PLC0415

    return BitDancePipeline.from_pretrained()


def create_app(
    pipeline: Any = None, config: ServerConfig | None = None, templates_file: str | None = None
) -> FastAPI:
    """The HTTP app over `pipeline` (default: the shipped default model) with `config` limits."""
    config = config or ServerConfig()
    config.validate()
    pipe = pipeline if pipeline is not None else _load_default_pipeline()
    if pipe.defaults["num_sampling_steps"] > config.max_steps:
        raise ValueError(
            f"max_steps ({config.max_steps}) is below the model's default of "
            f"{pipe.defaults['num_sampling_steps']} steps; raise it"
        )
    state = ServerState(pipe, config, templates_file)
    sizes = [f"{w}x{h}" for h, w in pipe.supported_sizes if h * w <= config.max_pixels]  # WIDTHxHEIGHT
    if not sizes:
        raise ValueError(f"max_pixels ({config.max_pixels}) excludes every size this model supports")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.startup()
        log.info(
            "ready",
            extra={
                "event": "startup",
                "model": state.name,
                "model_hash": pipe.model_hash,
                "config": config.public_dict(),
            },
        )
        try:
            yield
        finally:
            state.begin_shutdown()
            log.info(
                "shutting down",
                extra={
                    "event": "shutdown",
                    "queued": state.scheduler.queue_depth,
                    "running": state.scheduler.running,
                },
            )
            await asyncio.to_thread(state.scheduler.shutdown, state.grace_left())
            log.info("stopped", extra={"event": "stopped"})

    deps = [Depends(HTTPBearer(auto_error=False))] if config.api_keys else []
    app = FastAPI(
        title="BitDance image generation API",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="OpenAI-compatible image generation with BitDance; see docs/server.md.",
    )
    app.state.bd = state
    install_error_handlers(app)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware  # noqa: PLC0415

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(EdgeMiddleware, config=config, metrics=state.metrics)  # outermost: sees every request

    # ------------------------------------------------------------------ page and operations
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    def health_body() -> dict[str, Any]:
        s = state.scheduler
        ready = not state.shutting_down and s.accepting
        status = "shutting_down" if state.shutting_down else ("ok" if ready else "starting")
        return {
            "status": status,
            "live": True,
            "ready": ready,
            "model": state.name,
            "queue_depth": s.queue_depth,
            "running": s.running,
            "auth_required": bool(config.api_keys),
        }

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["operations"])
    async def health() -> JSONResponse:
        """Liveness and readiness in one body; 503 while not ready (starting or shutting down)."""
        body = health_body()
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/health/live", response_model=Health, tags=["operations"])
    async def health_live() -> dict[str, Any]:
        """200 while the process serves requests."""
        return health_body()

    @app.get("/health/ready", response_model=Health, responses={503: {"model": Health}}, tags=["operations"])
    async def health_ready() -> JSONResponse:
        """200 when new work is accepted, else 503."""
        return await health()

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=deps, tags=["operations"])
    async def metrics() -> PlainTextResponse:
        """Prometheus text exposition (queue depth, latencies, images, filter blocks, ...)."""
        return PlainTextResponse(
            state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    # ------------------------------------------------------------------ models and templates
    def model_card() -> dict[str, Any]:
        gcfg = pipe.generator.config
        limits = {
            k: getattr(config, k)
            for k in (
                "max_n",
                "max_prompts",
                "max_images_per_request",
                "max_prompt_chars",
                "max_steps",
                "max_pixels",
            )
        }
        limits["filter_mode"] = config.filter_mode  # OpenAI moderation "auto"
        limits["moderation_low_mode"] = config.low_filter_mode  # OpenAI moderation "low"
        return {
            "id": state.name,
            "object": "model",
            "created": state.created,
            "owned_by": "bitdance",
            "cond_type": gcfg.cond_type,
            "sizes": sizes,
            "parallel_nums": list(gcfg.supported_parallel),
            "text_tokens": gcfg.text_len if gcfg.cond_type == "text" else None,
            "defaults": dict(pipe.defaults),
            "model_hash": pipe.model_hash,
            "class_names": pipe.class_names,
            "limits": limits,
        }

    @app.get("/v1/models", response_model=ModelList, dependencies=deps, tags=["models"])
    async def list_models() -> dict[str, Any]:
        """The served model (OpenAI list format) with sizes, defaults and this server's limits."""
        return {"object": "list", "data": [model_card()]}

    @app.get(
        "/v1/models/{model_id}",
        response_model=ModelCard,
        dependencies=deps,
        tags=["models"],
        responses={404: {"model": ErrorResponse, "description": "unknown model"}},
    )
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != state.name:
            raise APIError(
                404,
                f"unknown model {model_id!r}; this server serves {state.name!r}",
                "model_id",
                "model_not_found",
            )
        return model_card()

    @app.get("/v1/templates", response_model=TemplateList, dependencies=deps, tags=["models"])
    async def list_templates() -> dict[str, Any]:
        """Prompt templates usable in the `template` field, with their variables."""
        return {"object": "list", "data": state.templates.describe()}

    # ------------------------------------------------------------------ generation
    GenRequest, JobRequest = bind_limits(  # noqa: N806 (classes)
        min(config.max_n, 64),
        min(config.max_steps, 1000),
        prompt_limit(config),
        config.max_prompts,
        state.name,
        sizes,
        list(pipe.generator.config.supported_parallel),
        state.templates.names(),
    )

    register_openai_routes(app, state, GenRequest, deps)
    register_a1111_routes(app, state, deps)

    @app.post(
        "/v1/jobs",
        response_model=JobInfo,
        status_code=202,
        dependencies=deps,
        tags=["jobs"],
        responses=QUEUE_429,
    )
    async def create_job(req: JobRequest, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        """Queue a generation and return at once; follow it with GET /v1/jobs/{id} or its event stream."""
        spec = state.build(req)
        if req.stream:  # type: ignore[attr-defined]
            spec.ignored_fields = sorted({*spec.ignored_fields, "stream"})  # jobs stream via /events
        job = state.submit(spec, previews=req.previews)  # type: ignore[attr-defined]
        return state.present(job.info(), request, job)

    def find(job_id: str) -> Job:
        job = state.scheduler.get(job_id)
        if job is None:
            raise APIError(
                404,
                f"no job {job_id[:80]!r} (unknown, or expired after {config.result_ttl_s:g} s)",
                "job_id",
                "job_not_found",
            )
        return job

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, dependencies=deps, tags=["jobs"], responses=JOB_404)
    async def get_job(job_id: str, request: Request) -> dict[str, Any]:
        """Status, progress (step/total, ETA), queue position and, when done, the results."""
        job = find(job_id)
        return state.present(job.info(), request, job)

    @app.delete(
        "/v1/jobs/{job_id}",
        response_model=JobInfo,
        dependencies=deps,
        tags=["jobs"],
        responses={**JOB_404, 409: {"model": ErrorResponse, "description": "the job already finished"}},
    )
    async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
        """Cancel a queued or running job; its queue slot is freed at once."""
        job = find(job_id)
        if job.finished:
            raise APIError(409, f"job {job_id} already {job.status}", "job_id", "job_finished")
        state.scheduler.cancel(job_id)
        return state.present(job.info(), request, job)

    @app.get(
        "/v1/jobs/{job_id}/events",
        dependencies=deps,
        tags=["jobs"],
        responses={
            **JOB_404,
            200: {"content": {"text/event-stream": {}}, "description": "events: status, progress, done"},
        },
    )
    async def job_events(
        job_id: str, request: Request, cancel_on_disconnect: bool = False
    ) -> StreamingResponse:
        """Server-sent events: `status`, `progress` ({step, total, eta_s, preview: [data URLs]}), `done`.

        With `cancel_on_disconnect=true` the job is cancelled when the stream's client goes away.
        """
        job = find(job_id)

        async def stream() -> AsyncIterator[str]:
            q = job.subscribe()
            try:
                yield _sse("status", state.present(job.info(), request, job))
                while True:
                    try:
                        event, data = await asyncio.wait_for(q.get(), timeout=15.0)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event == "done":
                        yield _sse("done", state.present(job.info(), request, job))
                        return
                    yield _sse(event, data)
            finally:
                job.unsubscribe(q)
                if cancel_on_disconnect and not job.finished:
                    state.scheduler.cancel(job.id, "event stream client disconnected")

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/v1/files/{name}",
        tags=["images"],
        response_class=Response,
        responses={
            200: {
                "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                "description": "the image (PNG with provenance metadata)",
            },
            404: {"model": ErrorResponse, "description": "unknown or expired"},
        },
    )
    async def get_file(name: str) -> Response:
        """A finished image by its capability URL (no API key needed; the random token is the credential)."""
        from .images_io import MEDIA_TYPES, sniff_format  # noqa: PLC0415

        token, _, ext = name.rpartition(".")
        data = state.scheduler.store.get(token) if ext in MEDIA_TYPES and token else None
        if data is None or sniff_format(data) != ext:
            raise APIError(
                404,
                f"no image {name[:80]!r} (unknown, or expired after {config.result_ttl_s:g} s)",
                "name",
                "file_not_found",
            )
        return Response(
            data,
            media_type=MEDIA_TYPES[ext],
            headers={
                "Cache-Control": f"private, max-age={int(config.result_ttl_s)}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    from ..pipeline.templates import MAX_VALUE_CHARS  # noqa: PLC0415

    contract_openapi(
        app,
        state.templates.describe(),
        prompt_limit(config),
        config.max_prompts,
        MAX_VALUE_CHARS,
        bool(config.api_keys),
        PROTECTED_PREFIXES,
        OPEN_PREFIXES,
    )
    return app
