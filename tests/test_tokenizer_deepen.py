"""Deepening a trained decoder: new res blocks start as exact identities; training then uses them."""

import pytest
import torch

from bitdance.checkpoint import from_pretrained, save_pretrained
from bitdance.core.configs import TokenizerConfig, get_preset
from bitdance.tokenizer.autoencoder import BinaryAutoencoder
from bitdance.tokenizer.deepen import deepen_decoder


def _tiny() -> BinaryAutoencoder:
    torch.manual_seed(0)
    model = BinaryAutoencoder(get_preset("tokenizer", "tiny")).eval()
    with torch.no_grad():  # non-trivial norms so an identity claim is not an accident of the init
        for m in model.modules():
            if isinstance(m, torch.nn.GroupNorm) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def test_deepened_decoder_decodes_every_code_the_same(tmp_path):
    model = _tiny()
    deeper = deepen_decoder(model, 3)
    assert deeper.config.decoder_res_blocks == 3 and deeper.config.num_res_blocks == 1
    assert len(deeper.decoder.mid_block) == 3 and all(len(level.block) == 3 for level in deeper.decoder.up)
    assert len(deeper.encoder.mid_block) == 1  # the encoder is not touched
    n_old = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in deeper.parameters()) > n_old
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    bits = model.encode(images)
    assert torch.equal(deeper.encode(images), bits)
    assert torch.equal(deeper.decode(bits), model.decode(bits))
    # the config round trip builds the deeper architecture again
    save_pretrained(deeper, tmp_path / "deep")
    again = from_pretrained(tmp_path / "deep")
    assert again.config.decoder_res_blocks == 3
    assert torch.equal(again.decode(bits), model.decode(bits))


def test_deepened_blocks_learn(tmp_path):
    """The zero-initialised convolution gets a gradient, so the new blocks are trainable capacity."""
    deeper = deepen_decoder(_tiny(), 2).train()
    bits = torch.sign(torch.randn(2, 16, 4, 4))
    deeper.decode(bits).square().mean().backward()
    new_conv = deeper.decoder.up[0].block[1].conv2.weight
    assert torch.count_nonzero(new_conv) == 0 and new_conv.grad.abs().sum() > 0


def test_deepen_only_grows():
    model = _tiny()
    with pytest.raises(ValueError, match="can only grow.*>= 1"):
        deepen_decoder(model, 0)
    with pytest.raises(ValueError, match="can only grow"):
        deepen_decoder(deepen_decoder(model, 3), 2)
    same = deepen_decoder(model, 1)
    assert same.config.decoder_res_blocks is None
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values()))


def test_decoder_res_blocks_config_is_checked():
    with pytest.raises(ValueError, match="decoder_res_blocks must be >= 1"):
        TokenizerConfig(decoder_res_blocks=0)
    # configs written before the field existed load with the old architecture
    old = get_preset("tokenizer", "tiny").to_dict()
    del old["decoder_res_blocks"]
    assert TokenizerConfig.from_dict(old).decoder_blocks == 1
