import json

import pytest
import torch

from bitdance.checkpoint import CheckpointError, from_pretrained, load_into, save_pretrained
from bitdance.core.configs import GeneratorConfig, get_preset
from bitdance.core.random import PerItemSource
from bitdance.sampling.decode import SamplingOptions, generate_bits


def test_round_trip_reproduces_outputs_bit_for_bit(tmp_path, tiny_gen, tiny_tok):
    save_pretrained(tiny_gen, tmp_path / "gen")
    save_pretrained(tiny_tok, tmp_path / "tok")
    gen2 = from_pretrained(tmp_path / "gen")
    tok2 = from_pretrained(tmp_path / "tok")
    assert json.loads((tmp_path / "gen" / "config.json").read_text())["kind"] == "generator"
    opts = SamplingOptions(num_sampling_steps=3, guidance_scale=2.0)
    a = generate_bits(tiny_gen, torch.tensor([1]), opts, PerItemSource([torch.Generator().manual_seed(0)]))
    b = generate_bits(gen2, torch.tensor([1]), opts, PerItemSource([torch.Generator().manual_seed(0)]))
    assert torch.equal(a, b)
    assert torch.equal(tiny_tok.decode(a), tok2.decode(a))
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(tiny_tok.encode_logits(x), tok2.encode_logits(x))


def test_truncated_weights_file_is_reported(tmp_path, tiny_gen):
    save_pretrained(tiny_gen, tmp_path / "gen")
    w = tmp_path / "gen" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        from_pretrained(tmp_path / "gen")


def test_mismatched_weights_name_the_key(tmp_path, tiny_gen):
    save_pretrained(tiny_gen, tmp_path / "gen")
    cfg = json.loads((tmp_path / "gen" / "config.json").read_text())
    cfg["dim"] = 128
    cfg["head_width"] = 128
    (tmp_path / "gen" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError, match=r"shape mismatch .*emb_norm.weight: expected \(128,\), got \(64,\)"
    ):
        from_pretrained(tmp_path / "gen")


def test_missing_and_unexpected_keys_are_listed(tiny_gen):
    state = dict(tiny_gen.state_dict())
    state.pop("norm.weight")
    state["bogus.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError, match=r"missing keys \['norm.weight'\].*unexpected keys \['bogus.weight'\]"
    ):
        load_into(tiny_gen, state)


def test_unknown_config_field_and_missing_files(tmp_path, tiny_gen):
    with pytest.raises(ValueError, match="unknown GeneratorConfig field"):
        GeneratorConfig.from_dict({"dimm": 3})
    with pytest.raises(CheckpointError, match="config.json not found"):
        from_pretrained(tmp_path / "nothing")
    save_pretrained(tiny_gen, tmp_path / "g")
    (tmp_path / "g" / "config.json").write_text('{"kind": "vae"}')
    with pytest.raises(CheckpointError, match="unknown component kind"):
        from_pretrained(tmp_path / "g")


def test_loading_never_unpickles(tmp_path, tiny_gen):
    # a pickle file in place of safetensors is rejected, not executed
    save_pretrained(tiny_gen, tmp_path / "g")
    torch.save({"x": torch.zeros(1)}, tmp_path / "g" / "model.safetensors")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        from_pretrained(tmp_path / "g")


@pytest.mark.parametrize("name", ["tiny", "mini", "BitDance-B-4x"])
def test_presets_instantiate_with_expected_sizes(name):
    from bitdance.generator.transformer import BitDanceTransformer

    cfg = get_preset("generator", name)
    if name == "BitDance-B-4x":
        assert (cfg.dim, cfg.n_layer, cfg.n_head, cfg.ffn_hidden, cfg.cls_token_num) == (
            768,
            24,
            12,
            2048,
            64,
        )
        return  # 260M params: shapes checked, not built in the fast suite
    with torch.device("meta"):
        n = sum(p.numel() for p in BitDanceTransformer(cfg).parameters())
    if name == "tiny":
        assert n < 1_000_000
    else:
        assert 10_000_000 <= n <= 30_000_000


def test_official_b1x_param_count_matches_reference():
    from bitdance.generator.transformer import BitDanceTransformer

    with torch.device("meta"):
        m = BitDanceTransformer(get_preset("generator", "BitDance-B-1x"))
    assert sum(p.numel() for p in m.parameters()) == 242_373_152


def test_official_tokenizer_param_count_matches_reference():
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    with torch.device("meta"):
        ae = BinaryAutoencoder(get_preset("tokenizer", "ae_d16c32"))
    assert sum(p.numel() for p in ae.encoder.parameters()) == 198_935_328
    assert sum(p.numel() for p in ae.decoder.parameters()) == 261_358_851


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Outputs written through a temp file + rename get 0o666 minus the umask, not mkstemp's 0o600."""
    import os

    from bitdance.checkpoint import atomic_write_bytes, save_state_dict

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.png", b"x")
        save_state_dict({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
