"""Prometheus metrics in the text exposition format (version 0.0.4), written here without a dependency.

    reg = Registry()
    c = reg.counter("bitdance_images_generated_total", "Images generated.")
    c.inc(4)
    reg.render()  # -> "# HELP ...\n# TYPE ... counter\nbitdance_images_generated_total 4\n"

Thread-safe: the worker thread and the event loop both update metrics.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Sequence

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

LabelKey = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelKey:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {list(self.labelnames)}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """Monotonic count, optionally per label set."""

    kind = "counter"

    def __init__(self, name: str, help_: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_, labelnames)
        self._values: dict[LabelKey, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_fmt(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read at scrape time from a function (queue depth, running jobs, stored bytes)."""

    kind = "gauge"

    def __init__(self, name: str, help_: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_)
        self.read = read

    def render(self) -> list[str]:
        return self.header() + [f"{self.name} {_fmt(float(self.read()))}"]


class Histogram(_Metric):
    """Cumulative buckets + _sum + _count, optionally per label set."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_: str,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        labelnames: Sequence[str] = (),
    ) -> None:
        super().__init__(name, help_, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._data: dict[LabelKey, list[float]] = {}  # per label set: bucket counts..., +Inf count, sum

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            row = self._data.setdefault(key, [0.0] * (len(self.buckets) + 2))
            row[i] += 1
            row[-1] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            row = self._data.get(self._key(labels))
            return int(sum(row[:-1])) if row else 0

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        for key, row in items:
            cumulative = 0.0
            for bound, n in zip(list(self.buckets) + [math.inf], row[:-1]):
                cumulative += n
                le = 'le="' + _fmt(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {_fmt(cumulative)}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_fmt(row[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {_fmt(cumulative)}")
        return lines


class Registry:
    """Named metrics rendered together in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def _add(self, m: _Metric) -> _Metric:
        if m.name in self._metrics:
            raise ValueError(f"metric {m.name} registered twice")
        self._metrics[m.name] = m
        return m

    def counter(self, name: str, help_: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_, labelnames))  # type: ignore[return-value]

    def gauge(self, name: str, help_: str, read: Callable[[], float]) -> Gauge:
        return self._add(Gauge(name, help_, read))  # type: ignore[return-value]

    def histogram(
        self,
        name: str,
        help_: str,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        labelnames: Sequence[str] = (),
    ) -> Histogram:
        return self._add(Histogram(name, help_, buckets, labelnames))  # type: ignore[return-value]

    def render(self) -> str:
        lines: list[str] = []
        for m in self._metrics.values():
            lines += m.render()  # type: ignore[attr-defined]
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """The server's metric set; gauges read live state through the callables given."""

    def __init__(
        self,
        queue_depth: Callable[[], float],
        running: Callable[[], float],
        stored_bytes: Callable[[], float],
    ) -> None:
        r = self.registry = Registry()
        r.gauge("bitdance_queue_depth", "Jobs waiting for the model.", queue_depth)
        r.gauge("bitdance_jobs_running", "Jobs in the pipeline call now running.", running)
        r.gauge(
            "bitdance_result_store_bytes", "Bytes of finished images held for URL retrieval.", stored_bytes
        )
        self.requests = r.counter(
            "bitdance_http_requests_total", "HTTP requests by route and status.", ("route", "status")
        )
        self.request_latency = r.histogram(
            "bitdance_http_request_duration_seconds", "HTTP request latency by route.", labelnames=("route",)
        )
        self.jobs = r.counter("bitdance_jobs_total", "Finished jobs by final status.", ("status",))
        self.job_latency = r.histogram("bitdance_job_latency_seconds", "Job submission to completion.")
        self.queue_wait = r.histogram("bitdance_job_queue_wait_seconds", "Job submission to start.")
        self.batch_latency = r.histogram("bitdance_batch_seconds", "Duration of one pipeline call.")
        self.batch_images = r.histogram("bitdance_batch_images", "Images per pipeline call.", SIZE_BUCKETS)
        self.images = r.counter("bitdance_images_generated_total", "Images generated and returned.")
        self.filter_blocks = r.counter(
            "bitdance_filter_blocks_total", "Prompts refused by the content filter.", ("category",)
        )
        self.rejected = r.counter("bitdance_rejected_total", "Requests refused before queueing.", ("reason",))

    def render(self) -> str:
        return self.registry.render()
