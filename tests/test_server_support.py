"""Helpers shared by the server tests (no tests here): a gated pipeline and a live uvicorn server."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

_PIPES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=False)
def one_thread() -> Iterator[None]:
    """torch on one thread: on a shared 2-core box, 2 threads are several times slower under load."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_pipe(preset: str = "tiny-text") -> Any:
    """A random-weight pipeline, built once per process (16x16 images)."""
    from bitdance.pipeline import BitDancePipeline

    if preset not in _PIPES:
        _PIPES[preset] = BitDancePipeline.from_preset(preset)
    return _PIPES[preset]


class GatedPipe:
    """Wraps a pipeline; every call stops at its first AR step until `gate` is set (or `hold` s pass)."""

    def __init__(self, pipe: Any, hold: float = 10.0) -> None:
        self.pipe, self.hold = pipe, hold
        self.gate = threading.Event()
        self.reached = threading.Event()
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        callback = kwargs["callback"]

        def gated(info: dict[str, Any]) -> None:
            if info["step"] == 1:
                self.reached.set()
                self.gate.wait(self.hold)
            callback(info)

        kwargs["callback"] = gated
        return self.pipe(**kwargs)


def wait_until(cond: Any, timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free localhost port in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "uvicorn start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
