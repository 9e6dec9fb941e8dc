"""Atomic, resumable training state files: temp + rename, keep-last-N, corrupt files skipped."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bitdance.training.checkpoints import CheckpointManager, load_state
from bitdance.training.optim import EMA, OptimConfig, lr_at


def _state(v: float) -> dict:
    return {
        "model": {"w": torch.full((3,), v)},
        "rng": {"torch": torch.get_rng_state()},
        "meta": [1, "a", 2.5],
    }


def test_save_load_keep_last(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        m.save(_state(step), step)
    assert [s for s, _ in m.list()] == [2, 3]
    state, path = m.latest()
    assert path.name == "state-000003.pt" and state["step"] == 3
    assert torch.equal(state["model"]["w"], torch.full((3,), 3.0))
    assert state["meta"] == [1, "a", 2.5]


def test_partial_temp_and_truncated_files_are_ignored(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=3)
    m.save(_state(1), 1)
    (tmp_path / ".state-000002.pt.abc123.tmp").write_bytes(b"partial")  # a save killed mid-write
    good = (tmp_path / "state-000001.pt").read_bytes()
    (tmp_path / "state-000003.pt").write_bytes(good[: len(good) // 2])  # e.g. disk full, not via our writer
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        state, path = m.latest()
    assert state["step"] == 1 and path.name == "state-000001.pt"
    m.save(_state(4), 4)
    assert not list(tmp_path.glob(".state-*.tmp"))  # cleaned by the next save
    with pytest.raises(ValueError, match="corrupt"):
        load_state(tmp_path / "state-000003.pt")


class _Evil:
    pass


def test_weights_only_load_rejects_arbitrary_objects(tmp_path):
    torch.save({"step": 1, "x": _Evil()}, tmp_path / "state-000001.pt")
    with pytest.raises(ValueError, match="corrupt"):
        load_state(tmp_path / "state-000001.pt")


_SAVER = """
import sys, torch
from bitdance.training.checkpoints import CheckpointManager
m = CheckpointManager(sys.argv[1], keep_last=5)
m.save({"w": torch.zeros(2)}, 1)
print("ready", flush=True)
m.save({"w": torch.randn(60_000_000)}, 2)  # ~240 MB: slow enough to be killed mid-write
"""


def test_kill_during_save_never_leaves_a_bad_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 30
    while time.time() < deadline and not list(tmp_path.glob(".state-000002*.tmp")) and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = CheckpointManager(tmp_path)
    state, path = m.latest()  # whatever the kill interrupted, what is listed loads
    assert state["step"] in (1, 2)
    for _, p in m.list():
        load_state(p)


def test_lr_schedule_and_optim_config_validation():
    assert lr_at(0, 1.0, 100, 10) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 100, 10) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 100, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 1.0, 100, 10, 0.0) == pytest.approx(0.5)
    oc = OptimConfig(steps=10, batch_size=8, lr=1e-3, grad_accum=2)
    assert oc.micro_batch(2) == 2
    with pytest.raises(ValueError, match="divisible"):
        oc.micro_batch(3)
    for bad in ({"lr": 0.0}, {"lr": float("nan")}, {"steps": 0}, {"batch_size": -1}, {"ema_decay": 1.0}):
        kw = {"steps": 10, "batch_size": 8, "lr": 1e-3, **bad}
        with pytest.raises(ValueError):
            OptimConfig(**kw)


def test_ema_tracks_and_round_trips():
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, decay=0.5)
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin)  # warm-up decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.shadow["weight"], lin.weight - 0.1)
    other = EMA(torch.nn.Linear(2, 2), 0.5)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.shadow["weight"], ema.shadow["weight"]) and other.num_updates == 1
