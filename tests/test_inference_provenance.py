"""Provenance: A1111 `parameters` + `bitdance` JSON chunks, inspect, byte-identical replay."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from bitdance.cli import main as cli
from bitdance.pipeline import BitDancePipeline
from bitdance.pipeline.provenance import (
    a1111_parameters,
    decode_bits,
    encode_bits,
    parse_parameters,
    read_recipe,
    recipe_matches,
)

FAST = {"num_sampling_steps": 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is fastest, and far faster on a shared, loaded CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipe():
    return BitDancePipeline.from_preset("tiny-text")


@pytest.fixture(scope="module")
def made(pipe, tmp_path_factory):
    """One image with every recorded option set, saved as a PNG."""
    out = pipe(
        "a red sneaker, side view: studio",
        negative_prompt="blurry",
        seed=5,
        guidance_scale=2.0,
        guidance_schedule="linear",
        parallel_num=1,
        color="auto",
        upscale=2,
        **FAST,
    )
    path = tmp_path_factory.mktemp("prov") / "img.png"
    out.save(path, 0)
    return out, path


def test_png_has_a1111_parameters_and_json_recipe(made, pipe):
    out, path = made
    with Image.open(path) as im:
        text = dict(im.text)
    assert set(text) >= {"parameters", "bitdance"}
    lines = text["parameters"].split("\n")
    assert lines[0] == "a red sneaker, side view: studio"
    assert lines[1] == "Negative prompt: blurry"
    assert lines[2].startswith(
        "Steps: 1, Sampler: euler_maruyama, CFG scale: 2.0, Seed: 5, Size: 16x16, "
        f"Model hash: {pipe.model_hash}, "
        'Model: "random:tiny-text", CFG schedule: linear, Parallel tokens: 1, '
        'Postprocess: "color:auto upscale:2:lanczos", Content filter: ok (block)'
    )
    recipe = json.loads(text["bitdance"])
    assert recipe == read_recipe(path) == json.loads(json.dumps(out.recipes[0]))
    for key in (
        "model",
        "model_hash",
        "prompt",
        "negative_prompt",
        "seed",
        "height",
        "width",
        "num_sampling_steps",
        "guidance_scale",
        "guidance_schedule",
        "parallel_num",
        "solver",
        "postprocess",
        "bitdance_version",
        "filter",
    ):
        assert key in recipe


def test_a1111_text_round_trips_through_the_parser(made):
    out, _ = made
    parsed = parse_parameters(a1111_parameters(out.recipes[0]))
    assert parsed["prompt"] == "a red sneaker, side view: studio"
    assert parsed["negative_prompt"] == "blurry"
    assert parsed["Seed"] == "5" and parsed["CFG scale"] == "2.0" and parsed["Model"] == "random:tiny-text"
    assert parsed["Postprocess"] == "color:auto upscale:2:lanczos"


def test_replay_is_byte_identical(made, pipe, tmp_path):
    _, path = made
    again = pipe.replay(path)
    again.save(tmp_path / "again.png", 0)
    assert (tmp_path / "again.png").read_bytes() == path.read_bytes()


def test_replay_refuses_another_model_unless_forced(made):
    _, path = made
    other = BitDancePipeline.from_preset("tiny-text", seed=1)
    with pytest.raises(ValueError, match="model hash mismatch.*--force"):
        other.replay(path)
    assert other.replay(path, force=True).images[0].size == (32, 32)


def test_cli_replay_and_inspect(made, tmp_path, capsys):
    _, path = made
    out = tmp_path / "r.png"
    assert cli(["generate", "--replay", str(path), "-o", str(out)]) == 0
    assert out.read_bytes() == path.read_bytes()
    capsys.readouterr()
    assert cli(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "prompt:" in text and "a red sneaker" in text and "seed:" in text and "replay:" in text
    assert "color:auto, upscale:2:lanczos" in text
    assert cli(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == read_recipe(path)


def test_cli_replay_refusals(made, tmp_path, capsys):
    _, path = made
    other = tmp_path / "other"
    BitDancePipeline.from_preset("tiny-text", seed=1).save_pretrained(other)
    capsys.readouterr()
    assert cli(["generate", "--replay", str(path), "--model", str(other), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model hash mismatch") and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
    assert (
        cli(
            [
                "generate",
                "--replay",
                str(path),
                "--model",
                str(other),
                "--force",
                "-o",
                str(tmp_path / "x.png"),
            ]
        )
        == 0
    )
    assert cli(["generate", "--replay", str(path), "--steps", "3"]) == 2
    assert "remove --steps" in capsys.readouterr().err
    made_by_folder = tmp_path / "f.png"
    assert cli(["generate", "a cat", "--model", str(other), "--steps", "1", "-o", str(made_by_folder)]) == 0
    assert read_recipe(made_by_folder)["model"] == "other"  # the folder name, not a host path
    capsys.readouterr()
    assert cli(["generate", "--replay", str(made_by_folder)]) == 2
    assert "pass --model NAME_OR_FOLDER" in capsys.readouterr().err
    assert (
        cli(
            [
                "generate",
                "--replay",
                str(made_by_folder),
                "--model",
                str(other),
                "-o",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "g.png").read_bytes() == made_by_folder.read_bytes()


def test_inspect_bad_files(tmp_path, capsys):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 4x4")
    Image.new("RGB", (4, 4)).save(tmp_path / "a1111.png", pnginfo=info)
    for name, msg in (
        ("junk.png", "cannot read"),
        ("plain.png", "no generation metadata"),
        ("missing.png", "not found"),
    ):
        assert cli(["inspect", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and len(err.splitlines()) == 1
    assert cli(["inspect", str(tmp_path / "a1111.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"]["Sampler"] == "Euler a"
    assert cli(["generate", "--replay", str(tmp_path / "a1111.png")]) == 2
    assert "no bitdance recipe" in capsys.readouterr().err


def test_unicode_prompt_and_generator_images(pipe, tmp_path):
    out = pipe("ein Haus am See, 家", output_type="pil", **FAST)
    out.save(tmp_path / "u.png")
    assert read_recipe(tmp_path / "u.png")["prompt"] == "ein Haus am See, 家"
    with Image.open(tmp_path / "u.png") as im:
        assert im.text["parameters"].startswith("ein Haus am See, 家\n")
    g = pipe("a cat", generator=torch.Generator().manual_seed(0), **FAST)
    g.save(tmp_path / "g.png")
    with pytest.raises(ValueError, match="explicit torch.Generator"):
        pipe.replay(tmp_path / "g.png")


def test_bits_hex_round_trip_and_recipe_matching():
    bits = torch.where(torch.rand(16, 3, 5) > 0.5, 1.0, -1.0)
    assert torch.equal(decode_bits(encode_bits(bits), (16, 3, 5)), bits)
    keep = torch.rand(3, 5) > 0.5
    assert torch.equal(decode_bits(encode_bits(keep), (3, 5), signed=False), keep)
    a = {"model_hash": "x", "prompt": "a", "seed": 1, "postprocess": []}
    assert recipe_matches(a, dict(a)) and not recipe_matches(a, {**a, "seed": 2})
    assert recipe_matches({**a, "bitdance_version": "9"}, a)  # version alone does not change pixels
    assert np.packbits([1]).tobytes().hex() == "80"  # layout documented in docs/inference.md
