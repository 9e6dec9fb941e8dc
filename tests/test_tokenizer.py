import pytest
import torch

from bitdance.core.configs import TokenizerConfig
from bitdance.tokenizer.autoencoder import BinaryAutoencoder, depth_to_space
from bitdance.tokenizer.quantizer import binarize_ste, bits_to_index, entropy_losses, index_to_bits


def test_bits_are_exactly_pm1(tiny_tok):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    bits = tiny_tok.encode(x)
    assert bits.shape == (2, 16, 4, 4)
    assert set(bits.unique().tolist()) <= {-1.0, 1.0}


def test_zero_maps_to_minus_one():
    from bitdance.tokenizer.quantizer import binarize

    assert binarize(torch.tensor([0.0, 1e-9, -1e-9])).tolist() == [-1.0, 1.0, -1.0]


@pytest.mark.parametrize("d", [1, 8, 16, 32, 63])
def test_bits_index_round_trip(d):
    bits = torch.randint(0, 2, (5, 7, d)).float() * 2 - 1
    idx = bits_to_index(bits)
    assert idx.dtype == torch.int64 and idx.shape == (5, 7)
    assert torch.equal(index_to_bits(idx, d), bits)


def test_index_is_little_endian():
    bits = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    assert bits_to_index(bits).item() == 1 + 8


def test_index_rejects_bad_values():
    with pytest.raises(ValueError, match="only -1 and \\+1"):
        bits_to_index(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="63 bits"):
        bits_to_index(torch.ones(1, 64))
    with pytest.raises(ValueError, match=r"\[0, 2\^4\)"):
        index_to_bits(torch.tensor([16]), 4)


def test_straight_through_gradient_flows(tiny_tok):
    h = torch.randn(2, 16, 4, 4, requires_grad=True)
    q = binarize_ste(h)
    assert torch.equal(q.detach().abs(), torch.ones_like(q))
    (q * torch.arange(16.0)[None, :, None, None]).sum().backward()
    assert torch.allclose(h.grad, torch.arange(16.0)[None, :, None, None].expand_as(h))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    tiny_tok.train()
    rec, q, h = tiny_tok(x)
    rec.pow(2).mean().backward()
    assert tiny_tok.encoder.conv_in.weight.grad.abs().sum() > 0


def test_entropy_loss_finite_and_sensible():
    h = torch.randn(4, 16, 4, 4, requires_grad=True)
    losses = entropy_losses(h, group_size=8)
    for v in (losses.entropy, losses.per_sample_entropy, losses.codebook_entropy, losses.commitment):
        assert torch.isfinite(v)
    losses.entropy.backward()
    assert torch.isfinite(h.grad).all()
    # codebook entropy is bounded by log(2^8)
    assert losses.codebook_entropy <= torch.log(torch.tensor(256.0)) + 1e-4
    with pytest.raises(ValueError, match="divisible"):
        entropy_losses(torch.randn(1, 12, 2, 2), group_size=8)


def test_bad_image_size_raises(tiny_tok):
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny_tok.encode(torch.zeros(1, 3, 18, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny_tok.encode(torch.zeros(3, 16, 16))


def test_decode_rejects_non_bits(tiny_tok):
    with pytest.raises(ValueError, match="only -1 and \\+1"):
        tiny_tok.decode(torch.rand(1, 16, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 16, h, w\)"):
        tiny_tok.decode(torch.ones(1, 8, 4, 4))


def test_decode_shape_and_noise_injected_variant():
    cfg = TokenizerConfig(ch=32, ch_mult=(1, 2, 2), z_channels=8, gan_decoder=True)
    ae = BinaryAutoencoder(cfg).eval()
    bits = ae.encode(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert bits.shape == (1, 8, 8, 8)
    a = ae.decode(bits, generator=torch.Generator().manual_seed(1))
    b = ae.decode(bits, generator=torch.Generator().manual_seed(1))
    c = ae.decode(bits, generator=torch.Generator().manual_seed(2))
    assert a.shape == (1, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_depth_to_space_is_dcr_not_pixel_shuffle():
    x = torch.arange(2 * 8 * 2 * 3, dtype=torch.float32).view(2, 8, 2, 3)
    out = depth_to_space(x, 2)
    c_prime = 2
    for r in range(2):
        for s in range(2):
            assert torch.equal(out[:, :, r::2, s::2], x[:, (2 * r + s) * c_prime : (2 * r + s + 1) * c_prime])
    assert not torch.equal(out, torch.nn.functional.pixel_shuffle(x, 2))


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("z_channels", 300, "1..256"),
        ("entropy_group_size", 12, "entropy_group_size"),
        ("ch", 48, "norm_groups"),
    ],
)
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        TokenizerConfig(**{field: value})


@pytest.mark.parametrize("ch_mult,down", [((1, 1, 1), 4), ((1, 1, 1, 1, 1, 1), 32)])
def test_downsampling_from_config(ch_mult, down):
    ae = BinaryAutoencoder(TokenizerConfig(ch=32, ch_mult=ch_mult, z_channels=8)).eval()
    assert ae.downsample == down
    assert ae.encode(torch.zeros(1, 3, 64, 64)).shape == (1, 8, 64 // down, 64 // down)
