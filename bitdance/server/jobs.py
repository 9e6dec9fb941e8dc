"""Jobs (one request's work, state and subscribers) and the store of finished images.

A `Job` is shared by the worker thread (progress, results) and the event loop (status queries,
event streams): state changes take the job's lock, and events reach asyncio subscribers through
`loop.call_soon_threadsafe`. The first terminal transition wins (a cancelled job stays cancelled
even if its batch later finishes).

`ResultStore` keeps PNG bytes for URL retrieval under random capability tokens, in memory or in a
server-owned temporary folder (never a client-chosen path), for `ttl` seconds and within a byte cap.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_bytes

TERMINAL = ("succeeded", "failed", "cancelled")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(18)}"


class Job:
    """One request: a validated spec, its status/progress, results, and event subscribers."""

    def __init__(self, spec: Any, previews: bool = False, timeout_s: float = 300.0) -> None:
        self.id = new_id("job_")
        self.spec = spec
        self.previews = previews
        self.created = time.time()
        self.deadline = time.monotonic() + timeout_s
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.status = "queued"
        self.progress: dict[str, Any] = {"step": 0, "total": 0, "elapsed_s": 0.0, "eta_s": None}
        self.batch_size: int | None = None
        self.error: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.cancel_requested = False
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []

    # ------------------------------------------------------------------ state
    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def start(self, batch_size: int) -> bool:
        """queued -> running; False if the job already ended (cancelled while queued)."""
        with self._lock:
            if self.finished:
                return False
            self.status, self.started_at, self.batch_size = "running", time.time(), batch_size
        self.publish("status", {"status": "running", "batch_size": batch_size})
        return True

    def set_progress(
        self, step: int, total: int, elapsed: float, eta: float | None, preview: str | None = None
    ) -> None:
        with self._lock:
            if self.finished:
                return
            self.progress = {
                "step": step,
                "total": total,
                "elapsed_s": round(elapsed, 4),
                "eta_s": None if eta is None else round(eta, 4),
            }
            event = dict(self.progress)
        if preview is not None:
            event["preview"] = preview
        self.publish("progress", event)

    def finish(
        self, status: str, error: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> bool:
        """Enter a terminal state once; returns False if the job had already ended."""
        assert status in TERMINAL
        with self._lock:
            if self.finished:
                return False
            self.status, self.error, self.result = status, error, result
            self.finished_at = time.time()
        self.done.set()
        self.publish("done", self.info())
        return True

    def info(self, queue_position: int | None = None) -> dict[str, Any]:
        """JSON-ready JobInfo."""
        with self._lock:
            return {
                "id": self.id,
                "object": "job",
                "status": self.status,
                "created": self.created,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "queue_position": queue_position if self.status == "queued" else None,
                "progress": dict(self.progress),
                "batch_size": self.batch_size,
                "error": self.error,
                "result": self.result,
            }

    # ------------------------------------------------------------------ events
    def subscribe(self) -> asyncio.Queue:
        """An asyncio queue (of the running loop) receiving (event, data) tuples; call inside the loop."""
        q: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), q))
            if self.status in TERMINAL:
                q.put_nowait(("done", None))
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = [(lp, x) for lp, x in self._subscribers if x is not q]

    @property
    def has_subscribers(self) -> bool:
        with self._lock:
            return bool(self._subscribers)

    def publish(self, event: str, data: Any) -> None:
        """Deliver (event, data) to every subscriber, from any thread."""
        with self._lock:
            targets = list(self._subscribers)
        for loop, q in targets:
            try:
                loop.call_soon_threadsafe(q.put_nowait, (event, data))
            except RuntimeError:  # that loop is closed: the subscriber is gone
                self.unsubscribe(q)

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait (in the event loop) until the job ends; False on timeout."""
        q = self.subscribe()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                try:
                    await asyncio.wait_for(q.get(), timeout=left)
                except asyncio.TimeoutError:
                    return self.finished
            return True
        finally:
            self.unsubscribe(q)


class ResultStore:
    """PNG bytes under random tokens, in memory or in a server-owned temp folder, with TTL and byte cap."""

    def __init__(self, mode: str = "memory", ttl: float = 600.0, max_bytes: int = 256 * 1024 * 1024) -> None:
        if mode not in ("memory", "disk"):
            raise ValueError(f"storage mode must be 'memory' or 'disk', got {mode!r}")
        self.mode, self.ttl, self.max_bytes = mode, ttl, max_bytes
        self.folder: Path | None = (
            Path(tempfile.mkdtemp(prefix="bitdance-server-")) if mode == "disk" else None
        )
        self._items: OrderedDict[str, tuple[float, int, bytes | None]] = (
            OrderedDict()
        )  # token -> (t, size, data)
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def put(self, data: bytes) -> str:
        """Store PNG bytes; returns the token for `/v1/files/{token}.png`."""
        token = secrets.token_urlsafe(24)
        if self.folder is not None:
            atomic_write_bytes(self.folder / f"{token}.png", data)  # a reader never sees a half-written file
        with self._lock:
            self._items[token] = (time.monotonic(), len(data), data if self.folder is None else None)
            self._bytes += len(data)
        self.sweep()
        return token

    def get(self, token: str) -> bytes | None:
        """Bytes for a live token, else None (unknown, malformed or expired)."""
        if not TOKEN_RE.match(token):
            return None
        with self._lock:
            item = self._items.get(token)
            if item is None or time.monotonic() - item[0] > self.ttl:
                return None
            data = item[2]
        if data is None and self.folder is not None:
            try:
                return (self.folder / f"{token}.png").read_bytes()
            except FileNotFoundError:
                return None
        return data

    def sweep(self) -> None:
        """Drop expired items, then the oldest ones while over the byte cap."""
        now = time.monotonic()
        drop: list[str] = []
        with self._lock:
            for token, (t, size, _) in list(self._items.items()):
                if now - t > self.ttl or self._bytes > self.max_bytes:
                    del self._items[token]
                    self._bytes -= size
                    drop.append(token)
                else:
                    break  # ordered by time: the rest are newer and the cap is met
        if self.folder is not None:
            for token in drop:
                (self.folder / f"{token}.png").unlink(missing_ok=True)

    def close(self) -> None:
        """Forget everything; remove the temp folder."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
