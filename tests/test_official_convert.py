"""Converters: CLI, strictness (missing / extra / mis-shaped keys), refusing pickled code, config sources,
save/load round trips, and synthetic official-format checkpoints with P = 16 on a non-square grid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bitdance.checkpoint import CheckpointError, from_pretrained
from bitdance.convert import convert_main, export_key_map, load_official_imagenet, load_official_tokenizer
from bitdance.convert.keymaps import IMAGENET_RULES, imagenet_official_keys
from bitdance.convert.official_configs import OFFICIAL_CFG_SCALES
from bitdance.convert.parity import fixture_dir, single_thread
from bitdance.core.configs import GeneratorConfig, TokenizerConfig, get_preset
from bitdance.generator.patches import order_for, to_sequence
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.sampling.decode import SamplingOptions, generate_bits
from bitdance.tokenizer.autoencoder import BinaryAutoencoder

pytestmark = pytest.mark.official


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_thread():
        yield


FIX = fixture_dir(Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "official")
C2I = ["c2i_1x", "c2i_parallel"]


class NotATensor:  # any custom class makes a checkpoint unloadable with weights_only=True
    def __init__(self) -> None:
        self.payload = "code"


def _need(*names: str) -> None:
    missing = [n for n in names if not (FIX / n).is_file()]
    if missing:
        pytest.skip(f"official fixture files {missing} not found in {FIX} (set BITDANCE_OFFICIAL_FIXTURES)")


def _ema(name: str) -> dict[str, torch.Tensor]:
    return dict(torch.load(FIX / f"{name}.pt", weights_only=True)["ema"])


def _args(name: str) -> dict:
    return json.loads((FIX / f"{name}_args.json").read_text())


def _hidden(gen: BitDanceTransformer, seed: int = 0) -> torch.Tensor:
    cfg = gen.config
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (2, cfg.num_tokens, cfg.latent_bits), generator=g).float() * 2 - 1
    labels = torch.tensor([0, cfg.num_classes])
    with torch.no_grad():
        return gen.teacher_forced_hidden(labels, bits, cfg.grid_size, cfg.parallel_num)


# ----------------------------------------------------------------------------- CLI


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        convert_main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--kind",
        "--config",
        "--grid",
        "--n-head",
        "--weights",
        "--tokenizer",
        "--tokenizer-config",
        "--llm",
        "--check",
        "--overwrite",
        "--quiet",
        *OFFICIAL_CFG_SCALES,
    ):
        assert flag in text


@pytest.mark.parametrize("name", C2I)
def test_cli_converts_imagenet_to_a_pipeline_folder(name, tmp_path, capsys):
    _need(f"{name}.pt", f"{name}_args.json")
    out = tmp_path / "conv"
    assert convert_main([str(FIX / f"{name}.pt"), str(out), "--config", str(FIX / f"{name}_args.json")]) == 0
    text = capsys.readouterr().out
    n = len(_ema(name))
    assert f"mapped {n} of {n} official keys" in text and "prefix layers" in text
    assert "generator config: args JSON" in text
    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_pretrained(out)
    ref = load_official_imagenet(FIX / f"{name}.pt", config=FIX / f"{name}_args.json")
    assert torch.equal(_hidden(pipe.generator), _hidden(ref.generator))
    assert pipe.defaults["guidance_schedule"] == "linear"
    assert json.loads((out / "conversion.json").read_text())["config_sources"]["tokenizer"]
    # a second run refuses to overwrite
    assert convert_main([str(FIX / f"{name}.pt"), str(out), "--config", str(FIX / f"{name}_args.json")]) == 2


def test_cli_tokenizer_and_check_mode(tmp_path, capsys):
    _need("ae.safetensors", "ae_config.json")
    assert (
        convert_main([str(FIX / "ae.safetensors"), "--check", "--config", str(FIX / "ae_config.json")]) == 0
    )
    assert "checked (nothing written)" in capsys.readouterr().out
    assert (
        convert_main(
            [str(FIX / "ae.safetensors"), str(tmp_path / "o"), "--config", str(FIX / "ae_config.json")]
        )
        == 0
    )
    tok = from_pretrained(tmp_path / "o" / "tokenizer")
    ref = load_official_tokenizer(FIX / "ae.safetensors", FIX / "ae_config.json")
    side = 4 * ref.downsample  # a 4x4 latent grid at the checkpoint's own downsampling factor
    x = torch.rand(1, ref.config.in_channels, side, side) * 2 - 1
    with torch.no_grad():
        assert torch.equal(tok.encode(x), ref.encode(x))
        bits = tok.encode(x)
        noise = torch.randn(bits.shape) if tok.config.gan_decoder else None  # noise-injected decoders
        assert torch.equal(tok.decode(bits, noise=noise), ref.decode(bits, noise=noise))
    assert convert_main([str(tmp_path / "missing.pt"), "--check"]) == 2


# ----------------------------------------------------------------------------- strictness


@pytest.mark.parametrize("edit", ["missing", "extra", "shape"])
def test_bad_official_file_names_the_key(edit, tmp_path):
    _need("c2i_parallel.pt", "c2i_parallel_args.json")
    state = _ema("c2i_parallel")
    key = "layers.1.attention.wo.weight"
    if edit == "missing":
        del state[key]
    elif edit == "extra":
        key = "layers.1.attention.bias_we_never_had"
        state[key] = torch.zeros(3)
    else:
        state[key] = torch.zeros(5, 5)
    torch.save({"ema": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")) as e:
        load_official_imagenet(tmp_path / "bad.pt", config=FIX / "c2i_parallel_args.json")
    assert {"missing": "missing keys", "extra": "unexpected keys", "shape": "shape mismatch"}[edit] in str(
        e.value
    )


def test_bad_tokenizer_file_names_the_key(tmp_path):
    _need("ae.safetensors", "ae_config.json")
    from safetensors.torch import load_file, save_file

    state = load_file(str(FIX / "ae.safetensors"))
    del state["decoder.conv_out.bias"]
    save_file(state, str(tmp_path / "ae.safetensors"))
    with pytest.raises(CheckpointError, match=r"decoder\.conv_out\.bias"):
        load_official_tokenizer(tmp_path / "ae.safetensors", FIX / "ae_config.json")


def test_pickled_code_is_refused(tmp_path):
    state = {"w": torch.zeros(2)}
    for i, bad in enumerate([NotATensor(), print]):
        torch.save({"ema": state, "extra": bad}, tmp_path / f"evil{i}.pt")
        with pytest.raises(CheckpointError, match="pickled Python objects"):
            load_official_imagenet(tmp_path / f"evil{i}.pt")


def test_training_checkpoint_entries_are_ignored(tmp_path):
    _need("c2i_1x.pt", "c2i_1x_args.json")
    ck = torch.load(FIX / "c2i_1x.pt", weights_only=True)
    ck.update(
        optimizer={"state": {0: {"step": torch.tensor(3.0)}}}, epochs=50, args=argparse.Namespace(lr=6e-4)
    )
    torch.save(ck, tmp_path / "train.pt")
    conv = load_official_imagenet(tmp_path / "train.pt", config=FIX / "c2i_1x_args.json")
    assert conv.report.coverage[0].ignored_entries == ["args", "epochs", "model", "optimizer"]


# ----------------------------------------------------------------------------- config sources


@pytest.mark.parametrize("name", C2I)
def test_config_inferred_from_shapes_matches_args(name):
    _need(f"{name}.pt", f"{name}_args.json")
    kwargs = _args(name)["constructor_kwargs"]
    by_args = load_official_imagenet(FIX / f"{name}.pt", config=FIX / f"{name}_args.json")
    h, w = by_args.generator.config.grid_size
    grid = None if h == w else (h, w)  # only a square grid can be read from pos_for_diff
    inferred = load_official_imagenet(FIX / f"{name}.pt", n_head=kwargs["n_head"], grid=grid)
    assert inferred.report.config_sources == {
        "generator": "inferred from tensor shapes",
        "tokenizer": "inferred from tensor shapes",
    }
    a, b = by_args.generator.config, inferred.generator.config
    for f in (
        "latent_bits",
        "grid_size",
        "dim",
        "n_layer",
        "n_head",
        "num_classes",
        "cls_token_num",
        "parallel_num",
        "head_type",
        "head_width",
        "head_depth",
        "head_adaln_groups",
        "ffn_hidden",
    ):
        assert getattr(a, f) == getattr(b, f), f
    assert torch.equal(_hidden(by_args.generator), _hidden(inferred.generator))
    if kwargs["dim"] % 64 == 0:
        guess = load_official_imagenet(FIX / f"{name}.pt", grid=grid)
        assert any("assumed head_dim 64" in n for n in guess.report.notes)


def test_preset_that_does_not_fit_is_reported_by_key():
    _need("c2i_parallel.pt")
    _need("ae.safetensors")
    with pytest.raises(
        CheckpointError, match=r"shape mismatch cls_embedding\.weight: expected \(1001, 49152\)"
    ):
        load_official_imagenet(
            FIX / "c2i_parallel.pt", config="BitDance-B-4x", tokenizer=FIX / "ae.safetensors"
        )


OFFICIAL_PARAMS = {  # reference appendix A (excluding the tokenizer)
    "BitDance-B-1x": 242_373_152,
    "BitDance-B-4x": 260_100_128 + 3 * 768,
    "BitDance-L-1x": 527_271_968,
    "BitDance-H-1x": 1_007_960_352,
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_official_presets_have_official_sizes(name):
    with torch.device("meta"):
        gen = BitDanceTransformer(get_preset("generator", name))
    assert sum(p.numel() for p in gen.parameters()) == OFFICIAL_PARAMS[name]


# ----------------------------------------------------------------------------- synthetic official files


def _synthetic(
    tmp_path: Path, grid: tuple[int, int], p: int
) -> tuple[Path, BitDanceTransformer, BinaryAutoencoder]:
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        latent_bits=8,
        grid_size=grid,
        dim=64,
        n_layer=1,
        n_head=1,
        cls_token_num=2,
        num_classes=5,
        parallel_num=p,
        head_type="attention",
        head_width=64,
        head_depth=2,
    )
    gen = BitDanceTransformer(cfg).eval()
    with torch.no_grad():
        for prm in gen.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
    tok = BinaryAutoencoder(
        TokenizerConfig(ch=32, ch_mult=(1,), num_res_blocks=1, z_channels=8, entropy_group_size=8)
    ).eval()
    gs, ts = gen.state_dict(), tok.state_dict()
    ctx = {"grid": grid, "parallel_num": p}
    official = export_key_map(
        {"generator": gs, "tokenizer": ts}, IMAGENET_RULES, imagenet_official_keys(gs, ts), ctx
    )
    assert torch.equal(official["pos_for_diff.weight"], gs["pos_for_diff.weight"][order_for(grid, p)])
    torch.save({"model": official, "ema": official}, tmp_path / "synthetic.pt")
    return tmp_path / "synthetic.pt", gen, tok


@pytest.mark.parametrize("grid,p", [((4, 8), 16), ((2, 6), 4), ((3, 5), 1)])
def test_non_square_and_p16_round_trip(tmp_path, grid, p):
    path, gen, tok = _synthetic(tmp_path, grid, p)
    args = {
        "constructor_kwargs": {
            "dim": 64,
            "n_layer": 1,
            "n_head": 1,
            "latent_dim": 8,
            "diff_dim": 64,
            "diff_layers": 2,
            "diff_adanln_layers": 1,
            "cls_token_num": 2,
            "num_classes": 5,
            "parallel_num": p,
            "resolution": list(grid),
            "down_size": 1,
        },
        "vae_substitute": {"ddconfig": {"ch": 32, "ch_mult": [1], "num_res_blocks": 1, "z_channels": 8}},
    }
    conv = load_official_imagenet(path, config=args, tokenizer=None)
    assert conv.generator.config.grid_size == grid
    assert torch.equal(_hidden(conv.generator), _hidden(gen))
    inferred = load_official_imagenet(path, grid=grid, n_head=1)
    opts = SamplingOptions(
        parallel_num=p,
        num_sampling_steps=2,
        guidance_scale=2.0,
        guidance_schedule="linear",
        independent_unguided_streams=True,
    )
    labels = torch.tensor([1, 3])
    a = generate_bits(inferred.generator, labels, opts, torch.Generator().manual_seed(0))
    b = generate_bits(gen, labels, opts, torch.Generator().manual_seed(0))
    assert a.shape == (2, 8, *grid) and torch.equal(a, b)
    # round trip through our own folder format
    from bitdance.checkpoint import save_pretrained

    save_pretrained(conv.generator, tmp_path / "gen")
    again = from_pretrained(tmp_path / "gen")
    assert torch.equal(_hidden(again), _hidden(gen))
    seq = to_sequence(torch.ones(1, 8, *grid), p)
    assert seq.shape == (1, grid[0] * grid[1], 8)


def test_non_square_grid_needs_to_be_given(tmp_path):
    path, _, _ = _synthetic(tmp_path, (2, 6), 4)
    with pytest.raises(ValueError, match="--grid"):
        load_official_imagenet(path, n_head=1)


def test_noise_injected_tokenizer_round_trip(tmp_path):
    """`gan_decoder: true` official tokenizer: noise concatenated to the code, replayable via `noise=`."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ours = BinaryAutoencoder(
        TokenizerConfig(
            ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=8, gan_decoder=True, entropy_group_size=4
        )
    ).eval()
    save_file(
        {k: v.contiguous() for k, v in ours.state_dict().items()}, str(tmp_path / "ae_d2c8.safetensors")
    )
    dd = {
        "ch": 32,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "z_channels": 8,
        "double_z": False,
        "resolution": 16,
    }
    (tmp_path / "ae_d2c8_config.json").write_text(json.dumps({"ddconfig": dd, "gan_decoder": True}))
    tok = load_official_tokenizer(tmp_path / "ae_d2c8.safetensors")  # config found beside the weights
    assert tok.config.gan_decoder and tok.decoder.conv_in.in_channels == 16
    bits = torch.randint(0, 2, (1, 8, 4, 6)).float() * 2 - 1
    noise = torch.randn(bits.shape)
    with torch.no_grad():
        assert torch.equal(tok.decode(bits, noise=noise), ours.decode(bits, noise=noise))
    (tmp_path / "ae_d2c8_config.json").unlink()
    inferred = load_official_tokenizer(tmp_path / "ae_d2c8.safetensors")  # no config: read from shapes
    assert inferred.config.gan_decoder and inferred.config.ch_mult == (1, 2)
