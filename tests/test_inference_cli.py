"""CLI contract: one-line errors, exit 2 for bad input, exit 1 for refused prompts, filter-check, progress."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from bitdance.cli import main as cli
from bitdance.commands._common import Progress
from bitdance.pipeline import models_dir
from bitdance.pipeline.provenance import read_recipe

GEN = ["generate", "--model", "random:tiny-text", "--steps", "1"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize(
    "args,match",
    [
        (["", "-o", "x.png"], "empty"),
        (["x" * 10_000, "-o", "x.png"], "limit is 2000"),
        (["a cat", "--size", "20x20"], "unsupported size 20x20"),
        (["a cat", "--size", "big"], "--size must look like"),
        (["a cat", "--steps", "-3"], "num_sampling_steps"),
        (["a cat", "--cfg", "nan"], "guidance_scale"),
        (["a cat", "--parallel", "3"], "parallel_num"),
        (["--template", "product", "--var", "subject=x", "--var", "colour=red"], "has no variable 'colour'"),
        (["--template", "product"], "needs variable 'subject'"),
        (["--template", "nope"], "unknown template 'nope'"),
        (["a cat", "--var", "subject=x"], "--var needs --template"),
        (["a cat", "--upscale", "3"], "invalid choice"),
        (["a cat", "--frobnicate"], "unrecognized arguments"),
        (["--prompts", "missing.jsonl"], "not found"),
        (["a cat", "--class", "3"], "--class is for class-conditional models"),
        (["a cat", "--filter-mode", "lax"], "invalid choice"),
        (["a cat", "-o", "x.jpg"], "must be a .png file"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys, args, match):
    monkeypatch.chdir(tmp_path)
    assert cli(GEN + args) == 2
    assert match in _error_line(capsys)
    assert not list(tmp_path.iterdir())  # nothing written, not even a partial file


def test_refused_prompt_is_exit_1_with_one_line(tmp_path, capsys):
    out = tmp_path / "x.png"
    assert cli(GEN + ["heil hitler", "-o", str(out)]) == 1
    err = _error_line(capsys)
    assert "refused by the content filter" in err and "category 'hate'" in err and "rule 'hate.nazi'" in err
    assert not out.exists()
    assert cli(GEN + ["heil hitler", "-o", str(out), "--filter-mode", "warn"]) == 0
    assert "warning: safety: WARNING hate/hate.nazi" in capsys.readouterr().err
    assert read_recipe(out)["filter"]["rule"] == "hate.nazi"
    assert cli(GEN + ["heil hitler", "-o", str(out), "--filter-mode", "off"]) == 0
    assert read_recipe(out)["filter"]["mode"] == "off"


def test_user_rule_file_is_used(tmp_path, capsys):
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            {
                "version": 1,
                "rules": [{"id": "house.zebra", "category": "copyrighted_character", "phrases": ["zebra"]}],
            }
        )
    )
    assert cli(GEN + ["a zebra", "--safety-rules", str(rules), "-o", str(tmp_path / "z.png")]) == 1
    assert "house.zebra" in _error_line(capsys)
    assert cli(["filter-check", "a zebra", "--rules", str(rules)]) == 1


@pytest.mark.parametrize(
    "prompt,code,shown",
    [
        ("a killer whale", 0, "safety: ok"),
        ("shoot a portrait", 0, "safety: ok"),
        ("a bloody mary cocktail", 0, "safety: ok"),
        ("a naked woman", 1, "BLOCKED sexual_explicit/sexual.nudity"),
        ("a n u d e woman", 1, "BLOCKED sexual_explicit"),
        ("h e i l  h1tler", 1, "BLOCKED hate/hate.nazi"),
        ("a g0ry battlefield", 1, "BLOCKED graphic_violence"),
        ("l0l1c0n", 1, "BLOCKED minors_sexual"),
        ("c0ca-c0la", 1, "BLOCKED copyrighted_character"),
    ],
)
def test_filter_check_exit_codes(capsys, prompt, code, shown):
    assert cli(["filter-check", prompt]) == code
    out = capsys.readouterr().out.strip()
    assert shown in out and len(out.splitlines()) == 1


def test_filter_check_modes_json_and_bad_input(capsys, monkeypatch):
    assert cli(["filter-check", "a naked woman", "--mode", "warn"]) == 0
    assert "WARNING" in capsys.readouterr().out
    assert cli(["filter-check", "a naked woman", "--json"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["allowed"] is False and verdict["rule"] == "sexual.nudity"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a killer whale\n"))
    assert cli(["filter-check", "-"]) == 0
    capsys.readouterr()
    for args, match in (
        (["   "], "empty"),
        (["x" * 10_000], "limit"),
        (["a", "--mode", "x"], "invalid choice"),
        (["a", "--rules", "/nonexistent.json"], "cannot read"),
    ):
        assert cli(["filter-check", *args]) == 2
        assert match in _error_line(capsys)


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(stream)
        bar(0, 2, {"step": 2, "total": 4, "eta": 1.5})
        bar.close()
    assert "image 1/2 [############------------] step 2/4 ETA 1.5s" in tty.getvalue()
    assert tty.getvalue().endswith("\n") and pipe.getvalue() == ""


def test_generate_is_quiet_when_not_a_terminal(tmp_path, capsys):
    assert cli(GEN + ["a red sneaker", "--n", "2", "--out-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.split() == [str(tmp_path / "00000-0.png"), str(tmp_path / "00001-1.png")]


def test_class_model_cli(tmp_path, capsys):
    out = tmp_path / "c.png"
    assert cli(["generate", "--model", "random:tiny", "--class", "3", "--steps", "1", "-o", str(out)]) == 0
    assert read_recipe(out)["class_label"] == 3
    with Image.open(out) as im:
        assert im.text["parameters"].startswith("class 3\n")
    assert cli(["generate", "--model", "random:tiny", "a cat", "-o", str(out)]) == 2
    assert "class-conditional" in _error_line(capsys)
    assert cli(["generate", "--model", "random:tiny", "--class", "10", "-o", str(out)]) == 2
    assert "0..9" in _error_line(capsys)


def test_real_entry_point_one_line_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "bitdance.cli", "edit", str(tmp_path / "nope.png"), "--box", "0,0,4,4"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip() == f"error: image {tmp_path / 'nope.png'} not found"


SHIPPED = models_dir() / "bitdance-mini"


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHIPPED / "model_index.json").is_file(), reason="shipped model bitdance-mini not present"
)
def test_shipped_model_generate_replay_edit(tmp_path):
    out = tmp_path / "a.png"
    assert cli(["generate", "a red sneaker", "--steps", "4", "--cfg", "3", "-o", str(out)]) == 0
    rec = read_recipe(out)
    assert rec["model"] == "bitdance-mini" and Image.open(out).size == (rec["width"], rec["height"])
    assert cli(["generate", "--replay", str(out), "-o", str(tmp_path / "b.png")]) == 0
    assert Path(tmp_path / "b.png").read_bytes() == out.read_bytes()
    assert cli(["edit", str(out), "--box", "0,0,16,16", "--steps", "4", "-o", str(tmp_path / "e.png")]) == 0
    assert read_recipe(tmp_path / "e.png")["edit"]["mode"] == "inpaint"
    assert cli(["generate", "a naked woman", "-o", str(tmp_path / "n.png")]) == 1


# ----------------------------------------------------------------------------- output paths
def _no_model(monkeypatch):
    """Make loading a model fail loudly: path errors must come first."""
    import bitdance.commands.generate as gen

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(gen, "load_pipeline", boom)


@pytest.mark.parametrize(
    "where,reason",
    [
        ("{tmp}/file.txt/x.png", "is not a folder"),
        ("{tmp}/file.txt/deeper/x.png", "is not a folder"),
        ("{tmp}/adir.png", "exists and is not a regular file"),
        ("/sys/x.png", "cannot write output /sys/x.png:"),
        ("/proc/x.png", "cannot write output /proc/x.png:"),
        ("/proc/nowhere/sub/x.png", "cannot write output /proc/nowhere/sub/x.png:"),
    ],
)
def test_unwritable_output_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys, where, reason):
    _no_model(monkeypatch)
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "adir.png").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    path = where.format(tmp=tmp_path)
    for argv in (
        ["generate", "a cat", "-o", path],
        ["edit", str(tmp_path / "file.txt"), "--box", "0,0,4,4", "-o", path],
        ["generate", "--replay", str(tmp_path / "nope.png"), "-o", path],
    ):
        code = cli(argv)
        err = _error_line(capsys)
        if argv[1] == "--replay":  # the replay source is read first; its error wins
            assert code == 2 and "nope.png not found" in err
            continue
        assert code == 2 and path in err and reason in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no hidden probe or temp file left


def test_unwritable_out_dir_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys):
    _no_model(monkeypatch)
    (tmp_path / "file.txt").write_text("x")
    bad = str(tmp_path / "file.txt" / "out")
    assert cli(["generate", "a cat", "--out-dir", bad]) == 2
    assert (
        _error_line(capsys)
        == f"error: cannot write output folder {bad}: {tmp_path / 'file.txt'} is not a folder"
    )


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 0)() == 0, reason="root can write into read-only folders")
def test_read_only_folder_is_refused(tmp_path, monkeypatch, capsys):
    _no_model(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert cli(["generate", "a cat", "-o", str(ro / "x.png")]) == 2
        assert f"cannot write output {ro / 'x.png'}: Permission denied" in _error_line(capsys)
    finally:
        ro.chmod(0o755)


def test_write_failure_after_generation_names_the_path_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import bitdance.checkpoint as ckpt
    import bitdance.pipeline.provenance as prov

    def fail_after_temp(path, data):  # the real writer, failing between the temp file and the rename
        real_replace = ckpt.os.replace

        def no_space(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ckpt.os, "replace", no_space)
        try:
            ckpt.atomic_write_bytes(path, data)
        finally:
            monkeypatch.setattr(ckpt.os, "replace", real_replace)

    monkeypatch.setattr(prov, "atomic_write_bytes", fail_after_temp)
    out = tmp_path / "sub" / "x.png"
    assert cli([*GEN, "a cat", "-o", str(out)]) == 2
    assert _error_line(capsys) == f"error: cannot write output {out}: No space left on device"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == []  # the temp file was removed


# ----------------------------------------------------------------------------- WIDTHxHEIGHT sizes
@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A tiny text model with sin-cos head positions: it makes 16x16 ... 32x32, so 32x16 is allowed."""
    import dataclasses

    from bitdance.core.configs import get_preset
    from bitdance.generator.text_encoder import HashTextEncoder
    from bitdance.generator.transformer import BitDanceTransformer
    from bitdance.pipeline import BitDancePipeline
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    torch.manual_seed(0)
    gcfg = dataclasses.replace(get_preset("generator", "tiny-text"), head_pos="sincos")
    pipe = BitDancePipeline(
        BinaryAutoencoder(get_preset("tokenizer", "tiny")),
        BitDanceTransformer(gcfg),
        HashTextEncoder(32, 8),
        name="wide",
    )
    folder = tmp_path_factory.mktemp("wide") / "model"
    pipe.save_pretrained(folder)
    return str(folder)


def test_size_is_width_by_height_and_says_so(wide_model, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert (
        cli(["generate", "a cat", "--model", wide_model, "--steps", "1", "--size", "32x16", "-o", str(a)])
        == 0
    )
    err = capsys.readouterr().err
    assert "note: --size is WIDTHxHEIGHT: 32x16 means width 32, height 16" in err
    assert Image.open(a).size == (32, 16)  # PIL size is (width, height)
    rec = read_recipe(a)
    assert (rec["width"], rec["height"]) == (32, 16)
    assert (
        cli(["generate", "a cat", "--model", wide_model, "--steps", "1", "--size-hw", "16x32", "-o", str(b)])
        == 0
    )
    assert "warning: --size-hw is deprecated; write --size 32x16 (WIDTHxHEIGHT)" in capsys.readouterr().err
    assert b.read_bytes() == a.read_bytes()
    assert cli(["generate", "a cat", "--model", wide_model, "--size", "32x16", "--size-hw", "16x32"]) == 2
    assert "not both" in _error_line(capsys)
    assert cli(["generate", "a cat", "--model", wide_model, "--size", "64x16", "-o", str(b)]) == 2
    err = _error_line(capsys)
    assert "unsupported size 64x16 (WIDTHxHEIGHT)" in err and "32x16" in err
    assert (
        cli(["generate", "a cat", "--model", wide_model, "--steps", "1", "--size", "16x16", "-o", str(b)])
        == 0
    )
    assert "WIDTHxHEIGHT" not in capsys.readouterr().err  # a square size is not ambiguous: no note


def test_edit_canvas_is_width_by_height(wide_model, tmp_path, capsys):
    src, out = tmp_path / "src.png", tmp_path / "out.png"
    assert cli(["generate", "a cat", "--model", wide_model, "--steps", "1", "-o", str(src)]) == 0
    assert (
        cli(
            [
                "edit",
                str(src),
                "--model",
                wide_model,
                "--canvas",
                "32x16",
                "--offset",
                "0,0",
                "--steps",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).size == (32, 16)
    assert read_recipe(out)["edit"]["canvas"] == [16, 32]  # the recipe keeps the API's (height, width)
    assert (
        cli(["edit", str(src), "--model", wide_model, "--canvas-hw", "16x32", "--steps", "1", "-o", str(out)])
        == 0
    )
    assert "--canvas-hw is deprecated" in capsys.readouterr().err
