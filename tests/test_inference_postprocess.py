"""Post-processing: colour looks and upscaling are deterministic, validated and recorded."""

import numpy as np
import pytest
import torch
from PIL import Image

from bitdance.cli import main as cli
from bitdance.pipeline.postprocess import (
    LOOKS,
    apply_look,
    apply_steps,
    auto_contrast,
    build_steps,
    parse_steps,
    steps_to_options,
    upscale,
    white_balance,
)
from bitdance.pipeline.provenance import read_recipe


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rgb():
    rng = np.random.default_rng(0)
    x = rng.integers(40, 200, size=(16, 16, 3)).astype(np.float64)
    x[..., 0] *= 1.2  # a red cast
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("look", list(LOOKS))
def test_every_look_is_deterministic_uint8(rgb, look):
    a, b = apply_look(rgb, look), apply_look(rgb.copy(), look)
    assert a.dtype == np.uint8 and a.shape == rgb.shape and np.array_equal(a, b)


def test_looks_do_what_they_say(rgb):
    mono = apply_look(rgb, "mono")
    assert np.array_equal(mono[..., 0], mono[..., 1]) and np.array_equal(mono[..., 1], mono[..., 2])
    warm, cool = apply_look(rgb, "warm").astype(float), apply_look(rgb, "cool").astype(float)
    assert warm[..., 0].mean() > rgb[..., 0].mean() > cool[..., 0].mean()
    assert warm[..., 2].mean() < rgb[..., 2].mean() < cool[..., 2].mean()
    means = white_balance(rgb).reshape(-1, 3).mean(0)
    assert means.max() - means.min() < 2.0  # grey world: channel means equalised
    stretched = auto_contrast(rgb)
    assert stretched.min() == 0 and stretched.max() == 255

    def spread(x):
        return float(np.abs(x.astype(float) - x.astype(float).mean(-1, keepdims=True)).mean())

    assert spread(apply_look(rgb, "vivid")) > spread(rgb)
    flat = np.full((4, 4, 3), 90, np.uint8)
    assert np.array_equal(auto_contrast(flat), flat) and np.array_equal(white_balance(flat), flat)


def test_upscale_sizes_and_methods(rgb):
    img = Image.fromarray(rgb)
    assert upscale(img, 2).size == (32, 32) and upscale(img, 4, "bicubic").size == (64, 64)
    near = np.asarray(upscale(img, 2, "nearest"))
    assert np.array_equal(near[::2, ::2], rgb)
    with pytest.raises(ValueError, match="upscale factor"):
        upscale(img, 3)
    with pytest.raises(ValueError, match="upscale method"):
        upscale(img, 2, "magic")


def test_steps_are_canonical_and_round_trip(rgb):
    steps = build_steps(upscale=2, color="auto,warm")
    assert steps == ["color:auto", "color:warm", "upscale:2:lanczos"]
    assert parse_steps(steps)[2] == ("upscale", "2", "lanczos")
    assert build_steps(**steps_to_options(steps)) == steps
    assert build_steps() == []
    a = apply_steps(Image.fromarray(rgb), steps)
    b = Image.fromarray(apply_look(apply_look(rgb, "auto"), "warm")).resize(
        (32, 32), Image.Resampling.LANCZOS
    )
    assert a.tobytes() == b.tobytes()
    for bad, match in (
        (["color:sepia"], "unknown post-processing step"),
        (["upscale:3:lanczos"], "upscale"),
        ("color:warm", "list of steps"),
        (["upscale:2:lanczos", "color:warm"], "canonical order"),
    ):
        with pytest.raises(ValueError, match=match):
            steps_to_options(bad)
    with pytest.raises(ValueError, match="allowed: auto"):
        build_steps(color="auto,,warm")


def test_cli_postprocessing_is_recorded(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert (
        cli(
            [
                "generate",
                "a red sneaker",
                "--model",
                "random:tiny-text",
                "--steps",
                "1",
                "--upscale",
                "4",
                "--color",
                "vivid",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).size == (64, 64)
    assert read_recipe(out)["postprocess"] == ["color:vivid", "upscale:4:lanczos"]
    capsys.readouterr()
    assert cli(["generate", "a cat", "--model", "random:tiny-text", "--color", "sepia", "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown colour look")
