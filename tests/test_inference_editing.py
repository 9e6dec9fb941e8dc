"""Editing: inpainting keeps kept tokens exactly, mask -> token mapping, outpainting, variations, CLI."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from bitdance.cli import main as cli
from bitdance.core.configs import get_preset
from bitdance.generator.text_encoder import HashTextEncoder
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.pipeline import BitDancePipeline
from bitdance.pipeline.editing import box_mask, first_patches_keep, load_mask, token_keep
from bitdance.pipeline.provenance import read_recipe
from bitdance.tokenizer.autoencoder import BinaryAutoencoder

FAST = {"num_sampling_steps": 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipe():
    return BitDancePipeline.from_preset("tiny-text")


@pytest.fixture(scope="module")
def wide_pipe():
    """A tiny text model with sin-cos head positions: it supports 16x16 ... 32x32, so it can outpaint."""
    torch.manual_seed(0)
    gcfg = dataclasses.replace(get_preset("generator", "tiny-text"), head_pos="sincos")
    return BitDancePipeline(
        BinaryAutoencoder(get_preset("tokenizer", "tiny")),
        BitDanceTransformer(gcfg),
        HashTextEncoder(32, 8),
        name="wide",
    )


@pytest.fixture(scope="module")
def source(pipe):
    return pipe("a red circle", seed=1, **FAST)


def test_token_keep_regenerates_a_token_if_any_pixel_is_masked():
    m = torch.zeros(16, 16, dtype=torch.bool)
    m[5, 5] = True  # one pixel in cell (1, 1) of a 4 x 4 grid of 4-pixel cells
    keep = token_keep(m, 4)
    assert keep.shape == (4, 4) and not keep[1, 1] and int(keep.sum()) == 15
    assert torch.equal(
        token_keep(box_mask((4, 4, 9, 8), (16, 16)), 4)[1], torch.tensor([True, False, False, True])
    )


def test_inpainting_keeps_kept_tokens_exactly(pipe, source):
    bits = source.bits[0]
    out = pipe.edit(bits, box=(0, 0, 8, 8), prompt="a blue square", seed=3, guidance_scale=2.0, **FAST)
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[:2, :2] = False
    assert torch.equal(out.bits[0][:, keep], bits[:, keep])
    assert not torch.equal(out.bits[0][:, ~keep], bits[:, ~keep])
    assert out.recipes[0]["edit"] == {"mode": "inpaint", "box": [0, 0, 8, 8], "regenerated_tokens": 4}


def test_editing_an_image_keeps_its_encoded_tokens(pipe, source):
    img = source.images[0]
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (12, 0, 16, 16))  # right column of cells
    out = pipe.edit(img, mask=mask, prompt="a red circle", num_images_per_prompt=2, seed=0, **FAST)
    encoded = pipe.tokenizer.encode(
        torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
    )
    for i in range(2):
        assert torch.equal(out.bits[i][:, :, :3], encoded[0][:, :, :3])
    same = pipe.edit(img, box=(12, 0, 16, 16), prompt="a red circle", num_images_per_prompt=2, seed=0, **FAST)
    assert torch.equal(same.bits, out.bits)  # a mask and the equivalent box give the same edit


def test_mask_inputs_and_errors(pipe, source, tmp_path):
    arr = np.zeros((16, 16), bool)
    arr[0, 0] = True
    assert load_mask(arr, (16, 16))[0, 0] and int(load_mask(arr, (16, 16)).sum()) == 1
    assert int(load_mask(torch.from_numpy(arr), (16, 16)).sum()) == 1
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    img = source.images[0]
    cases = [
        ({"mask": np.zeros((8, 8), bool)}, ValueError, "must match"),
        ({"mask": np.zeros((16, 16), bool)}, ValueError, "covers no pixels"),
        ({"mask": str(tmp_path / "bad.png")}, ValueError, "cannot read mask"),
        ({"mask": str(tmp_path / "none.png")}, FileNotFoundError, "not found"),
        ({"box": (0, 0, 20, 8)}, ValueError, "0 <= x0 < x1 <= 16"),
        ({"box": (4, 4, 4, 8)}, ValueError, "0 <= x0 < x1"),
        ({"box": (0, 0, 4, 4), "mask": arr}, ValueError, "not both"),
        ({}, ValueError, "give a mask or a box"),
        ({"box": (0, 0, 4, 4), "height": 16}, ValueError, "unexpected argument 'height'"),
        ({"box": (0, 0, 4, 4), "frobnicate": 1}, ValueError, "unexpected argument 'frobnicate'"),
    ]
    for kw, err, match in cases:
        with pytest.raises(err, match=match):
            pipe.edit(img, prompt="a cat", **FAST, **kw)
    with pytest.raises(ValueError, match="unsupported image size 8x8"):
        pipe.edit(Image.new("RGB", (8, 8)), box=(0, 0, 4, 4), prompt="a cat", **FAST)


def test_outpainting(wide_pipe):
    src = wide_pipe("a red circle", seed=2, output_type="np", **FAST).images[0]
    out = wide_pipe.edit(
        src, canvas=(16, 32), offset=(16, 0), prompt="a red circle", seed=5, output_type="np", **FAST
    )
    assert out.images.shape == (1, 16, 32, 3)
    assert out.recipes[0]["edit"] == {
        "mode": "outpaint",
        "canvas": [16, 32],
        "offset": [16, 0],
        "regenerated_tokens": 16,
    }
    placed = torch.zeros(1, 3, 16, 32)
    placed[..., 16:] = torch.from_numpy(src).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(out.bits[0][:, :, 4:], wide_pipe.tokenizer.encode(placed)[0][:, :, 4:])
    with pytest.raises(ValueError, match="does not fit"):
        wide_pipe.edit(src, canvas=(16, 32), offset=(20, 0), prompt="a cat", **FAST)
    with pytest.raises(ValueError, match="unsupported canvas size 48x48.*16x16, 16x32"):
        wide_pipe.edit(src, canvas=(48, 48), prompt="a cat", **FAST)


def test_outpainting_needs_a_supported_canvas(pipe, source):
    with pytest.raises(ValueError, match="unsupported canvas size 16x32 .*this model supports: 16x16"):
        pipe.edit(source.images[0], canvas=(16, 32), prompt="a cat", **FAST)


def test_variations_keep_the_first_patches(pipe, source):
    bits = source.bits
    var = pipe.vary(bits[0], from_step=2, prompt="a red circle", seed=9, **FAST)
    assert torch.equal(var.bits[0][:, :2], bits[0][:, :2])  # P = 4: steps 0, 1 are the top two token rows
    assert var.recipes[0]["edit"] == {"mode": "vary", "from_step": 2}
    fresh = pipe("a red circle", seed=9, output_type="bits", **FAST)
    assert torch.equal(
        pipe.vary(bits[0], from_step=0, prompt="a red circle", seed=9, **FAST).bits, fresh.bits
    )
    keep = first_patches_keep((4, 4), 1, 5)
    assert keep.flatten().tolist() == [True] * 5 + [False] * 11
    for k in (-1, 4, 1.5):
        with pytest.raises(ValueError, match="from_step must be an integer in 0..3"):
            pipe.vary(bits[0], from_step=k, prompt="a cat", **FAST)


def test_edits_replay_byte_identically(pipe, source, tmp_path):
    out = pipe.edit(source.images[0], box=(0, 8, 16, 16), prompt="a red circle", seed=4, **FAST)
    out.save(tmp_path / "e.png")
    again = pipe.replay(tmp_path / "e.png")
    again.save(tmp_path / "e2.png")
    assert (tmp_path / "e.png").read_bytes() == (tmp_path / "e2.png").read_bytes()


def test_cli_edit(pipe, source, tmp_path, capsys):
    src = tmp_path / "src.png"
    source.save(src)
    out = tmp_path / "edited.png"
    assert cli(["edit", str(src), "--box", "0,0,8,8", "--steps", "1", "--seed", "3", "-o", str(out)]) == 0
    rec = read_recipe(out)
    assert rec["prompt"] == "a red circle" and rec["model"] == "random:tiny-text"  # taken from the input PNG
    assert rec["edit"]["mode"] == "inpaint" and rec["seed"] == 3
    Image.new("L", (16, 16), 255).save(tmp_path / "m.png")
    assert (
        cli(
            [
                "edit",
                str(src),
                "a blue square",
                "--mask",
                str(tmp_path / "m.png"),
                "--steps",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert read_recipe(out)["prompt"] == "a blue square"
    assert cli(["edit", str(src), "--from-step", "1", "--steps", "1", "-o", str(out)]) == 0
    assert read_recipe(out)["edit"] == {"mode": "vary", "from_step": 1}
    (tmp_path / "bad.png").write_bytes(b"nope")
    capsys.readouterr()
    for args, match in (
        (["--mask", str(tmp_path / "bad.png")], "cannot read mask"),
        (["--box", "0,0,8"], "x0,y0,x1,y1"),
        ([], "say what to regenerate"),
        (["--canvas", "16x32"], "unsupported canvas size"),
    ):
        assert cli(["edit", str(src), *args, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and match in err and len(err.splitlines()) == 1
    assert cli(["edit", str(src), "a naked woman", "--box", "0,0,8,8", "-o", str(tmp_path / "n.png")]) == 1
    assert "refused by the content filter" in capsys.readouterr().err and not (tmp_path / "n.png").exists()
