"""The training loop shared by the tokenizer and generator trainers.

A trainer implements `start(step)`, `train_step(step) -> metrics`, `state_dict()`, `load_state_dict()`,
`evaluate(step)`, `save_samples(step, folder)` and `export(folder)`; `fit` adds resume, progress, the JSONL
log, periodic checkpoints/exports/plots, and the stop on a non-finite loss.

Layout of ``--out``::

    checkpoints/state-000500.pt   resumable training state (keep-last-N), loaded with weights_only=True
    export/                       inference weights (EMA), refreshed at every checkpoint
    metrics.jsonl                 one JSON object per logged step / evaluation
    loss.png, samples/*.png       loss curves; reconstruction or sample grids
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointManager
from .dist import DistContext
from .progress import MetricsLog, ProgressBar, plot_metrics


class NonFiniteLoss(RuntimeError):
    """Raised by a trainer when a loss is NaN/inf (before the optimizer step, so weights stay good)."""


class TrainingStopped(RuntimeError):
    """The run stopped on a non-finite loss; the message names the last good checkpoint."""


class Trainer:
    """Interface (see module docstring)."""

    global_batch: int = 1

    def start(self, step: int) -> None:  # build data iterators positioned at `step`
        pass

    def train_step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def evaluate(self, step: int) -> dict[str, float]:
        return {}

    def converged(self) -> str | None:
        """Why training should stop early (a validation plateau), or None to go on; asked after every
        evaluation and on resume."""
        return None

    def save_samples(self, step: int, folder: Path) -> Path | None:
        return None

    def export(self, folder: Path) -> Path | None:
        return None

    def epoch(self, step: int) -> float:
        return float("nan")


@dataclass
class LoopConfig:
    steps: int
    out: Path
    log_every: int = 10
    ckpt_every: int = 500
    eval_every: int = 0  # 0: evaluate at every checkpoint
    sample_every: int = 0  # 0: at every checkpoint
    keep_last: int = 3
    resume: bool = False
    progress: bool = True
    export: bool = True
    stop_at: int | None = None  # stop after this step (checkpoint + export) without changing the schedule
    # Stop once this many seconds of training-loop time have been spent over all (resumed) runs; the time
    # spent so far travels in the checkpoint as `loop_elapsed_s`. None: no budget.
    time_budget_s: float | None = None

    @property
    def end(self) -> int:
        return self.steps if self.stop_at is None else min(self.steps, self.stop_at)

    def check(self) -> None:
        for name in ("steps", "log_every", "ckpt_every", "keep_last"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
        for name in ("eval_every", "sample_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 0, got {v!r}")
        if self.stop_at is not None and (
            isinstance(self.stop_at, bool) or not isinstance(self.stop_at, int) or self.stop_at < 1
        ):
            raise ValueError(f"--stop-at must be a positive integer, got {self.stop_at!r}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"the time budget must be positive, got {self.time_budget_s!r} s")


def _due(done: int, every: int, fallback: int, last: int) -> bool:
    period = every or fallback
    return done % period == 0 or done == last


def fit(trainer: Trainer, lc: LoopConfig, ctx: DistContext) -> dict[str, Any]:
    """Run (or resume) training to `lc.steps` (or `lc.stop_at`, an early stop that keeps the LR schedule of
    `lc.steps`); returns a summary dict (final step, last metrics, paths)."""
    lc.check()
    out = Path(lc.out)
    ckpts = CheckpointManager(out / "checkpoints", lc.keep_last)
    start, spent = 0, 0.0
    bar = ProgressBar(
        lc.steps, 0, trainer.global_batch, enabled=ctx.is_main and lc.progress, messages=ctx.is_main
    )
    if lc.resume:
        found = ckpts.latest()
        if found is not None:
            state, path = found
            trainer.load_state_dict(state)
            start = int(state["step"])
            spent = float(state.get("loop_elapsed_s", 0.0))
            bar.message(f"resumed from {path} (step {start})")
        else:
            bar.message(f"no checkpoint in {out / 'checkpoints'}; starting from scratch")
    elif ckpts.list():
        raise ValueError(
            f"{out} already holds checkpoints; pass --resume to continue that run or choose a new --out"
        )
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out / "metrics.jsonl", enabled=ctx.is_main)
    if lc.resume:
        log.truncate_after(start)
    bar.start, bar.t0 = start, time.perf_counter()
    last_good = ckpts.latest_path()
    trainer.start(start)
    metrics: dict[str, float] = {}
    exported = None
    t_last, n_last = time.perf_counter(), start
    end = lc.end
    budget = lc.time_budget_s
    if budget is not None and ctx.world_size > 1:
        raise ValueError("a training time budget runs in a single process (ranks would disagree on the end)")
    if budget is not None and spent >= budget:
        bar.message(f"time budget already spent ({spent:.0f} s >= {budget:.0f} s); nothing to train")
        end = start
    if start < end and (why := trainer.converged()):
        bar.message(f"converged before step {start}: {why}; nothing to train")
        end = start
    t_segment = time.perf_counter()
    for step in range(start, end):
        try:
            metrics = trainer.train_step(step)
        except NonFiniteLoss as e:
            where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
            raise TrainingStopped(
                f"{e}; training stopped without saving ({where}). Lower --lr or raise --warmup, then rerun "
                "with --resume to continue from that checkpoint"
            ) from None
        done = step + 1
        elapsed = spent + time.perf_counter() - t_segment
        if budget is not None and elapsed >= budget:
            end = done  # the budget ends the run here: evaluate, sample, checkpoint and export as at the end
        bar.update(done, metrics)
        if done % lc.log_every == 0 or done == end or done == start + 1:
            now = time.perf_counter()
            rate = trainer.global_batch * (done - n_last) / max(1e-9, now - t_last)
            t_last, n_last = now, done
            log.write(done, {**metrics, "samples_per_s": rate, "epoch": trainer.epoch(done)})
        if _due(done, lc.eval_every, lc.ckpt_every, end):
            ev = trainer.evaluate(done)
            if ev and ctx.is_main:
                log.write(done, ev, kind="eval")
                bar.message(f"eval step {done}: " + " ".join(f"{k} {v:.4g}" for k, v in ev.items()))
            if done < end and (why := trainer.converged()):
                bar.message(f"converged at step {done}: {why}")
                end = done  # a plateau ends the run here: sample, checkpoint and export as at the end
        if _due(done, lc.sample_every, lc.ckpt_every, end):
            path = trainer.save_samples(done, out / "samples")
            if path is not None and ctx.is_main:
                bar.message(f"samples: {path}")
        if done % lc.ckpt_every == 0 or done == end:
            state = {**trainer.state_dict(), "loop_elapsed_s": elapsed}  # collective under FSDP
            if ctx.is_main:
                last_good = ckpts.save(state, done)
            if lc.export:
                exported = trainer.export(out / "export") or exported  # every rank (gathers under FSDP)
            if ctx.is_main:
                plot_metrics(out / "metrics.jsonl", out / "loss.png")
            ctx.barrier()
        if done == end:
            break
    if start >= end and lc.export:
        exported = trainer.export(out / "export") or exported
    return {
        "step": max(start, end),
        "loop_elapsed_s": spent + (time.perf_counter() - t_segment if end > start else 0.0),
        "metrics": metrics,
        "checkpoint": str(last_good) if last_good else None,
        "export": str(exported) if exported else None,
        "finite": all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)),
    }
