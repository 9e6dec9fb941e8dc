"""One model, one worker thread, a bounded FIFO queue; compatible jobs share a pipeline call.

    sched = Scheduler(pipe, config, metrics, store); sched.start()
    job = sched.submit(spec, previews=True)      # QueueFull -> the app answers 429 + Retry-After
    sched.cancel(job.id)                         # queued: dropped now; running: aborts at the next AR step

The worker takes the oldest queued job and every later queued job with the same `batch_key`, up to
`max_batch_images`, and runs them as one pipeline call (per-image seeds make each image identical to a
solo run). The pipeline callback, called between AR steps, publishes progress and previews and raises
`_Abort` when no job of the batch is still wanted (cancelled, timed out, or the server is stopping),
so a cancelled or disconnected request frees its slot at once and its compute within one AR step.
"""

from __future__ import annotations

import atexit
import base64
import collections
import io
import logging
import math
import threading
import time
import weakref
from typing import Any

from .config import ServerConfig
from .jobs import Job, ResultStore
from .metrics import ServerMetrics
from .requests import GenerationSpec

log = logging.getLogger("bitdance.server")


_LIVE: weakref.WeakSet[Scheduler] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At exit stop every worker between AR steps (a thread killed inside torch aborts the process)."""
    for sched in list(_LIVE):
        sched.shutdown(grace=0.0)


class QueueFull(Exception):
    """The queue holds `limit` jobs already; retry after `retry_after` seconds."""

    def __init__(self, depth: int, limit: int, retry_after: int) -> None:
        super().__init__(f"the queue is full ({depth}/{limit} jobs waiting); retry after {retry_after} s")
        self.depth, self.limit, self.retry_after = depth, limit, retry_after


class ShuttingDown(Exception):
    """The server is stopping and takes no new jobs."""


class _Abort(Exception):
    """Raised from the pipeline callback to stop a batch nobody waits for."""


def _data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Scheduler:
    """Runs jobs on `pipeline` in a worker thread; thread-safe submit / cancel / lookup."""

    def __init__(
        self,
        pipeline: Any,
        config: ServerConfig,
        metrics: ServerMetrics | None = None,
        store: ResultStore | None = None,
        autostart: bool = True,
    ) -> None:
        self.pipe, self.config = pipeline, config
        self.autostart = autostart  # False: jobs wait until start() (tests use it to form batches)
        self.metrics = metrics
        self.store = store or ResultStore(config.storage, config.result_ttl_s, config.max_stored_bytes)
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._accepting = True
        self._stop = False
        self._force_abort = False
        self._batch_seconds = 1.0  # moving average of a pipeline call, for Retry-After and ETAs
        _LIVE.add(self)  # stopped (and its temp folder removed) at interpreter exit

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._worker, name="bitdance-worker", daemon=True)
                self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def accepting(self) -> bool:
        return self._accepting

    def stop_accepting(self) -> None:
        """New submissions raise ShuttingDown; queued and running jobs go on."""
        with self._cond:
            self._accepting = False

    def shutdown(self, grace: float | None = None) -> None:
        """Refuse new jobs, cancel queued ones, let the running batch finish for `grace` s, then abort it."""
        grace = self.config.shutdown_grace_s if grace is None else grace
        with self._cond:
            self._accepting = False
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            self._end(job, "cancelled", _err("the server is shutting down", "cancelled", code="shutdown"))
        deadline = time.monotonic() + grace
        with self._cond:
            while self._running and time.monotonic() < deadline:
                self._cond.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            running = list(self._running)
            self._force_abort = bool(running)
            self._stop = True
            self._cond.notify_all()
        for job in running:  # cancelled now; the batch stops at its next AR step
            self._end(job, "cancelled", _err("the server shut down", "cancelled", code="shutdown"))
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, grace))
        self.store.close()

    # ------------------------------------------------------------------ API
    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> int:
        return len(self._running)

    def running_jobs(self) -> list[Job]:
        """The jobs of the batch now generating (a copy)."""
        with self._cond:
            return list(self._running)

    def retry_after(self) -> int:
        """Seconds until a queue slot is likely free (at least 1)."""
        per_batch = max(1, self.config.max_batch_images // 4)
        return max(1, min(300, math.ceil(self._batch_seconds * (len(self._queue) / per_batch + 1))))

    def submit(self, spec: GenerationSpec, previews: bool = False) -> Job:
        """Queue a job; raises QueueFull or ShuttingDown. Starts the worker if needed (autostart)."""
        job = Job(spec, previews=previews, timeout_s=self.config.job_timeout_s)
        with self._cond:
            if not self._accepting:
                raise ShuttingDown("the server is shutting down")
            if len(self._queue) >= self.config.max_queue:
                if self.metrics:
                    self.metrics.rejected.inc(reason="queue_full")
                raise QueueFull(len(self._queue), self.config.max_queue, self.retry_after())
            self._queue.append(job)
            self._jobs[job.id] = job
            self._forget_old()
            self._cond.notify_all()
        if self.autostart:
            self.start()
        return job

    def get(self, job_id: str) -> Job | None:
        """The job (expired first if past its deadline), or None if unknown or forgotten."""
        with self._cond:
            job = self._jobs.get(job_id)
        if job is not None:
            self.expire_if_late(job)
        return job

    def expire_if_late(self, job: Job) -> bool:
        """Fail `job` with a timeout error if its deadline has passed (queued: it also leaves the queue)."""
        if job.finished or time.monotonic() <= job.deadline:
            return False
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
        self._end(job, "failed", _timeout_error(self.config.job_timeout_s))
        return True

    def queue_position(self, job: Job) -> int | None:
        with self._cond:
            try:
                return self._queue.index(job)
            except ValueError:
                return None

    def eta(self, job: Job) -> float | None:
        """Rough seconds until `job` ends (queued: batches ahead x the average batch time)."""
        if job.status == "running":
            return job.progress.get("eta_s")
        pos = self.queue_position(job)
        if pos is None:
            return None
        per_batch = max(1, self.config.max_batch_images // max(1, job.spec.count))
        return round(self._batch_seconds * (pos // per_batch + 1 + bool(self._running)), 3)

    def cancel(self, job_id: str, reason: str = "cancelled by the client") -> Job | None:
        """Cancel a queued or running job (its slot is free at once); returns the job, or None if unknown."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job.cancel_requested = True
            if job in self._queue:
                self._queue.remove(job)
        self._end(job, "cancelled", _err(reason, "cancelled", code="cancelled"))
        return job

    # ------------------------------------------------------------------ internals
    def _end(
        self, job: Job, status: str, error: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> None:
        if job.finish(status, error, result) and self.metrics:
            self.metrics.jobs.inc(status=status)
            self.metrics.job_latency.observe(time.time() - job.created)

    def _forget_old(self) -> None:
        """Drop finished jobs past the result TTL, and the oldest finished ones beyond max_jobs_retained."""
        now = time.time()
        excess = len(self._jobs) - self.config.max_jobs_retained
        for jid, job in list(self._jobs.items()):
            if not job.finished:
                continue
            if excess > 0 or now - (job.finished_at or now) > self.config.result_ttl_s:
                del self._jobs[jid]
                excess -= 1

    def _take_batch(self) -> list[Job]:
        """Oldest queued job plus later compatible ones (caller holds the lock)."""
        while self._queue and time.monotonic() > self._queue[0].deadline:
            self._end(self._queue.popleft(), "failed", _timeout_error(self.config.job_timeout_s))
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch, images = [first], first.spec.count
        for job in list(self._queue):
            if (
                job.spec.batch_key == first.spec.batch_key
                and images + job.spec.count <= self.config.max_batch_images
            ):
                self._queue.remove(job)
                batch.append(job)
                images += job.spec.count
        return batch

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(timeout=1.0)
                    self._forget_old()
                    self.store.sweep()
                if self._stop:
                    return
                batch = self._take_batch()
                images = sum(j.spec.count for j in batch)
                batch = [j for j in batch if j.start(images)]
                self._running = batch
            try:
                if batch:
                    self._run(batch)
            except Exception:  # never let the worker die: fail the batch, keep serving
                log.exception("batch failed", extra={"event": "batch_error"})
                for job in batch:
                    self._end(job, "failed", _err("internal error while generating", "server_error"))
            finally:
                with self._cond:
                    self._running = []
                    self._cond.notify_all()

    def _run(self, batch: list[Job]) -> None:
        started = time.monotonic()
        spec0 = batch[0].spec
        if self.metrics:
            for job in batch:
                self.metrics.queue_wait.observe(time.time() - job.created)
            self.metrics.batch_images.observe(sum(job.spec.count for job in batch))
        want_previews = self.config.preview_every > 0 and any(j.previews for j in batch)

        def on_step(info: dict[str, Any]) -> None:
            now = time.monotonic()
            for job in batch:
                if not job.finished and now > job.deadline:
                    self._end(job, "failed", _timeout_error(self.config.job_timeout_s))
            if self._force_abort:
                for job in batch:
                    self._end(job, "cancelled", _err("the server shut down", "cancelled", code="shutdown"))
            if all(job.finished for job in batch):
                raise _Abort
            previews = info.get("preview")
            offset = 0
            for job in batch:
                preview = None
                if previews is not None and job.previews and job.has_subscribers:
                    preview = [_data_url(im) for im in previews[offset : offset + job.spec.count]]
                job.set_progress(info["step"], info["total"], info["elapsed"], info.get("eta"), preview)
                offset += job.spec.count

        kwargs: dict[str, Any] = {}
        if spec0.prompts is not None:
            kwargs["prompt"] = [p for job in batch for p in job.spec.prompts]  # type: ignore[union-attr]
            if spec0.negative_prompt is not None:
                kwargs["negative_prompt"] = [
                    job.spec.negative_prompt for job in batch for _ in range(job.spec.count)
                ]
        else:
            kwargs["class_labels"] = [lb for job in batch for lb in job.spec.labels]  # type: ignore[union-attr]
        settings: dict[str, Any] = dict(
            num_images_per_prompt=1,
            num_sampling_steps=spec0.steps,
            guidance_scale=spec0.guidance_scale,
            guidance_schedule=spec0.guidance_schedule,
            parallel_num=spec0.parallel_num,
            seed=[s for job in batch for s in job.spec.seeds],
            output_type="pil",
            callback=on_step,
            filter_mode=spec0.filter_mode or self.config.filter_mode,
            preview_every=self.config.preview_every if want_previews else None,
        )
        if spec0.solver is not None:
            settings["solver"] = spec0.solver
        try:
            if spec0.known is not None:  # an edit or variation: one job, its known tokens teacher-forced
                if "negative_prompt" in kwargs:
                    settings["negative_prompt"] = kwargs.pop("negative_prompt")
                out = self.pipe.generate_with_known(
                    kwargs.get("prompt"),
                    kwargs.get("class_labels"),
                    (spec0.height, spec0.width),
                    spec0.known,
                    spec0.edit_info,
                    settings,
                )
            else:
                out = self.pipe(**kwargs, height=spec0.height, width=spec0.width, **settings)
        except _Abort:
            return
        except ValueError as e:  # input the edge checks missed: the client's fault, not the server's
            for job in batch:
                self._end(job, "failed", _err(str(e), "invalid_request_error"))
            return
        elapsed = time.monotonic() - started
        self._batch_seconds = 0.7 * self._batch_seconds + 0.3 * elapsed
        if self.metrics:
            self.metrics.batch_latency.observe(elapsed)
        offset = 0
        for job in batch:
            n = job.spec.count
            if not job.finished:
                data = [
                    self._image_entry(job, k, out.images[offset + k], out.recipes[offset + k])
                    for k in range(n)
                ]
                if self.metrics:
                    self.metrics.images.inc(n)
                result = {
                    "created": int(time.time()),
                    "data": data,
                    "output_format": job.spec.output_format,
                    "size": f"{spec0.width}x{spec0.height}",
                    "background": "opaque",
                    "ignored_fields": list(job.spec.ignored_fields),
                }
                self._end(job, "succeeded", result=result)
            offset += n

    def _image_entry(self, job: Job, k: int, image: Any, recipe: dict[str, Any]) -> dict[str, Any]:
        from .images_io import encode_image  # noqa: PLC0415

        spec = job.spec
        meta = dict(recipe)
        group = k // spec.n
        meta.update(
            template=spec.template,
            variables=spec.variables[group] if spec.variables else None,
            batch_size=job.batch_size,
        )
        if k < len(spec.ignored) and spec.ignored[k]:
            meta["prompt_ignored_text"] = spec.ignored[k]  # past the model's text length: not used
        data = encode_image(image, recipe, spec.output_format, spec.output_compression)
        entry: dict[str, Any] = {
            "index": k,
            "seed": spec.seeds[k],
            "metadata": meta,
            "revised_prompt": spec.prompts[k] if spec.prompts is not None else None,
        }
        if spec.response_format == "url":
            entry["url"] = f"/v1/files/{self.store.put(data)}.{spec.output_format}"
        else:
            entry["b64_json"] = base64.b64encode(data).decode("ascii")
        return entry


def _err(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"message": message, "type": type_, "param": param, "code": code}


def _timeout_error(limit: float) -> dict[str, Any]:
    return _err(
        f"the job did not finish within the server's limit of {limit:g} s", "timeout_error", code="timeout"
    )
