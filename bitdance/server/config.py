"""ServerConfig: every limit and switch of `bitdance serve` in one validated dataclass.

The CLI builds it from flags; tests build it directly. Limits are enforced per request at the edge
(`bitdance.server.requests`); a value outside them is refused with a 4xx naming the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

STORAGE_MODES = ("memory", "disk")
FILTER_MODES = ("block", "warn", "off")


@dataclass
class ServerConfig:
    """Limits, scheduling, security and operations settings of the HTTP server."""

    # per-request limits
    max_n: int = 4  # images per prompt (`n`)
    max_prompts: int = 16  # prompts (or template variable sets) in one request
    max_images_per_request: int = 16  # prompts x n
    max_prompt_chars: int = 1000
    max_steps: int = 50  # head sampling steps per AR step
    max_pixels: int = 1024 * 1024  # height x width
    # scheduling
    max_queue: int = 32  # jobs waiting (not yet running); one more -> 429 with Retry-After
    max_batch_images: int = 16  # images merged into one pipeline call
    job_timeout_s: float = 300.0  # from submission to the end of generation
    preview_every: int = 1  # AR steps between progress previews (0 = no previews)
    # results
    result_ttl_s: float = 600.0  # finished jobs and their image URLs live this long
    storage: str = "memory"  # "memory" or "disk" (a server-owned temporary folder)
    max_stored_bytes: int = 256 * 1024 * 1024  # oldest results are dropped beyond this
    max_jobs_retained: int = 1000
    public_url: str | None = None  # base for image URLs (behind a proxy); None -> the request's base URL
    # security
    api_keys: list[str] = field(default_factory=list)  # empty -> no authentication
    cors_origins: list[str] = field(default_factory=list)  # empty -> CORS off
    max_body_bytes: int = 1024 * 1024
    filter_mode: str = "block"  # content filter on every prompt: "block" | "warn" | "off"
    moderation_low_mode: str | None = None  # mode for OpenAI `moderation: "low"`; None -> filter_mode
    # operations
    shutdown_grace_s: float = 30.0  # running jobs may finish this long at shutdown, then are cancelled
    log_prompts: bool = False  # structured logs carry prompt lengths, not text, unless this is set
    model_name: str | None = None  # name reported by /v1/models; None -> the pipeline's name

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        positive_ints = (
            "max_n",
            "max_prompts",
            "max_images_per_request",
            "max_prompt_chars",
            "max_steps",
            "max_pixels",
            "max_queue",
            "max_batch_images",
            "max_stored_bytes",
            "max_jobs_retained",
            "max_body_bytes",
        )
        for name in positive_ints:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if (
            isinstance(self.preview_every, bool)
            or not isinstance(self.preview_every, int)
            or self.preview_every < 0
        ):
            raise ValueError(f"preview_every must be an integer >= 0, got {self.preview_every!r}")
        for name in ("job_timeout_s", "result_ttl_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        g = self.shutdown_grace_s
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
            raise ValueError(f"shutdown_grace_s must be a number of seconds >= 0, got {g!r}")
        if self.storage not in STORAGE_MODES:
            raise ValueError(f"storage must be one of {list(STORAGE_MODES)}, got {self.storage!r}")
        if self.filter_mode not in FILTER_MODES:
            raise ValueError(f"filter_mode must be one of {list(FILTER_MODES)}, got {self.filter_mode!r}")
        low = self.moderation_low_mode
        if low is not None and low not in FILTER_MODES:
            raise ValueError(f"moderation_low_mode must be one of {list(FILTER_MODES)} or None, got {low!r}")
        if self.max_images_per_request < self.max_n:
            raise ValueError(
                f"max_images_per_request ({self.max_images_per_request}) must be >= max_n ({self.max_n})"
            )
        for key in self.api_keys:
            if not isinstance(key, str) or len(key) < 8 or any(c.isspace() for c in key):
                raise ValueError("api keys must be strings of at least 8 characters without spaces")
        for origin in self.cors_origins:
            if not isinstance(origin, str) or not (
                origin == "*" or origin.startswith(("http://", "https://"))
            ):
                raise ValueError(f"cors origin must be '*' or start with http:// or https://, got {origin!r}")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must start with http:// or https://, got {self.public_url!r}")

    @property
    def low_filter_mode(self) -> str:
        """The filter mode OpenAI's `moderation: "low"` gets (the server may not relax: then filter_mode)."""
        return self.moderation_low_mode or self.filter_mode

    def public_dict(self) -> dict[str, Any]:
        """The limits a client may see (no keys)."""
        d = asdict(self)
        d.pop("api_keys")
        d["auth_required"] = bool(self.api_keys)
        return d
