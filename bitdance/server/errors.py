"""OpenAI-style JSON errors: {"error": {"message", "type", "param", "code"}} for every failure.

Handlers turn FastAPI validation errors (malformed JSON, wrong types, missing or unknown fields),
HTTP errors (404, 405) and our own `APIError` into that shape; validation errors become 400 with
`param` naming the offending field (e.g. "n", "prompt[2]", "variables[0].subject").
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("bitdance.server")

TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The body of every non-2xx response."""

    error: ErrorBody


class APIError(Exception):
    """An error with an HTTP status, raised anywhere in request handling."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        type_: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}
        self.type = type_ or TYPES_BY_STATUS.get(
            status, "invalid_request_error" if status < 500 else "server_error"
        )


def error_payload(
    status: int, message: str, param: str | None = None, code: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    t = type_ or TYPES_BY_STATUS.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": t, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    type_: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_payload(status, message, param, code, type_), status_code=status, headers=headers
    )


_TYPE_TAGS = ("str", "int", "float", "bool", "list", "dict", "none", "constrained-str", "[key]")


def _is_type_tag(part: str) -> bool:
    """pydantic puts union-member tags ('list[str]', 'function-before[...]') and '[key]' in locations."""
    return part in _TYPE_TAGS or any(c in part for c in "[](),") or part.startswith(("function-", "json-or-"))


def loc_to_param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """('body', 'prompt', 2) -> 'prompt[2]'; ('body', 'variables', 0, 'x') -> 'variables[0].x'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p and not _is_type_tag(p):
            out += ("." if out else "") + p
    return out or None


def _validation_message(err: dict[str, Any], param: str | None) -> str:
    kind = err.get("type", "")
    if kind == "json_invalid":
        ctx = err.get("ctx", {}).get("error", "")
        pos = [p for p in err.get("loc", ()) if isinstance(p, int)]
        where = f" at character {pos[0]}" if pos else ""
        return f"request body is not valid JSON{where}{f' ({ctx})' if ctx else ''}"
    if kind == "missing" and param is None:
        return "request body is missing; send a JSON object"
    if kind in ("model_attributes_type", "dict_type", "model_type") and param is None:
        return "request body must be a JSON object (Content-Type: application/json)"
    if kind == "extra_forbidden":
        return f"unknown field {param!r}; see /openapi.json for the allowed fields"
    msg = str(err.get("msg", "invalid value"))
    return f"{param}: {msg}" if param else msg


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors()) or [{"msg": "invalid request", "loc": ()}]
    # a union (prompt: str | list[str]) reports one error per member: the deepest location is the useful one
    top = errors[0].get("loc", ())[:2]
    same_field = [e for e in errors if e.get("loc", ())[:2] == top]
    err = max(same_field, key=lambda e: len(loc_to_param(e.get("loc", ())) or ""))
    param = None if err.get("type") == "json_invalid" else loc_to_param(err.get("loc", ()))
    message = _validation_message(err, param)
    if param is None:
        param = "body"  # the error is about the body as a whole (not JSON, not an object, missing)
    others = len({e.get("loc", ())[:2] for e in errors}) - 1
    if others:
        message += f" (and {others} more field{'s' if others > 1 else ''} with problems)"
    return error_response(400, message, param, code=str(err.get("type") or "invalid_value"))


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import Match  # noqa: PLC0415

    methods: set[str] = set()
    scope = {**request.scope, "method": "GET"}
    for route in request.app.routes:
        for method in getattr(route, "methods", None) or ():
            match, _ = route.matches({**scope, "method": method})
            if match == Match.FULL:
                methods.add(method)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so every error leaves as an OpenAI-style JSON body."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers, exc.type)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        param = None
        if exc.status_code == 400 and "parsing the body" in message:
            message, param = "request body could not be decoded; send UTF-8 JSON", "body"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every route of this path, not only the first one matched
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
                message = (
                    f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
                )
        return error_response(exc.status_code, message, param, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc, extra={"event": "error", "path": request.url.path})
        return error_response(500, "internal server error", type_="server_error")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "invalid request (param names the field)"},
    401: {"model": ErrorResponse, "description": "missing or wrong API key"},
    413: {"model": ErrorResponse, "description": "request body too large"},
}
