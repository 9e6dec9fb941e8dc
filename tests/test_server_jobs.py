"""Async jobs, event streams, batching, the bounded queue, cancellation, timeouts and shutdown."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from test_server_support import GatedPipe, one_thread, tiny_pipe, wait_until  # noqa: E402, F401

from bitdance.server import ServerConfig, create_app  # noqa: E402
from bitdance.server.jobs import ResultStore  # noqa: E402
from bitdance.server.requests import TemplateCatalog, build_spec  # noqa: E402
from bitdance.server.scheduler import QueueFull, Scheduler, ShuttingDown  # noqa: E402
from bitdance.server.schemas import ImageRequest  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"steps": 2}


def spec(pipe, config=None, **fields):
    req = ImageRequest.model_validate({"seed": 0, **FAST, **fields})
    return build_spec(req, pipe, config or ServerConfig(), TemplateCatalog(), None, pipe.name)


def sse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(ln.split(": ", 1) for ln in block.splitlines() if ln and not ln.startswith(":"))
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_job_lifecycle_and_events():
    with TestClient(create_app(tiny_pipe(), ServerConfig())) as c:
        r = c.post(
            "/v1/jobs", json={"prompt": "a red sneaker", "n": 2, "seed": 5, "response_format": "url", **FAST}
        )
        assert r.status_code == 202
        job = r.json()
        assert job["object"] == "job" and job["status"] in ("queued", "running", "succeeded")
        with c.stream("GET", f"/v1/jobs/{job['id']}/events") as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            events = sse_events(s.read().decode())
        kinds = [e for e, _ in events]
        assert kinds[0] == "status" and kinds[-1] == "done"
        done = events[-1][1]
        assert done["status"] == "succeeded" and [d["seed"] for d in done["result"]["data"]] == [5, 6]
        if "progress" in kinds:  # the job may have finished before the stream opened
            prog = [d for e, d in events if e == "progress"]
            assert prog[-1]["step"] == prog[-1]["total"] == 4
        info = c.get(f"/v1/jobs/{job['id']}").json()
        assert info["progress"]["step"] == info["progress"]["total"] == 4
        assert info["result"]["data"][0]["url"].startswith("http://testserver/v1/files/")
        assert c.get(info["result"]["data"][1]["url"]).status_code == 200
        assert c.delete(f"/v1/jobs/{job['id']}").status_code == 409  # already finished
        assert c.get("/v1/jobs/job_unknown").status_code == 404
        assert c.delete("/v1/jobs/job_unknown").json()["error"]["param"] == "job_id"


def test_events_carry_previews_while_running():
    gated = GatedPipe(tiny_pipe())
    with TestClient(create_app(gated, ServerConfig())) as c:
        job = c.post("/v1/jobs", json={"prompt": "a cat", **FAST}).json()
        wait_until(gated.reached.is_set, what="first AR step")
        with c.stream("GET", f"/v1/jobs/{job['id']}/events") as s:
            gated.gate.set()
            events = sse_events(s.read().decode())
    progress = [d for e, d in events if e == "progress"]
    assert [p["step"] for p in progress] == [1, 2, 3, 4]
    assert all(p["preview"][0].startswith("data:image/png;base64,") for p in progress)
    assert progress[0]["eta_s"] is not None and progress[-1]["eta_s"] == 0
    assert events[-1][0] == "done" and events[-1][1]["status"] == "succeeded"


def test_compatible_jobs_share_one_pipeline_call_with_identical_images():
    pipe = tiny_pipe()
    calls = []

    class Counting(GatedPipe):
        def __call__(self, **kw):
            calls.append(len(kw["seed"]))
            return self.pipe(**kw)

    sched = Scheduler(Counting(pipe), ServerConfig(max_batch_images=8), autostart=False)
    jobs = [
        sched.submit(spec(pipe, prompt=p, seed=s, response_format="b64_json"))
        for p, s in (("a red sneaker", 1), ("a blue coat", 2), ("a green bag", 3))
    ]
    odd = sched.submit(spec(pipe, prompt="a hat", steps=3))  # different settings: its own call
    sched.start()
    for j in (*jobs, odd):
        assert j.done.wait(30)
    assert calls == [3, 1]
    assert [j.batch_size for j in jobs] == [3, 3, 3] and odd.batch_size == 1
    solo = Scheduler(pipe, ServerConfig())
    alone = solo.submit(spec(pipe, prompt="a blue coat", seed=2))
    assert alone.done.wait(30)
    batched = jobs[1].result["data"][0]
    assert batched["b64_json"] == alone.result["data"][0]["b64_json"]  # byte-identical PNG
    sched.shutdown(1)
    solo.shutdown(1)


def test_queue_full_is_429_with_retry_after_and_cancel_frees_the_slot():
    gated = GatedPipe(tiny_pipe())
    with TestClient(create_app(gated, ServerConfig(max_queue=2))) as c:
        running = c.post("/v1/jobs", json={"prompt": "a cat", **FAST}).json()
        wait_until(gated.reached.is_set, what="first job running")
        queued = [c.post("/v1/jobs", json={"prompt": f"a cat {i}", "steps": 3}).json() for i in range(2)]
        assert [q["status"] for q in queued] == ["queued", "queued"]
        assert c.get(f"/v1/jobs/{queued[1]['id']}").json()["queue_position"] == 1
        full = c.post("/v1/jobs", json={"prompt": "one too many", **FAST})
        assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
        assert int(full.headers["retry-after"]) >= 1
        assert full.headers["x-queue-depth"] == full.headers["x-queue-limit"] == "2"
        sync = c.post("/v1/images/generations", json={"prompt": "sync too", **FAST})
        assert sync.status_code == 429
        cancelled = c.delete(f"/v1/jobs/{queued[0]['id']}").json()
        assert cancelled["status"] == "cancelled" and cancelled["error"]["code"] == "cancelled"
        assert c.post("/v1/jobs", json={"prompt": "fits again", **FAST}).status_code == 202
        gated.gate.set()
        wait_until(lambda: c.get(f"/v1/jobs/{running['id']}").json()["status"] == "succeeded", 30)
        assert c.get(f"/v1/jobs/{queued[0]['id']}").json()["status"] == "cancelled"
        metrics = c.get("/metrics").text
        assert 'bitdance_rejected_total{reason="queue_full"} 2' in metrics


def test_cancel_mid_generation_aborts_at_the_next_step():
    gated = GatedPipe(tiny_pipe())
    sched = Scheduler(gated, ServerConfig())
    job = sched.submit(spec(tiny_pipe(), prompt="a cat"))
    wait_until(gated.reached.is_set, what="first AR step")
    assert sched.running == 1
    sched.cancel(job.id)
    assert job.status == "cancelled" and job.done.is_set()  # the client sees it at once
    gated.gate.set()
    wait_until(lambda: sched.running == 0, what="batch abort")
    assert job.result is None and job.progress["step"] == 0  # no step after the cancel was published
    nxt = sched.submit(spec(tiny_pipe(), prompt="a dog"))  # the worker is free again
    assert nxt.done.wait(30) and nxt.status == "succeeded"
    sched.shutdown(1)


def test_partial_cancel_keeps_the_rest_of_the_batch():
    gated = GatedPipe(tiny_pipe())
    sched = Scheduler(gated, ServerConfig(), autostart=False)
    a, b = sched.submit(spec(tiny_pipe(), prompt="a")), sched.submit(spec(tiny_pipe(), prompt="b"))
    sched.start()
    wait_until(gated.reached.is_set, what="batch running")
    sched.cancel(a.id)
    gated.gate.set()
    assert b.done.wait(30)
    assert a.status == "cancelled" and b.status == "succeeded" and b.batch_size == 2
    sched.shutdown(1)


def test_timeout_fails_the_job_and_sync_gets_504():
    gated = GatedPipe(tiny_pipe(), hold=5)
    with TestClient(create_app(gated, ServerConfig(job_timeout_s=0.5))) as c:
        t0 = time.monotonic()
        r = c.post("/v1/images/generations", json={"prompt": "slow", **FAST})
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
        assert "0.5 s" in r.json()["error"]["message"] and time.monotonic() - t0 < 2.5  # not the 5 s hold
        job = c.post("/v1/jobs", json={"prompt": "queued behind", "steps": 3}).json()
        time.sleep(0.6)
        late = c.get(f"/v1/jobs/{job['id']}").json()  # still queued behind the stuck batch: expired
        assert late["status"] == "failed" and late["error"]["code"] == "timeout"
        gated.gate.set()


def test_shutdown_finishes_or_cancels_cleanly_and_leaves_no_files():
    gated = GatedPipe(tiny_pipe(), hold=1.0)
    sched = Scheduler(gated, ServerConfig(storage="disk"))
    folder = sched.store.folder
    running = sched.submit(spec(tiny_pipe(), prompt="a", response_format="url"))
    wait_until(gated.reached.is_set, what="running")
    queued = sched.submit(spec(tiny_pipe(), prompt="b", steps=3))
    sched.stop_accepting()
    with pytest.raises(ShuttingDown):
        sched.submit(spec(tiny_pipe(), prompt="c"))
    sched.shutdown(grace=0.2)  # the gate stays shut: the running job is cancelled at its next step
    assert queued.status == "cancelled" and queued.error["code"] == "shutdown"
    assert running.status == "cancelled" and running.error["code"] == "shutdown"
    assert not sched._thread.is_alive() and not folder.exists()


def test_shutdown_grace_lets_the_running_job_finish():
    gated = GatedPipe(tiny_pipe(), hold=0.3)
    sched = Scheduler(gated, ServerConfig())
    job = sched.submit(spec(tiny_pipe(), prompt="a"))
    wait_until(gated.reached.is_set, what="running")
    sched.shutdown(grace=30)
    assert job.status == "succeeded"


def test_disk_store_is_atomic_and_expires(tmp_path):
    store = ResultStore("disk", ttl=0.2, max_bytes=10_000)
    token = store.put(b"\x89PNG fake")
    assert store.get(token) == b"\x89PNG fake"
    assert [p.name for p in store.folder.iterdir()] == [f"{token}.png"]  # no temp file left behind
    assert store.get("../../etc/passwd") is None and store.get("x" * 20) is None
    big = [store.put(b"x" * 4000) for _ in range(3)]  # over the byte cap: the oldest go first
    assert store.get(token) is None and store.get(big[-1]) is not None
    wait_until(lambda: store.get(big[-1]) is None, 5, "expiry")
    store.sweep()
    assert len(store) == 0 and not any(store.folder.iterdir())
    store.close()
    assert not store.folder.exists()


def test_queue_full_raises_in_the_scheduler():
    sched = Scheduler(tiny_pipe(), ServerConfig(max_queue=1))
    sched.submit(spec(tiny_pipe(), prompt="a"))  # worker started; may already run it
    with pytest.raises(QueueFull) as e:
        for _ in range(5):
            sched.submit(spec(tiny_pipe(), prompt="b", steps=3))
    assert e.value.limit == 1 and e.value.retry_after >= 1
    sched.shutdown(5)


def test_lifespan_shutdown_via_testclient_exit():
    gated = GatedPipe(tiny_pipe(), hold=1.0)
    app = create_app(gated, ServerConfig(shutdown_grace_s=0.2))
    with TestClient(app) as c:
        job = c.post("/v1/jobs", json={"prompt": "a", **FAST}).json()
        wait_until(gated.reached.is_set, what="running")
        sched = app.state.bd.scheduler
    assert sched.get(job["id"]).status == "cancelled" and not sched._thread.is_alive()


def test_a_failing_pipeline_gives_json_500_and_the_worker_survives():
    class Flaky(GatedPipe):
        fail = True

        def __call__(self, **kw):
            if self.fail:
                self.fail = False
                raise RuntimeError("boom")
            return self.pipe(**kw)

    with TestClient(create_app(Flaky(tiny_pipe()), ServerConfig())) as c:
        r = c.post("/v1/images/generations", json={"prompt": "a cat", **FAST})
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert "boom" not in r.text  # internals stay in the log
        assert c.post("/v1/images/generations", json={"prompt": "a cat", **FAST}).status_code == 200
