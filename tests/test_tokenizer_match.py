"""`bitdance train --tokenizer`: export with a decoder-only fine-tune of the tokens' tokenizer, not others."""

import copy
import json

import pytest
import torch

from bitdance.checkpoint import from_pretrained, load_weights, save_pretrained
from bitdance.core.configs import get_preset
from bitdance.tokenizer.autoencoder import BinaryAutoencoder
from bitdance.training.tokenizer_match import check_tokenizer_for_tokens, encoder_hash
from bitdance.training.tokens import TokenStore, extract_tokens


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("match")
    torch.manual_seed(0)
    tok = BinaryAutoencoder(get_preset("tokenizer", "tiny"))
    save_pretrained(tok, root / "tok")
    tokens = extract_tokens(
        root / "tok",
        "shapes:length=16",
        root / "tokens",
        text_encoder="hash",
        text_len=8,
        text_dim=32,
        progress=False,
    )
    dec = copy.deepcopy(tok)  # what train-tokenizer --freeze-encoder produces: only decoder weights move
    with torch.no_grad():
        for p in dec.decoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_pretrained(dec, root / "dec")
    other = copy.deepcopy(tok)
    with torch.no_grad():
        next(other.encoder.parameters()).add_(0.01)
    save_pretrained(other, root / "other")
    return root, tokens


def test_header_records_the_encoder_hash_and_decoder_changes_keep_it(setup):
    root, tokens = setup
    header = TokenStore(tokens).header
    tok, dec, other = (from_pretrained(root / n) for n in ("tok", "dec", "other"))
    assert header["tokenizer"]["encoder_hash"] == encoder_hash(tok) == encoder_hash(dec)
    assert encoder_hash(other) != encoder_hash(tok)
    assert check_tokenizer_for_tokens(header, str(tokens), str(root / "dec")) is None
    with pytest.raises(ValueError, match="different encoder"):
        check_tokenizer_for_tokens(header, str(tokens), str(root / "other"))
    with pytest.raises(ValueError, match="not a folder"):
        check_tokenizer_for_tokens(header, str(tokens), str(root / "missing"))


def test_older_headers_are_checked_against_the_original_folder(setup, tmp_path):
    root, tokens = setup
    header = copy.deepcopy(TokenStore(tokens).header)
    del header["tokenizer"]["encoder_hash"]
    assert check_tokenizer_for_tokens(header, "t", str(root / "dec")) is None
    with pytest.raises(ValueError, match="different encoder"):
        check_tokenizer_for_tokens(header, "t", str(root / "other"))
    header["tokenizer"]["path"] = str(tmp_path / "gone")
    warning = check_tokenizer_for_tokens(header, "t", str(root / "dec"))
    assert warning and "cannot verify" in warning


def test_train_exports_the_given_tokenizer_and_refuses_another(setup, tmp_path, capsys):
    from bitdance.cli import main

    root, tokens = setup
    common = ["train", "--tokens", str(tokens), "--preset", "tiny-text", "--steps", "1", "--batch-size", "2",
              "--no-progress", "--sample-steps", "2"]  # fmt: skip
    rc = main([*common, "--tokenizer", str(root / "dec"), "--out", str(tmp_path / "g")])
    assert rc == 0, capsys.readouterr().err
    index = json.loads((tmp_path / "g" / "export" / "model_index.json").read_text())
    exported = load_weights(
        tmp_path / "g" / "export" / index.get("tokenizer", "tokenizer") / "model.safetensors"
    )
    wanted = load_weights(root / "dec" / "model.safetensors")
    assert exported.keys() == wanted.keys() and all(torch.equal(exported[k], wanted[k]) for k in wanted)
    # without --tokenizer the export keeps the tokenizer that made the tokens
    assert main([*common, "--out", str(tmp_path / "h")]) == 0
    plain = load_weights(tmp_path / "h" / "export" / "tokenizer" / "model.safetensors")
    assert not torch.equal(plain["decoder.conv_in.weight"], wanted["decoder.conv_in.weight"])
    capsys.readouterr()
    assert main([*common, "--tokenizer", str(root / "other"), "--out", str(tmp_path / "i")]) == 2
    assert "different encoder" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()
