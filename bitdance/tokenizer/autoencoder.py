"""Binary autoencoder: conv encoder -> sign() -> conv decoder with adaptive GroupNorm.

Module names follow the official checkpoint layout (`encoder.down.{i}.block.{j}...`) so official
weights load with an identity key map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.configs import TokenizerConfig
from .quantizer import binarize, binarize_ste, check_bits


def _norm(ch: int, groups: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(groups, ch, eps=1e-6, affine=affine)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm2 = _norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.nin_shortcut(x) if self.nin_shortcut is not None else x
        return skip + h


class _Level(nn.Module):
    """One resolution level: res blocks + optional resampler (named as in the official checkpoints)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)


def depth_to_space(x: torch.Tensor, bs: int) -> torch.Tensor:
    """DCR depth-to-space: out[b, c, bs*i+r, bs*j+s] = in[b, (bs*r+s)*C' + c, i, j] (not PixelShuffle)."""
    b, c, h, w = x.shape
    cp = c // (bs * bs)
    x = x.view(b, bs, bs, cp, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, cp, h * bs, w * bs)


class Upsampler(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, 4 * ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv1(x), 2)


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine, modulated by the code's per-channel std (scale) and mean (bias)."""

    def __init__(self, z_channels: int, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(ch, groups, affine=False)
        self.gamma = nn.Linear(z_channels, ch)
        self.beta = nn.Linear(z_channels, ch)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zf = z.flatten(2)
        scale = self.gamma(zf.var(-1, unbiased=True).add(1e-6).sqrt())[:, :, None, None]
        bias = self.beta(zf.mean(-1))[:, :, None, None]
        return self.norm(x) * scale + bias


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        g, ch = cfg.norm_groups, cfg.ch
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1, bias=False)
        in_mult = (1,) + tuple(cfg.ch_mult)
        self.down = nn.ModuleList()
        for i, mult in enumerate(cfg.ch_mult):
            cin, cout = ch * in_mult[i], ch * mult
            blocks: list[nn.Module] = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(cin, cout, g))
                cin = cout
            level = _Level(blocks)
            if i < len(cfg.ch_mult) - 1:
                level.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1)
            self.down.append(level)
        top = ch * cfg.ch_mult[-1]
        self.mid_block = nn.ModuleList([ResBlock(top, top, g) for _ in range(cfg.num_res_blocks)])
        self.norm_out = _norm(top, g)
        self.conv_out = nn.Conv2d(top, cfg.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for blk in level.block:
                h = blk(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        for blk in self.mid_block:
            h = blk(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        g, ch, z = cfg.norm_groups, cfg.ch, cfg.z_channels
        self.gan_decoder = cfg.gan_decoder
        top = ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(2 * z if cfg.gan_decoder else z, top, 3, padding=1)
        self.mid_block = nn.ModuleList([ResBlock(top, top, g) for _ in range(cfg.decoder_blocks)])
        levels = len(cfg.ch_mult)
        out_mult = tuple(cfg.ch_mult[1:]) + (cfg.ch_mult[-1],)
        up: list[nn.Module] = [None] * levels  # type: ignore[list-item]
        adaptive: list[nn.Module] = [None] * levels  # type: ignore[list-item]
        for i in reversed(range(levels)):
            cin, cout = ch * out_mult[i], ch * cfg.ch_mult[i]
            adaptive[i] = AdaptiveGroupNorm(z, cin, g)
            blocks: list[nn.Module] = []
            for _ in range(cfg.decoder_blocks):
                blocks.append(ResBlock(cin, cout, g))
                cin = cout
            level = _Level(blocks)
            if i > 0:
                level.upsample = Upsampler(cout)
            up[i] = level
        self.up = nn.ModuleList(up)
        self.adaptive = nn.ModuleList(adaptive)
        self.norm_out = _norm(ch * cfg.ch_mult[0], g)
        self.conv_out = nn.Conv2d(ch * cfg.ch_mult[0], cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.gan_decoder:
            if noise is None:
                raise ValueError("the noise-injected decoder needs `noise` (same shape as the code)")
            h = self.conv_in(torch.cat([z, noise], dim=1))
        else:
            h = self.conv_in(z)
        for blk in self.mid_block:
            h = blk(h)
        for i in reversed(range(len(self.up))):
            h = self.adaptive[i](h, z)
            for blk in self.up[i].block:
                h = blk(h)
            if hasattr(self.up[i], "upsample"):
                h = self.up[i].upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class BinaryAutoencoder(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] <-> bits (B, d, H/f, W/f) in {-1, +1}."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @property
    def downsample(self) -> int:
        return self.config.downsample

    def check_images(self, images: torch.Tensor) -> None:
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != self.config.in_channels:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"images must be a (B, {self.config.in_channels}, H, W) tensor, got {shape}")
        f = self.downsample
        if images.shape[2] % f or images.shape[3] % f:
            raise ValueError(
                f"image size {images.shape[2]}x{images.shape[3]} is not divisible by the tokenizer's "
                f"downsampling factor {f}; use sizes that are multiples of {f}"
            )

    def encode_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Pre-quantization latents h (B, d, h, w)."""
        self.check_images(images)
        return self.encoder(images)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> bits (B, d, H/f, W/f), exactly ±1."""
        return binarize(self.encode_logits(images))

    def decode(
        self, bits: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Bits (B, d, h, w) -> images (B, 3, h*f, w*f), nominally in [-1, 1] (not clamped)."""
        if not torch.is_tensor(bits) or bits.ndim != 4 or bits.shape[1] != self.config.z_channels:
            shape = tuple(bits.shape) if torch.is_tensor(bits) else type(bits).__name__
            raise ValueError(f"bits must be a (B, {self.config.z_channels}, h, w) tensor, got {shape}")
        check_bits(bits)
        bits = bits.to(self.decoder.conv_in.weight.dtype)
        if self.config.gan_decoder and noise is None:
            noise = torch.randn(bits.shape, generator=generator, device=bits.device, dtype=bits.dtype)
        return self.decoder(bits, noise)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward: (reconstruction, straight-through bits, pre-quantization h)."""
        h = self.encode_logits(images)
        q = binarize_ste(h)
        noise = torch.randn_like(q) if self.config.gan_decoder else None
        return self.decoder(q, noise), q, h
