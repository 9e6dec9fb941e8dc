"""The server over real sockets (uvicorn thread, or `bitdance serve` subprocess): disconnects, CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from test_server_support import GatedPipe, live_server, one_thread, tiny_pipe, wait_until  # noqa: E402, F401

from bitdance.cli import main as cli_main  # noqa: E402
from bitdance.server import ServerConfig, create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sync_client_disconnect_cancels_its_job():
    gated = GatedPipe(tiny_pipe())
    app = create_app(gated, ServerConfig())
    metrics = app.state.bd.metrics
    with live_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"prompt": "a cat", "steps": 2}).encode()
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        wait_until(gated.reached.is_set, what="generation started")
        sock.close()  # the client goes away mid-generation
        wait_until(lambda: metrics.jobs.value(status="cancelled") == 1, 10, "job cancelled")
        assert app.state.bd.scheduler.queue_depth == 0
        gated.gate.set()
        wait_until(lambda: app.state.bd.scheduler.running == 0, 10, "slot freed")
        r = httpx.post(url + "/v1/images/generations", json={"prompt": "next", "steps": 2}, timeout=30)
        assert r.status_code == 200


def test_event_stream_disconnect_cancels_when_asked():
    gated = GatedPipe(tiny_pipe())
    app = create_app(gated, ServerConfig())
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        kept = c.post("/v1/jobs", json={"prompt": "kept", "steps": 2}).json()
        wait_until(gated.reached.is_set, what="first job running")
        dropped = c.post("/v1/jobs", json={"prompt": "dropped", "steps": 3}).json()
        with c.stream("GET", f"/v1/jobs/{dropped['id']}/events?cancel_on_disconnect=true") as s:
            first = next(s.iter_lines())
            assert first.startswith("event: status")
        with c.stream("GET", f"/v1/jobs/{kept['id']}/events") as s:  # a plain stream does not cancel
            next(s.iter_lines())
        wait_until(lambda: c.get(f"/v1/jobs/{dropped['id']}").json()["status"] == "cancelled", 10, "cancel")
        gated.gate.set()
        wait_until(lambda: c.get(f"/v1/jobs/{kept['id']}").json()["status"] == "succeeded", 30, "kept job")


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["serve", "--port", "0"], "--port"),
        (["serve", "--max-queue", "0"], "max_queue"),
        (["serve", "--api-keys-file", "/nonexistent/keys.txt"], "not found"),
        (["serve", "--api-key", "short"], "api keys"),
        (["serve", "--cors-origin", "example.com"], "cors"),
        (["serve", "--threads", "0"], "--threads"),
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(argv, needle, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err


def test_cli_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--api-key",
        "--max-queue",
        "--storage",
        "--cors-origin",
        "--filter-mode",
        "--shutdown-grace",
    ):
        assert flag in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_subprocess_json_logs_and_graceful_sigterm(tmp_path):
    port = free_port()
    log_path = tmp_path / "server.log"
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
        "--shutdown-grace",
        "10",
        "--storage",
        "disk",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)},
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), 120, "server start")
        job = httpx.post(url + "/v1/jobs", json={"prompt": "a cat", "steps": 20, "n": 4}, timeout=30).json()
        assert len(list(tmp_path.glob("bitdance-server-*"))) == 1  # the server-owned result folder
        proc.send_signal(signal.SIGTERM)  # graceful: the running job may finish within the grace period
        assert proc.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean stop
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    events = [x.get("event") for x in lines]
    assert "startup" in events and "shutdown" in events and "stopped" in events
    assert "Application shutdown complete." in [x.get("msg") for x in lines]
    assert not any("color_message" in x for x in lines)
    assert any(x.get("event") == "request" and x.get("route") == "/v1/jobs" for x in lines)
    assert job["status"] in ("queued", "running")
    assert not list(tmp_path.glob("bitdance-server-*"))  # removed at shutdown


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
