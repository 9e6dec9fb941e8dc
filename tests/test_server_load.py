"""Load: 32 concurrent clients for 60 s against `bitdance serve --model random:tiny-text` (a subprocess).

Checks: zero 5xx; every accepted request completes, or is cancelled only when the client asked; 429 only
when the queue is full (X-Queue-Depth == X-Queue-Limit); server RSS flat after warm-up.
Run: pytest -m load tests/test_server_load.py   (BITDANCE_LOAD_SECONDS / BITDANCE_LOAD_CLIENTS override).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from test_server_live import _healthy, free_port  # noqa: E402
from test_server_support import wait_until  # noqa: E402

pytestmark = pytest.mark.load
SECONDS = float(os.environ.get("BITDANCE_LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("BITDANCE_LOAD_CLIENTS", "32"))
WARMUP = min(20.0, SECONDS / 3)
RSS_GROWTH_LIMIT_MB = 64


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Tally:
    def __init__(self) -> None:
        self.status: collections.Counter = collections.Counter()
        self.problems: list[str] = []
        self.accepted = self.completed = self.cancelled_on_request = 0

    def response(self, r: httpx.Response, what: str) -> None:
        self.status[r.status_code] += 1
        if r.status_code >= 500:
            self.problems.append(f"{what}: {r.status_code} {r.text[:200]}")
        if r.status_code == 429 and r.headers.get("x-queue-depth") != r.headers.get("x-queue-limit"):
            self.problems.append(f"{what}: 429 while the queue was not full {dict(r.headers)}")
        if r.status_code == 429 and not r.headers.get("retry-after", "").isdigit():
            self.problems.append(f"{what}: 429 without Retry-After")


def body(rng: random.Random) -> dict:
    colour = rng.choice(["red", "blue", "green", "black"])
    item = rng.choice(["sneaker", "coat", "bag", "shirt", "dress"])
    b = {
        "prompt": f"a {colour} {item}",
        "n": rng.choice([1, 1, 2]),
        "steps": rng.choice([2, 3]),
        "seed": rng.randrange(10_000),
    }
    if rng.random() < 0.3:
        b["response_format"] = "url"
    return b


async def sync_client(c: httpx.AsyncClient, rng: random.Random, t: Tally) -> None:
    r = await c.post("/v1/images/generations", json=body(rng))
    t.response(r, "sync")
    if r.status_code == 200:
        t.accepted += 1
        data = r.json()["data"]
        if len(data) not in (1, 2):
            t.problems.append(f"sync: {len(data)} images")
        t.completed += 1
        if data[0].get("url"):
            f = await c.get(data[0]["url"])
            t.response(f, "file")
    elif r.status_code == 429:
        await asyncio.sleep(min(2.0, int(r.headers["retry-after"])) * rng.random())


async def job_client(c: httpx.AsyncClient, rng: random.Random, t: Tally, stream: bool) -> None:
    r = await c.post("/v1/jobs", json=body(rng))
    t.response(r, "job create")
    if r.status_code != 202:
        if r.status_code == 429:
            await asyncio.sleep(min(2.0, int(r.headers["retry-after"])) * rng.random())
        return
    t.accepted += 1
    job_id = r.json()["id"]
    cancel = rng.random() < 0.3
    if stream and not cancel:
        async with c.stream("GET", f"/v1/jobs/{job_id}/events") as s:
            t.response(s, "events")
            async for line in s.aiter_lines():
                if line.startswith("event: done"):
                    break
    if cancel:
        await asyncio.sleep(rng.random() * 0.5)
        d = await c.delete(f"/v1/jobs/{job_id}")
        t.response(d, "cancel")
        if d.status_code not in (200, 409):
            t.problems.append(f"cancel: {d.status_code} {d.text[:200]}")
    while True:
        g = await c.get(f"/v1/jobs/{job_id}")
        t.response(g, "poll")
        info = g.json()
        if info["status"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    if info["status"] == "succeeded":
        t.completed += 1
    elif info["status"] == "cancelled" and cancel:
        t.cancelled_on_request += 1
    else:
        t.problems.append(
            f"job {job_id} ended {info['status']} (cancel requested: {cancel}): {info['error']}"
        )


async def misc_client(c: httpx.AsyncClient, rng: random.Random, t: Tally) -> None:
    choice = rng.randrange(4)
    if choice == 0:
        r = await c.post("/v1/images/generations", json={"prompt": "x", "n": 99})
        t.response(r, "bad n")
        if r.status_code != 400 or r.json()["error"]["param"] != "n":
            t.problems.append(f"bad n: {r.status_code} {r.text[:100]}")
    elif choice == 1:
        r = await c.post(
            "/v1/images/generations", content=b"{nope", headers={"content-type": "application/json"}
        )
        t.response(r, "bad json")
        if r.status_code != 400:
            t.problems.append(f"bad json: {r.status_code}")
    else:
        r = await c.get(rng.choice(["/v1/models", "/metrics", "/health"]))
        t.response(r, "read")


async def client_loop(url: str, seed: int, until: float, t: Tally) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        while time.monotonic() < until:
            x = rng.random()
            if x < 0.45:
                await sync_client(c, rng, t)
            elif x < 0.85:
                await job_client(c, rng, t, stream=x < 0.6)
            else:
                await misc_client(c, rng, t)


async def run_clients(url: str, pid: int, t: Tally) -> tuple[float, float]:
    start = time.monotonic()
    tasks = [asyncio.create_task(client_loop(url, i, start + SECONDS, t)) for i in range(CLIENTS)]
    await asyncio.sleep(WARMUP)
    rss_warm = rss_mb(pid)
    await asyncio.gather(*tasks)
    return rss_warm, rss_mb(pid)


def test_32_clients_for_60_seconds(tmp_path):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bitdance.cli",
        "serve",
        "--model",
        "random:tiny-text",
        "--port",
        str(port),
        "--threads",
        "1",
        "--max-queue",
        "8",
        "--result-ttl",
        "15",
        "--log-level",
        "warning",
    ]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), 120, "server start")
        t = Tally()
        rss_warm, rss_end = asyncio.run(run_clients(url, proc.pid, t))
        metrics = httpx.get(url + "/metrics").text
        assert httpx.get(url + "/health").json()["queue_depth"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    summary = (
        f"statuses {dict(t.status)}, accepted {t.accepted}, completed {t.completed}, "
        f"cancelled on request {t.cancelled_on_request}, RSS {rss_warm:.0f} -> {rss_end:.0f} MiB"
    )
    print(summary)
    assert not t.problems, t.problems[:10]
    assert not [s for s in t.status if s >= 500], summary
    assert t.accepted == t.completed + t.cancelled_on_request, summary
    assert t.completed > 0 and t.status[429] > 0, summary  # the queue did fill, and work got done
    assert rss_end - rss_warm < RSS_GROWTH_LIMIT_MB, summary
    assert "bitdance_images_generated_total" in metrics
