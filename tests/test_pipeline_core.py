import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bitdance.pipeline import BitDancePipeline


@pytest.fixture(scope="module")
def pipe():
    return BitDancePipeline.from_preset("tiny-text")


def test_generate_pil_np_pt_bits(pipe):
    out = pipe("a red circle", num_sampling_steps=2)
    assert isinstance(out.images[0], Image.Image) and out.images[0].size == (16, 16)
    assert out.seeds == [0]
    assert pipe("a red circle", num_sampling_steps=2, output_type="np").images.dtype == np.uint8
    pt = pipe("a red circle", num_sampling_steps=2, output_type="pt").images
    assert pt.shape == (1, 3, 16, 16)
    bits = pipe("a red circle", num_sampling_steps=2, output_type="bits").images
    assert set(bits.unique().tolist()) <= {-1.0, 1.0}


def test_deterministic_and_batch_independent(pipe):
    a = pipe(["a cat", "a dog"], num_images_per_prompt=2, seed=10, guidance_scale=2.0, num_sampling_steps=2)
    b = pipe("a dog", seed=13, guidance_scale=2.0, num_sampling_steps=2)
    assert a.seeds == [10, 11, 12, 13]
    assert a.images[3].tobytes() == b.images[0].tobytes()
    c = pipe(["a cat", "a dog"], num_images_per_prompt=2, seed=10, guidance_scale=2.0, num_sampling_steps=2)
    assert [i.tobytes() for i in a.images] == [i.tobytes() for i in c.images]


def test_save_load_round_trip(tmp_path, pipe):
    pipe.save_pretrained(tmp_path / "m")
    pipe2 = BitDancePipeline.from_pretrained(tmp_path / "m")
    a = pipe("a cat", seed=1, num_sampling_steps=2, output_type="np").images
    b = pipe2("a cat", seed=1, num_sampling_steps=2, output_type="np").images
    assert np.array_equal(a, b)
    assert pipe2.model_hash == pipe.model_hash


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"prompt": ""}, "empty"),
        ({"prompt": "x" * 10_000}, "limit"),
        ({"prompt": "a", "height": 20}, "unsupported size"),
        ({"prompt": "a", "num_sampling_steps": -1}, "num_sampling_steps"),
        ({"prompt": "a", "guidance_scale": float("nan")}, "guidance_scale"),
        ({"prompt": "a", "parallel_num": 3}, "allowed"),
        ({"prompt": "a", "num_images_per_prompt": 0}, "1..64"),
        ({"prompt": "a", "output_type": "jpg"}, "output_type"),
        ({"class_labels": [1]}, "text-to-image"),
        ({"prompt": "a", "seed": -1}, "seed"),
    ],
)
def test_bad_input_raises_value_error(pipe, kw, match):
    with pytest.raises(ValueError, match=match):
        pipe(**kw)


def test_class_conditional_pipeline():
    pipe = BitDancePipeline.from_preset("tiny")
    out = pipe(class_labels=[1, 2], num_sampling_steps=2, output_type="np")
    assert out.images.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="0..9"):
        pipe(class_labels=[10])
    with pytest.raises(ValueError, match="class-conditional"):
        pipe(prompt="a cat")


def test_cli_generate_writes_png_and_reports_bad_input(tmp_path):
    out = tmp_path / "x.png"
    cmd = [
        sys.executable,
        "-m",
        "bitdance.cli",
        "generate",
        "a red sneaker",
        "--model",
        "random:tiny-text",
        "--steps",
        "2",
        "-o",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (16, 16)
    bad = subprocess.run(cmd[:-2] + ["--steps", "-3"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: num_sampling_steps") and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    unknown = subprocess.run(
        [sys.executable, "-m", "bitdance.cli", "frobnicate"], capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "allowed" in unknown.stderr


def test_device_comes_from_inputs(pipe):
    assert pipe.device == torch.device("cpu")
