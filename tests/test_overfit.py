"""A tiny tokenizer + generator memorise 8 images on CPU (the whole method end to end)."""

import torch
import torch.nn.functional as F

from bitdance.core.configs import GeneratorConfig, TokenizerConfig
from bitdance.core.random import GeneratorSource
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.sampling.decode import SamplingOptions, generate_bits
from bitdance.tokenizer.autoencoder import BinaryAutoencoder
from bitdance.tokenizer.quantizer import entropy_losses


def eight_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    imgs = torch.full((8, 3, 16, 16), -0.8)
    for i in range(8):
        colour = torch.rand(3, generator=g) * 2 - 1
        r, c = (i // 4) * 8, (i % 4) * 4
        imgs[i, :, r : r + 8, c : c + 8] = colour[:, None, None]
    return imgs


def test_tiny_tokenizer_and_generator_overfit_eight_images():
    torch.manual_seed(0)
    imgs = eight_images()
    tok = BinaryAutoencoder(TokenizerConfig(ch=32, ch_mult=(1, 1, 1), num_res_blocks=1, z_channels=16))
    opt = torch.optim.Adam(tok.parameters(), lr=2e-3)
    for _ in range(250):
        rec, q, h = tok(imgs)
        aux = entropy_losses(h, 8)
        loss = F.mse_loss(rec, imgs) + 0.1 * aux.commitment + 0.01 * aux.entropy
        opt.zero_grad()
        loss.backward()
        opt.step()
    tok.eval()
    with torch.no_grad():
        bits = tok.encode(imgs)
        recon = tok.decode(bits)
    assert F.mse_loss(recon, imgs).item() < 2e-3  # > 30 dB PSNR on [-1, 1] images

    cfg = GeneratorConfig(
        latent_bits=16,
        grid_size=(4, 4),
        dim=64,
        n_layer=2,
        n_head=2,
        ffn_multiple_of=64,
        num_classes=8,
        cls_token_num=2,
        parallel_num=4,
        head_width=64,
        head_depth=2,
        diff_batch_mul=4,
        perturb_rate=0.0,
        cond_dropout=0.0,
    )
    gen = BitDanceTransformer(cfg).train()
    opt = torch.optim.AdamW(gen.parameters(), lr=2e-3)
    rng = GeneratorSource(torch.Generator().manual_seed(1))
    labels = torch.arange(8)
    for _ in range(300):
        loss = gen.loss(bits, labels, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen.eval()
    out = generate_bits(gen, labels, SamplingOptions(num_sampling_steps=10), torch.Generator().manual_seed(0))
    assert (out == bits).float().mean().item() > 0.95
    with torch.no_grad():
        regenerated = tok.decode(out)
    assert F.mse_loss(regenerated, imgs).item() < 0.02
