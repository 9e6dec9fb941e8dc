"""Int8 quantization: layer numerics, save/load round trip, generation within tolerance of fp32, refusals.

Tolerances (also in docs/quantization.md), on a tiny generator trained for 30 steps so its head makes
confident predictions (a random-init head outputs zeros and would hide every error):
- head x-prediction relative L2 error: <= 2% (int8-dynamic), <= 1% (int8-weight-only);
- >= 90% of bits equal to fp32 over a full 4x4-token generation with the same seed.
"""

import copy
import json
import warnings

import pytest
import torch
from torch import nn

from bitdance.checkpoint import CheckpointError, read_config
from bitdance.core.configs import get_preset
from bitdance.core.random import GeneratorSource
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.quantization import (
    SCHEMES,
    Int8DynamicLinear,
    Int8WeightOnlyLinear,
    dequantize_weight,
    load_component,
    load_pipeline,
    load_quantized,
    quantize_model,
    quantize_pipeline,
    quantize_weight,
    save_quantized,
    save_quantized_pipeline,
)
from bitdance.sampling.decode import SamplingOptions, generate_bits

XPRED_TOL = {"int8-dynamic": 0.02, "int8-weight-only": 0.01}
BITS_EQUAL_MIN = 0.90


@pytest.fixture(scope="module")
def trained_gen() -> BitDanceTransformer:
    """Tiny class-conditional generator fitted for 30 steps to 4 random bit images (confident head)."""
    torch.manual_seed(0)
    cfg = get_preset("generator", "tiny")
    cfg.num_classes, cfg.perturb_rate, cfg.cond_dropout = 4, 0.0, 0.0
    gen = BitDanceTransformer(cfg).train()
    g = torch.Generator().manual_seed(0)
    bits = torch.where(torch.rand(4, 16, 4, 4, generator=g) > 0.5, 1.0, -1.0)
    opt = torch.optim.AdamW(gen.parameters(), lr=3e-3)
    rng = GeneratorSource(torch.Generator().manual_seed(1))
    for _ in range(30):
        loss = gen.loss(bits, torch.arange(4), rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return gen.eval()


def _generate(model: BitDanceTransformer, seed: int = 0) -> torch.Tensor:
    opts = SamplingOptions(num_sampling_steps=8, guidance_scale=2.0)
    return generate_bits(model, torch.arange(4), opts, torch.Generator().manual_seed(seed))


def _head_inputs(cfg, n: int = 32):
    g = torch.Generator().manual_seed(3)
    p = cfg.parallel_num
    return (
        torch.randn(n, p, cfg.latent_bits, generator=g),
        torch.rand(n, generator=g),
        torch.randn(n, p, cfg.dim, generator=g),
    )


# ----------------------------------------------------------------------------- layers


def test_quantize_weight_round_trip_error_is_half_a_step():
    w = torch.randn(48, 32) * torch.linspace(0.01, 3, 48)[:, None]  # very different row ranges
    q, s = quantize_weight(w)
    assert q.dtype == torch.int8 and s.shape == (48,)
    err = (dequantize_weight(q, s) - w).abs()
    assert bool((err <= s[:, None] / 2 + 1e-6).all())
    zero_q, zero_s = quantize_weight(torch.zeros(2, 4))  # all-zero rows stay finite
    assert zero_q.abs().sum() == 0 and bool(torch.isfinite(zero_s).all())


def test_int8_values_equal_pytorch_quantize_dynamic():
    """Our rounding rule is PyTorch's per_channel_symmetric qint8 rule."""
    aq = pytest.importorskip("torch.ao.quantization")
    lin = nn.Linear(64, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = aq.quantize_dynamic(nn.Sequential(lin), {"0": aq.per_channel_dynamic_qconfig})[0].weight()
        ref_q, ref_s = ref.int_repr(), ref.q_per_channel_scales().float()
    q, s = quantize_weight(lin.weight)
    assert torch.equal(q, ref_q)
    assert torch.equal(s, ref_s)


@pytest.mark.parametrize("cls", [Int8WeightOnlyLinear, Int8DynamicLinear])
def test_int8_linear_close_to_fp32_any_leading_shape(cls):
    torch.manual_seed(0)
    lin = nn.Linear(96, 64)
    m = cls.from_float(lin)
    x = torch.randn(2, 5, 96)
    with torch.no_grad():
        ref, out = lin(x), m(x)
    assert out.shape == ref.shape
    assert ((out - ref).norm() / ref.norm()).item() < 0.02
    sd = m.state_dict()
    assert sorted(sd) == ["bias", "weight_int8", "weight_scale"] and sd["weight_int8"].dtype == torch.int8


def test_dynamic_state_dict_round_trip_is_exact():
    a = Int8DynamicLinear.from_float(nn.Linear(32, 16))
    b = Int8DynamicLinear(32, 16)
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    x = torch.randn(3, 32)
    assert torch.equal(a(x), b(x))


# ----------------------------------------------------------------------------- generator


@pytest.mark.parametrize("scheme", SCHEMES)
def test_quantized_generator_saves_loads_and_stays_close(trained_gen, scheme, tmp_path):
    q = copy.deepcopy(trained_gen)
    info = quantize_model(q, scheme)
    assert info["scheme"] == scheme and "layers.0.attention.wqkv" in info["modules"]
    assert "proj_in.w1" not in info["modules"] and "head.net.final_layer.linear" not in info["modules"]
    save_quantized(q, tmp_path / "gen")
    config = read_config(tmp_path / "gen")
    assert config["quantization"]["scheme"] == scheme and config["quantization"]["modules"] == info["modules"]
    loaded = load_quantized(tmp_path / "gen", config, "cpu")
    assert isinstance(loaded.layers[0].attention.wqkv, (Int8WeightOnlyLinear, Int8DynamicLinear))
    for k, v in q.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k

    # deterministic, and the loaded model generates exactly what the in-memory one does
    bits = _generate(loaded, seed=0)
    assert torch.equal(bits, _generate(loaded, seed=0))
    assert torch.equal(bits, _generate(q, seed=0))

    # within tolerance of fp32
    z, t, c = _head_inputs(trained_gen.config)
    with torch.no_grad():
        ref, out = trained_gen.head.net(z, t, c), loaded.head.net(z, t, c)
    assert ref.abs().mean() > 0.1  # the head is not the zero-init one
    assert ((out - ref).norm() / ref.norm()).item() <= XPRED_TOL[scheme]
    assert (bits == _generate(trained_gen, seed=0)).float().mean().item() >= BITS_EQUAL_MIN


def test_quantized_file_is_int8_and_smaller(trained_gen, tmp_path):
    from safetensors import safe_open

    from bitdance.checkpoint import save_pretrained

    save_pretrained(trained_gen, tmp_path / "fp32")
    q = copy.deepcopy(trained_gen)
    quantize_model(q, "int8-weight-only")
    save_quantized(q, tmp_path / "int8")
    with safe_open(str(tmp_path / "int8" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert f.get_tensor("layers.0.feed_forward.w1.weight_int8").dtype == torch.int8
    assert "layers.0.feed_forward.w1.weight" not in keys
    a = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    b = (tmp_path / "int8" / "model.safetensors").stat().st_size
    assert b < 0.6 * a  # tiny model: embeddings and 16-bit-wide layers stay fp32


def test_unknown_scheme_is_refused_by_name(trained_gen, tmp_path):
    q = copy.deepcopy(trained_gen)
    quantize_model(q, "int8-weight-only")
    save_quantized(q, tmp_path / "gen")
    path = tmp_path / "gen" / "config.json"
    config = json.loads(path.read_text())
    config["quantization"]["scheme"] = "int4-awq"
    path.write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"'int4-awq'.*supported: \['int8-weight-only', 'int8-dynamic'\]"
    ):
        load_quantized(tmp_path / "gen", config, "cpu")
    with pytest.raises(CheckpointError, match="int4-awq"):
        load_component(tmp_path / "gen")
    config["quantization"] = {"scheme": "int8-dynamic", "modules": ["layers.0.nope"]}
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="layers.0.nope"):
        load_component(tmp_path / "gen")


def test_int8_dynamic_refuses_other_devices(trained_gen, tmp_path):
    q = copy.deepcopy(trained_gen)
    quantize_model(q, "int8-dynamic")
    save_quantized(q, tmp_path / "gen")
    with pytest.raises(CheckpointError, match="CPU only"):
        load_quantized(tmp_path / "gen", read_config(tmp_path / "gen"), "meta")


def test_bad_requests_raise_value_errors(trained_gen):
    with pytest.raises(ValueError, match="supported"):
        quantize_model(copy.deepcopy(trained_gen), "int4")
    with pytest.raises(ValueError, match="no Linear layer matches"):
        quantize_model(copy.deepcopy(trained_gen), "int8-dynamic", patterns=["nothing.*"])
    q = copy.deepcopy(trained_gen)
    quantize_model(q, "int8-dynamic")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(q, "int8-dynamic")


def test_match_everything_keeps_dtype_read_layers_float():
    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_preset("tiny-text")
    names = quantize_model(pipe.generator, "int8-weight-only", patterns=["*"])["modules"]
    assert "head.net.input_proj" in names
    assert not {"proj_in.w1", "text_proj", "head.net.time_embed.mlp.0"} & set(names)
    assert pipe(prompt="a red sneaker", num_sampling_steps=2, output_type="bits").bits.shape == (1, 16, 4, 4)


# ----------------------------------------------------------------------------- pipeline + decoder


def test_pipeline_folder_round_trip_and_no_half_written_output(tmp_path):
    from bitdance.pipeline import BitDancePipeline

    pipe = quantize_pipeline(BitDancePipeline.from_preset("tiny-text"), "int8-dynamic", decoder="int8")
    out = save_quantized_pipeline(pipe, tmp_path / "q")
    assert read_config(out / "tokenizer")["quantization"]["scheme"] == "int8-weight-only"
    loaded = load_pipeline(out)
    kw = {"prompt": "a red sneaker", "num_sampling_steps": 3, "output_type": "pt", "seed": 4}
    a, b = pipe(**kw), loaded(**kw)
    assert torch.equal(a.bits, b.bits) and torch.equal(a.images, b.images)
    assert loaded.model_hash == pipe.model_hash
    with pytest.raises(ValueError, match="not empty"):
        save_quantized_pipeline(pipe, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]  # no temp folders left behind


def test_decoder_int8_weights_barely_change_images(tiny_tok):
    from bitdance.evaluation.metrics import psnr
    from bitdance.quantization.model import DECODER_PATTERNS

    q = copy.deepcopy(tiny_tok)
    names = quantize_model(q, "int8-weight-only", DECODER_PATTERNS)["modules"]
    assert "decoder.conv_in" not in names and "decoder.conv_out" not in names
    g = torch.Generator().manual_seed(0)
    bits = torch.where(torch.rand(2, 16, 4, 4, generator=g) > 0.5, 1.0, -1.0)
    with torch.no_grad():
        assert psnr(q.decode(bits), tiny_tok.decode(bits)) > 35.0


def test_encoder_int8_keeps_the_bits_and_the_whole_pipeline_round_trips(tiny_tok, tmp_path):
    from bitdance.pipeline import BitDancePipeline
    from bitdance.quantization.model import ENCODER_PATTERNS

    q = copy.deepcopy(tiny_tok)
    names = quantize_model(q, "int8-weight-only", ENCODER_PATTERNS)["modules"]
    assert names and all(n.startswith("encoder.") for n in names)
    assert "encoder.conv_in" not in names and "encoder.conv_out" not in names  # conv_out's signs are the bits
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        equal = (q.encode(images) == tiny_tok.encode(images)).float().mean().item()
    assert equal > 0.97, equal
    with pytest.raises(ValueError, match="encoder must be 'fp32' or 'int8'"):
        quantize_pipeline(BitDancePipeline.from_preset("tiny-text"), "int8-dynamic", "int8", encoder="int4")

    pipe = quantize_pipeline(
        BitDancePipeline.from_preset("tiny-text"), "int8-dynamic", "int8", encoder="int8"
    )
    mods = pipe.tokenizer.quantization["modules"]
    assert any(m.startswith("encoder.") for m in mods) and any(m.startswith("decoder.") for m in mods)
    loaded = load_pipeline(save_quantized_pipeline(pipe, tmp_path / "q"))
    kw = {"prompt": "a red sneaker", "num_sampling_steps": 2, "output_type": "pt", "seed": 2}
    image = pipe(**kw).images[0]
    a = pipe.edit(image, box=(0, 0, 8, 8), **kw)
    b = loaded.edit(image, box=(0, 0, 8, 8), **kw)
    assert torch.equal(a.bits, b.bits) and torch.equal(a.images, b.images)


def test_a_tokenizer_part_with_nothing_to_quantize_is_named_and_nothing_changes():
    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_preset("tiny-text")
    pipe.tokenizer.encoder.down, pipe.tokenizer.encoder.mid_block = nn.ModuleList(), nn.ModuleList()
    with pytest.raises(ValueError, match="no encoder convolutions to quantize.*--encoder fp32"):
        quantize_pipeline(pipe, "int8-dynamic", "int8", encoder="int8")
    assert not getattr(pipe.generator, "quantization", None)  # refused before anything was swapped
    assert quantize_pipeline(pipe, "int8-dynamic", "int8").tokenizer.quantization["modules"]
