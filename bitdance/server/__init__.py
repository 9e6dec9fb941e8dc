"""HTTP API server and web page for BitDance (`bitdance serve`); needs the `server` extra (fastapi, uvicorn).

from bitdance.server import ServerConfig, create_app
app = create_app(BitDancePipeline.from_preset("tiny-text"), ServerConfig(max_queue=8))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServerConfig", "create_app"]


def create_app(
    pipeline: Any = None, config: ServerConfig | None = None, templates_file: str | None = None
) -> FastAPI:
    """See `bitdance.server.app.create_app` (imported lazily: fastapi is an optional dependency)."""
    from .app import create_app as _create_app  # noqa: PLC0415

    return _create_app(pipeline, config, templates_file)
