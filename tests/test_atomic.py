"""core.atomic: files and folders are replaced whole; a writer killed (SIGKILL) at any point leaves the
complete old or the complete new folder (or the old one as a backup the next call restores)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bitdance.core.atomic import (
    atomic_folder,
    atomic_write_bytes,
    backup_path,
    default_dir_mode,
    default_file_mode,
    recover_folder,
    replace_folder,
    temp_folder,
)

ROOT = Path(__file__).resolve().parents[1]
FILES = ("a.bin", "b.bin", "sub/c.bin", "sub/deeper/d.bin")

# The writer: replaces `out` with generation 1, 2, ... forever (each file holds its generation number,
# 64 KiB each so a write takes a while). KILL_AT=n kills the process itself at its n-th filesystem
# step (rename / fsync / rmtree / write) of the first replacement instead.
WRITER = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    import bitdance.core.atomic as atomic

    out, files, kill_at = Path(sys.argv[1]), sys.argv[2].split(","), int(os.environ.get("KILL_AT", "0"))
    steps = 0

    def step():
        global steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(fn):
        def inner(*a, **k):
            step()
            r = fn(*a, **k)
            step()
            return r
        return inner

    if kill_at:
        os.rename, os.fsync, shutil.rmtree = wrap(os.rename), wrap(os.fsync), wrap(shutil.rmtree)
    gen = 0
    while True:
        gen += 1
        with atomic.atomic_folder(out) as tmp:
            for f in files:
                (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                with open(tmp / f, "wb") as fh:
                    for _ in range(4):
                        step()
                        fh.write(f"{gen}\\n".encode().ljust(16384, b"."))
        print(f"wrote {gen}", flush=True)
        if kill_at:
            print(f"steps {steps}", flush=True)
            break
    """
)


def _write_gen(folder: Path, gen: int) -> None:
    for f in FILES:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_bytes(f"{gen}\n".encode().ljust(16384, b".") * 4)


def _generation(folder: Path) -> int:
    """The one generation every file of `folder` holds; fails on a missing file, a partial one or a mix."""
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert found == sorted(FILES), f"{folder} holds {found}"
    gens = set()
    for f in FILES:
        data = (folder / f).read_bytes()
        gen = int(data.split(b"\n", 1)[0])
        assert data == f"{gen}\n".encode().ljust(16384, b".") * 4, f"{f} is partial"
        gens.add(gen)
    assert len(gens) == 1, f"mix of generations {gens}"
    return gens.pop()


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != name)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


# ----------------------------------------------------------------------------- files


def test_atomic_write_bytes_replaces_whole_file_with_default_mode(tmp_path):
    p = tmp_path / "x" / "f.json"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and (p.stat().st_mode & 0o777) == default_file_mode()
    assert os.listdir(p.parent) == ["f.json"]


def test_failed_file_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    from bitdance.core.atomic import atomic_write_with

    p = tmp_path / "f.bin"
    p.write_bytes(b"old")

    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_with(p, boom)
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


# ----------------------------------------------------------------------------- folders


def test_folder_replaced_whole_and_error_keeps_old(tmp_path):
    out = tmp_path / "out"
    with atomic_folder(out) as tmp:
        _write_gen(tmp, 1)
    assert _generation(out) == 1
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as tmp:
            _write_gen(tmp, 2)
            raise RuntimeError("writer failed")
    assert _generation(out) == 1 and _leftovers(tmp_path, "out") == []
    with atomic_folder(out) as tmp:
        _write_gen(tmp, 3)
    assert _generation(out) == 3 and _leftovers(tmp_path, "out") == []


def test_replaced_folder_has_the_default_folder_mode(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        with atomic_folder(out) as tmp:
            _write_gen(tmp, 1)
        assert (out.stat().st_mode & 0o777) == 0o755 == default_dir_mode()  # not mkdtemp's private 0o700
        os.umask(0o027)
        with atomic_folder(out) as tmp:
            _write_gen(tmp, 2)
        assert (out.stat().st_mode & 0o777) == 0o750  # the umask decides, as for os.mkdir
    finally:
        os.umask(old)


def test_keep_others_carries_files_the_writer_does_not_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "a.bin").write_text("stale")
    with atomic_folder(out, keep_others=True) as tmp:
        (tmp / "a.bin").write_text("new")
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.bin").read_text() == "new"


def test_recover_restores_backup_only_when_final_is_missing(tmp_path):
    out, backup = tmp_path / "out", backup_path(tmp_path / "out")
    _write_gen(backup, 1)
    recover_folder(out)  # killed between rename(final -> backup) and rename(tmp -> final)
    assert _generation(out) == 1 and not backup.exists()
    _write_gen(backup, 0)
    recover_folder(out)  # killed after the new folder was in place: the backup is garbage
    assert _generation(out) == 1 and not backup.exists()


def test_temp_folders_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".out.{int(dead.stdout)}.abcd1234.tmp"
    stale.mkdir()
    mine = temp_folder(out)
    recover_folder(out)
    assert not stale.exists() and mine.is_dir()


def test_replace_folder_refuses_a_temp_folder_elsewhere(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="sibling"):
        replace_folder(tmp_path / "a", tmp_path / "b" / "out")


# ----------------------------------------------------------------------------- SIGKILL


def _check_after_kill(tmp_path: Path, out: Path, allowed: set[int]) -> int:
    """Right after the kill: the final folder or its backup holds one complete generation; after the
    next call's recovery the final folder does, and nothing else is left."""
    backup = backup_path(out)
    visible = out if out.exists() else backup
    assert visible.exists(), "neither the final folder nor its backup exists"
    before = _generation(visible)
    recover_folder(out)
    gen = _generation(out)
    assert gen in allowed and (gen == before or visible == backup)
    assert _leftovers(tmp_path, "out") == [], "recovery left temp or backup folders"
    return gen


def test_sigkill_at_every_step_of_a_replacement(tmp_path):
    """Deterministic: one run per filesystem step of replacing generation 0 by generation 1."""
    out = tmp_path / "out"
    _write_gen(out, 0)
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(out), ",".join(FILES)],
        env=_env(KILL_AT="-1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    n_steps = int(done.stdout.split("steps ")[1])
    assert _generation(out) == 1 and n_steps > 20
    seen = set()
    for kill_at in range(1, n_steps + 1):
        shutil.rmtree(out)
        _write_gen(out, 0)
        run = subprocess.run(
            [sys.executable, "-c", WRITER, str(out), ",".join(FILES)],
            env=_env(KILL_AT=str(kill_at)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == -signal.SIGKILL, (kill_at, run.returncode, run.stderr)
        seen.add(_check_after_kill(tmp_path, out, {0, 1}))
    assert seen == {0, 1}  # some kills came before the swap, some after


def test_sigkill_at_random_times_while_rewriting(tmp_path):
    """Random: a writer that keeps replacing the folder is killed at seeded random moments."""
    rng = random.Random(24)
    out = tmp_path / "out"
    _write_gen(out, 0)
    deadline = time.monotonic() + 30
    runs, gens = 0, []
    while runs < 15 and time.monotonic() < deadline:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(out), ",".join(FILES)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # one full generation written, the loop is running
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        gens.append(_check_after_kill(tmp_path, out, set(range(0, 10**6))))
        runs += 1
    assert runs >= 5 and all(g >= 1 for g in gens)


def test_sigkill_while_saving_a_pipeline(tmp_path):
    """The real writer: BitDancePipeline.save_pretrained (nested component folders) killed at random
    moments; the folder left loads, and its tokenizer and generator come from the same save."""
    script = textwrap.dedent(
        """
        import sys, torch
        from bitdance.pipeline import BitDancePipeline
        pipe = BitDancePipeline.from_preset("tiny")
        gen = 0
        while True:
            gen += 1
            with torch.no_grad():
                for m in (pipe.tokenizer, pipe.generator):
                    for p in m.parameters():
                        p.fill_(gen)
            pipe.save_pretrained(sys.argv[1])
            print(gen, flush=True)
        """
    )
    from safetensors.torch import load_file

    from bitdance.pipeline import BitDancePipeline

    rng = random.Random(18)
    out = tmp_path / "out"
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(out)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read().decode()[-2000:]
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        recover_folder(out)
        BitDancePipeline.from_pretrained(out)  # loads: nothing missing or truncated
        values = set()
        for part in ("tokenizer", "generator"):
            for name, t in load_file(str(out / part / "model.safetensors")).items():
                if t.is_floating_point() and t.numel() and "weight" in name:
                    values.update(t.unique().tolist())
        assert len(values) == 1, f"tokenizer and generator from different saves: {sorted(values)[:5]}"
        assert _leftovers(tmp_path, "out") == []
