"""`bitdance serve`: run the HTTP API and web page with uvicorn.

bitdance serve --model random:tiny-text --port 8000
bitdance serve --model bitdance-mini --api-keys-file keys.txt --max-queue 64 --storage disk
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .config import ServerConfig

KEYS_ENV = "BITDANCE_API_KEYS"


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    p = argparse.ArgumentParser(
        prog="bitdance serve", description="HTTP API (OpenAI-compatible) and web page."
    )
    p.add_argument(
        "--model",
        default="bitdance-mini",
        help="shipped model name, local pipeline folder, or random:<preset> (default: bitdance-mini)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    g = p.add_argument_group("security")
    g.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help=f"accept this Bearer key (repeatable; also ${KEYS_ENV}, comma-separated); none = no auth",
    )
    g.add_argument("--api-keys-file", help="file with one API key per line")
    g.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser calls from this origin (repeatable); CORS is off by default",
    )
    g.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes)
    g.add_argument(
        "--filter-mode",
        choices=["block", "warn", "off"],
        default=d.filter_mode,
        help="content filter on every prompt (default block)",
    )
    g.add_argument(
        "--moderation-low-mode",
        choices=["block", "warn", "off"],
        default=None,
        help="filter mode for OpenAI requests with moderation=low (default: the --filter-mode)",
    )
    g = p.add_argument_group("limits and scheduling")
    g.add_argument("--max-n", type=int, default=d.max_n, help=f"images per prompt (default {d.max_n})")
    g.add_argument("--max-prompts", type=int, default=d.max_prompts)
    g.add_argument("--max-images", type=int, default=d.max_images_per_request, help="images per request")
    g.add_argument("--max-prompt-chars", type=int, default=d.max_prompt_chars)
    g.add_argument("--max-steps", type=int, default=d.max_steps)
    g.add_argument("--max-pixels", type=int, default=d.max_pixels)
    g.add_argument("--max-queue", type=int, default=d.max_queue, help="waiting jobs before 429 (default 32)")
    g.add_argument(
        "--max-batch-images", type=int, default=d.max_batch_images, help="images per pipeline call"
    )
    g.add_argument(
        "--job-timeout", type=float, default=d.job_timeout_s, help="seconds per job, queue included"
    )
    g.add_argument(
        "--preview-every", type=int, default=d.preview_every, help="AR steps between previews (0: none)"
    )
    g = p.add_argument_group("results and operations")
    g.add_argument(
        "--result-ttl", type=float, default=d.result_ttl_s, help="seconds results stay retrievable"
    )
    g.add_argument(
        "--storage",
        choices=["memory", "disk"],
        default=d.storage,
        help="where finished images wait: memory, or a server-owned temp folder",
    )
    g.add_argument("--max-stored-mb", type=int, default=d.max_stored_bytes // 2**20)
    g.add_argument("--public-url", help="base URL for image links when behind a proxy")
    g.add_argument("--templates-file", help="extra prompt templates (JSON/YAML) offered by /v1/templates")
    g.add_argument(
        "--shutdown-grace",
        type=float,
        default=d.shutdown_grace_s,
        help="seconds running jobs may finish at shutdown before they are cancelled",
    )
    g.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    g.add_argument("--log-prompts", action="store_true", help="include prompt text in the JSON logs")
    return p


def read_keys(args: argparse.Namespace) -> list[str]:
    """Keys from --api-key, --api-keys-file and $BITDANCE_API_KEYS (blank lines and # comments skipped)."""
    keys = list(args.api_key)
    if args.api_keys_file:
        path = Path(args.api_keys_file)
        if not path.is_file():
            raise FileNotFoundError(f"API keys file {path} not found")
        keys += [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    keys += [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    return keys


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """ServerConfig from parsed flags (ValueError for a bad value)."""
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.templates_file and not Path(args.templates_file).is_file():
        raise FileNotFoundError(f"templates file {args.templates_file} not found")
    return ServerConfig(
        max_n=args.max_n,
        max_prompts=args.max_prompts,
        max_images_per_request=args.max_images,
        max_prompt_chars=args.max_prompt_chars,
        max_steps=args.max_steps,
        max_pixels=args.max_pixels,
        max_queue=args.max_queue,
        max_batch_images=args.max_batch_images,
        job_timeout_s=args.job_timeout,
        preview_every=args.preview_every,
        result_ttl_s=args.result_ttl,
        storage=args.storage,
        max_stored_bytes=args.max_stored_mb * 2**20,
        public_url=args.public_url,
        api_keys=read_keys(args),
        cors_origins=args.cors_origin,
        max_body_bytes=args.max_body_bytes,
        filter_mode=args.filter_mode,
        moderation_low_mode=args.moderation_low_mode,
        shutdown_grace_s=args.shutdown_grace,
        log_prompts=args.log_prompts,
    )


def quiet_reported_warnings() -> None:
    """Silence pipeline warnings the API already returns to the client (a cut prompt's ignored words are
    in each image's ``metadata.prompt_ignored_text``), so they do not also flood the server's stderr."""
    import warnings  # noqa: PLC0415

    from ..pipeline import PromptTruncatedWarning  # noqa: PLC0415

    warnings.filterwarnings("ignore", category=PromptTruncatedWarning)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {args.threads}")
    import torch  # noqa: PLC0415
    import uvicorn  # noqa: PLC0415

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from ..pipeline import BitDancePipeline  # noqa: PLC0415
    from .app import create_app  # noqa: PLC0415
    from .logs import setup_json_logging  # noqa: PLC0415

    setup_json_logging(args.log_level)
    quiet_reported_warnings()
    pipe = BitDancePipeline.from_pretrained(args.model, device=args.device, filter_mode=args.filter_mode)
    app = create_app(pipe, config, templates_file=args.templates_file)
    state = app.state.bd

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            state.begin_shutdown()  # readiness 503 and no new jobs while connections drain
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    server = Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, int(config.shutdown_grace_s)),
            limit_concurrency=1024,
        )
    )
    server.run()
    return 0
