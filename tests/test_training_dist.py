"""Multi-process and crash behaviour of the real CLI: torchrun (gloo) == one process with the same global
batch; kill -9 mid-run then --resume == an uninterrupted run."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from bitdance.checkpoint import save_pretrained
from bitdance.core.configs import get_preset
from bitdance.tokenizer.autoencoder import BinaryAutoencoder
from bitdance.training.tokens import extract_tokens


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    save_pretrained(BinaryAutoencoder(get_preset("tokenizer", "tiny")), root / "tok")
    return extract_tokens(
        root / "tok",
        "shapes:length=48",
        root / "tokens",
        text_encoder="hash",
        text_len=8,
        text_dim=32,
        progress=False,
    )


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _train_argv(tokens, out, steps, extra=()):
    return [
        "train",
        "--tokens",
        str(tokens),
        "--preset",
        "tiny-text",
        "--parallel",
        "1,4,16",
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--lr",
        "2e-3",
        "--warmup",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--sample-steps",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        *extra,
    ]


def _final_model(out, step):
    return torch.load(out / "checkpoints" / f"state-{step:06d}.pt", weights_only=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torchrun workers + a reference process: ~30 s on the shared 2-core CPU
def test_torchrun_two_processes_equal_one_process(tokens, tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "bitdance.cli",
        *_train_argv(tokens, tmp_path / "two", 3, ["--ckpt-every", "3"]),
    ]
    two = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "bitdance.cli",
            *_train_argv(tokens, tmp_path / "one", 3, ["--ckpt-every", "3"]),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    assert "world 2" in two.stderr and "world 1" in one.stderr
    a, b = _final_model(tmp_path / "one", 3), _final_model(tmp_path / "two", 3)
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-5), k
    moved = sum((a["model"][k] - _initial(k)).abs().sum() for k in ("layers.0.attention.wqkv.weight",))
    assert moved > 0


def _initial(key):
    torch.manual_seed(0)
    from bitdance.generator.transformer import BitDanceTransformer

    cfg = get_preset("generator", "tiny-text")
    return BitDanceTransformer(cfg).state_dict()[key]


@pytest.mark.slow  # three CLI processes (~30 s here); exact resume is also covered in-process (fast)
def test_kill_9_then_resume_equals_uninterrupted_run(tokens, tmp_path):
    steps = 10
    from bitdance.cli import main

    threads = torch.get_num_threads()
    try:  # the uninterrupted reference runs in this process (same CLI code path, 1 thread like the child)
        assert main(_train_argv(tokens, tmp_path / "ref", steps, ["--ckpt-every", "2"])) == 0
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "bitdance.cli", *_train_argv(tokens, out, steps, ["--ckpt-every", "2"])]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoints" / "state-000004.pt").exists():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    have = sorted(p.name for p in (out / "checkpoints").glob("state-*.pt"))
    assert "state-000004.pt" in have and f"state-{steps:06d}.pt" not in have, have
    res = subprocess.run(argv + ["--resume"], env=_env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stderr
    a, b = _final_model(tmp_path / "ref", steps), _final_model(out, steps)
    for part in ("model",):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), k
    for k in a["ema"]["shadow"]:
        assert torch.equal(a["ema"]["shadow"][k], b["ema"]["shadow"][k]), k
    assert torch.equal(a["rng"]["train"], b["rng"]["train"])
    steps_logged = [
        line for line in (out / "metrics.jsonl").read_text().splitlines() if '"kind": "train"' in line
    ]
    assert len(steps_logged) == len(
        {s.split(",")[0] for s in steps_logged}
    )  # no duplicated steps after resume
