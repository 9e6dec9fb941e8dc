"""ONNX export + the numpy/ONNX Runtime reference runner against PyTorch.

Tolerance (also in docs/quantization.md): with the same seed (torch-generated noise) the runner's bits are
identical to the pipeline's and its images differ by at most 1e-3 (max abs, images in [-1, 1]).
"""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bitdance.export import OnnxRunner, export_onnx, numpy_noise, torch_noise  # noqa: E402
from bitdance.pipeline import BitDancePipeline  # noqa: E402

IMAGE_TOL = 1e-3


def _wake_head(pipe: BitDancePipeline, std: float = 0.05) -> BitDancePipeline:
    """Random presets zero-init the head's output layers (x_hat = 0); give them weights so bits depend on
    the network and a parity failure would show."""
    torch.manual_seed(1)
    net = pipe.generator.head.net
    for lin in [*net.ada_ln_blocks, net.final_layer.ada_ln_modulation, net.final_layer.linear]:
        torch.nn.init.normal_(lin.weight, std=std)
    pipe.model_hash = pipe._hash()
    return pipe


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    pipe = _wake_head(BitDancePipeline.from_preset("tiny-text"))
    folder = export_onnx(pipe, tmp_path_factory.mktemp("onnx") / "tiny-text")
    return pipe, folder


def _text_cond(pipe, runner, prompts):
    c = pipe.encode_prompt(prompts)
    return runner.text_condition(c.states.numpy(), c.mask.numpy())


def test_export_writes_graphs_tables_and_manifest(text_export):
    pipe, folder = text_export
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            "manifest.json",
            "tables.npz",
            "prefix.onnx",
            "embed_tokens.onnx",
            "backbone_step.onnx",
            "head.onnx",
            "decoder.onnx",
        ]
    )
    m = json.loads((folder / "manifest.json").read_text())
    assert m["parallel_num"] == 4 and m["grid"] == [4, 4] and m["model_hash"] == pipe.model_hash
    with np.load(folder / "tables.npz", allow_pickle=False) as t:
        assert t["order"].shape == (16,) and t["head_pos"].shape == (16, pipe.generator.config.dim)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # temp folder renamed away


def test_runner_matches_pytorch_with_guidance(text_export):
    pipe, folder = text_export
    runner = OnnxRunner(folder)
    prompts, seeds = ["a red sneaker", "a blue square"], [5, 9]
    ref = pipe(prompt=prompts, num_sampling_steps=6, guidance_scale=2.5, seed=seeds, output_type="pt")
    out = runner.generate(_text_cond(pipe, runner, prompts), torch_noise(seeds), 6, 2.5)
    assert out.bits.shape == tuple(ref.bits.shape)
    assert np.array_equal(out.bits, ref.bits.numpy())
    assert np.abs(out.images - ref.images.numpy()).max() <= IMAGE_TOL
    assert ref.bits.float().mean().abs() < 0.9  # not a constant image: the comparison means something


def test_runner_matches_pytorch_unguided_linear_schedule_and_euler(text_export):
    pipe, folder = text_export
    runner = OnnxRunner(folder)
    cond = _text_cond(pipe, runner, ["three green circles"])
    for kw in ({"guidance_scale": 1.0}, {"guidance_scale": 3.0, "guidance_schedule": "linear"}):
        ref = pipe(prompt="three green circles", num_sampling_steps=4, seed=2, output_type="pt", **kw)
        out = runner.generate(cond, torch_noise([2]), 4, **kw)
        assert np.array_equal(out.bits, ref.bits.numpy()), kw
        assert np.abs(out.images - ref.images.numpy()).max() <= IMAGE_TOL
    ref = pipe(prompt="three green circles", num_sampling_steps=4, seed=2, output_type="pt", solver="euler")
    out = runner.generate(cond, torch_noise([2]), 4, solver="euler")
    assert np.array_equal(out.bits, ref.bits.numpy())


def test_runner_numpy_noise_is_deterministic_and_validates(text_export):
    pipe, folder = text_export
    runner = OnnxRunner(folder)
    cond = _text_cond(pipe, runner, ["a red sneaker"])
    a = runner.generate(cond, numpy_noise(3), 3, decode=False)
    b = runner.generate(cond, numpy_noise(3), 3, decode=False)
    assert a.images is None and np.array_equal(a.bits, b.bits) and set(np.unique(a.bits)) <= {-1.0, 1.0}
    with pytest.raises(ValueError, match="text-conditioned"):
        runner.class_condition([1])
    with pytest.raises(ValueError, match="num_sampling_steps"):
        runner.generate(cond, numpy_noise(0), 0)
    with pytest.raises(ValueError, match="text states"):
        runner.text_condition(np.zeros((1, 3, 2), np.float32), np.ones((1, 3), bool))


def test_export_refusals(tmp_path, text_export):
    from bitdance.quantization import quantize_pipeline

    pipe, folder = text_export
    with pytest.raises(ValueError, match="not empty"):
        export_onnx(pipe, folder)
    with pytest.raises(ValueError, match="parallel_num 9"):
        export_onnx(pipe, tmp_path / "x", parallel_num=9)
    with pytest.raises(ValueError, match="unsupported size"):
        export_onnx(pipe, tmp_path / "x", size=(24, 24))
    q = quantize_pipeline(BitDancePipeline.from_preset("tiny-text"), "int8-dynamic")
    with pytest.raises(ValueError, match="cannot be exported"):
        export_onnx(q, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileNotFoundError):
        OnnxRunner(tmp_path)


@pytest.mark.slow
def test_class_model_and_int8_weight_only_export_match_pytorch(tmp_path):
    from bitdance.quantization import quantize_pipeline

    for quant in (False, True):
        pipe = _wake_head(BitDancePipeline.from_preset("tiny"))
        if quant:
            quantize_pipeline(pipe, "int8-weight-only")
        folder = export_onnx(pipe, tmp_path / f"e{int(quant)}", parallel_num=16)
        runner = OnnxRunner(folder)
        ref = pipe(
            class_labels=[1, 7],
            num_sampling_steps=5,
            guidance_scale=2.0,
            seed=[0, 1],
            output_type="pt",
            parallel_num=16,
        )
        out = runner.generate(runner.class_condition([1, 7]), torch_noise([0, 1]), 5, 2.0)
        assert np.array_equal(out.bits, ref.bits.numpy())
        assert np.abs(out.images - ref.images.numpy()).max() <= IMAGE_TOL
