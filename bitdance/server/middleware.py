"""The ASGI edge in front of every route: request id, API-key check, body size cap, metrics, JSON log.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses and client-disconnect detection pass through
untouched. The body of a request is read here up to `max_body_bytes` (a larger body gets 413 before
any route sees it) and replayed to the app; after the body, `receive` is the server's own, so routes
still see `http.disconnect` when the client goes away.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .config import ServerConfig
from .errors import error_payload
from .metrics import ServerMetrics

log = logging.getLogger("bitdance.server")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PREFIXES = ("/v1/files/",)  # capability URLs: the random token is the credential
PROTECTED_PREFIXES = ("/v1/", "/sdapi/", "/metrics")


def needs_key(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIXES) and not path.startswith(OPEN_PREFIXES)


def key_ok(header: str | None, keys: list[str]) -> bool:
    """Constant-time check of 'Bearer <key>' against every configured key."""
    if not header or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer ") :].strip().encode()
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    return ok


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class EdgeMiddleware:
    """Request id + auth + body limit + metrics + structured access log."""

    def __init__(self, app: ASGIApp, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.app, self.config, self.metrics = app, config, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = secrets.token_hex(8)
        rid_header = (b"x-request-id", request_id.encode())
        status_box = [0]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            if (
                self.config.api_keys
                and scope.get("method") != "OPTIONS"
                and needs_key(path)
                and not key_ok(headers.get("authorization"), self.config.api_keys)
            ):
                body = error_payload(
                    401,
                    "missing or invalid API key; send 'Authorization: Bearer <key>'",
                    code="invalid_api_key",
                )
                await _send_json(send_wrapped, 401, body, [(b"www-authenticate", b"Bearer")])
                return
            replay = await self._read_body(scope, receive, headers)
            if replay is None:
                body = error_payload(
                    413,
                    f"request body too large; the limit is {self.config.max_body_bytes} bytes",
                    code="body_too_large",
                )
                await _send_json(send_wrapped, 413, body, [(b"connection", b"close")])
                return
            await self.app(scope, replay, send_wrapped)
        finally:
            self._record(scope, path, status_box[0], time.perf_counter() - start, request_id, headers)

    async def _read_body(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> Receive | None:
        """A receive that replays the (size-checked) body; None when the body is over the limit."""
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return receive
        limit = self.config.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = [False]

        async def replay() -> Message:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _record(
        self, scope: Scope, path: str, status: int, seconds: float, request_id: str, headers: dict[str, str]
    ) -> None:
        route = scope.get("route")
        label = getattr(route, "path", None) or ("/static" if path.startswith("/static/") else "unmatched")
        status = status or 500  # no response started here: the outer error middleware answered 500
        self.metrics.requests.inc(route=label, status=str(status))
        self.metrics.request_latency.observe(seconds, route=label)
        client = scope.get("client") or ("?", 0)
        log.info(
            "request",
            extra={
                "event": "request",
                "request_id": request_id,
                "method": scope.get("method"),
                "path": path,
                "route": label,
                "status": status,
                "ms": round(seconds * 1000, 2),
                "client": client[0],
                "user_agent": headers.get("user-agent", "")[:120],
            },
        )
