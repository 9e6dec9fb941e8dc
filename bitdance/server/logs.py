"""Structured logs: one JSON object per line (time, level, logger, message, and any `extra=` fields).

setup_json_logging("info")
log.info("request", extra={"event": "request", "path": "/v1/models", "status": 200, "ms": 3.1})
-> {"ts": "2025-01-01T12:00:00.000Z", "level": "info", "logger": "bitdance.server", "msg": "request", ...}
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}  # color_message: uvicorn's ANSI duplicate of msg
LEVELS = ("debug", "info", "warning", "error")


class JSONFormatter(logging.Formatter):
    """Format a record as one JSON line; extra fields are kept, exceptions go in `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_json_logging(level: str = "info", stream: Any = None) -> logging.Handler:
    """Send `bitdance.*` and uvicorn logs to `stream` (stderr) as JSON lines; returns the handler."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {list(LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter())
    for name in ("bitdance", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the app logs each request itself, as JSON
    return handler
