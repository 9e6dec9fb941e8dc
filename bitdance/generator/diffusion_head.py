"""Binary diffusion head: flow matching on ±1 bit vectors with x-prediction and a velocity-space loss.

t = 0 is noise, t = 1 is data; z_t = (1 - t) eps + t x. The network predicts x; velocity
v = (x_hat - z) / max(1 - t, 0.05). Module names follow the official checkpoints (`net.*`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.layers import TimestepEmbedder, modulate
from ..core.random import RandomSource

T_EPS = 0.05  # clamp of 1 - t in the velocity conversion


def _add_swiglu(block: nn.Module, dim: int) -> None:
    """SwiGLU MLP (hidden 1.5*dim, with biases) stored as `w1`/`w2` on the block (official key names)."""
    hidden = int(1.5 * dim)
    block.w1 = nn.Linear(dim, 2 * hidden)
    block.w2 = nn.Linear(hidden, dim)


def _swiglu(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    a, b = block.w1(x).chunk(2, dim=-1)
    return block.w2(F.silu(a) * b)


class HeadAttention(nn.Module):
    """Bidirectional MHSA across the P tokens of a patch (no mask, no positional encoding)."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.n_head = dim // head_dim
        self.wqkv = nn.Linear(dim, 3 * dim)
        self.wo = nn.Linear(dim, dim)

    def forward(self, x_nPD: torch.Tensor) -> torch.Tensor:
        n, p, d = x_nPD.shape
        qkv = self.wqkv(x_nPD).view(n, p, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.wo(out.transpose(1, 2).reshape(n, p, d))


class MlpBlock(nn.Module):
    """Per-token residual block: LN -> modulate -> SwiGLU -> gated residual (3 modulation vectors)."""

    n_mod = 3

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        _add_swiglu(self, dim)

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        scale, shift, gate = mod.chunk(3, dim=-1)  # official order
        return x + gate * _swiglu(self, modulate(self.norm(x), shift, scale))


class AttnBlock(nn.Module):
    """Joint block: attention across the patch then SwiGLU, both adaLN-modulated and gated."""

    n_mod = 6

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = HeadAttention(dim, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        _add_swiglu(self, dim)

    def forward(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        c1, s1, g1, c2, s2, g2 = mod.chunk(6, dim=-1)  # (scale, shift, gate) x 2, official order
        x = x + g1 * self.attn(modulate(self.norm1(x), s1, c1))
        return x + g2 * _swiglu(self, modulate(self.norm2(x), s2, c2))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_ln_modulation = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.modulated(x, self.ada_ln_modulation(y))

    def modulated(self, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        """The layer with its modulation `mod` = ada_ln_modulation(y) given (…, 2 dim)."""
        scale, shift = mod.chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class HeadNet(nn.Module):
    """x-prediction network: net(z (n, P, C), t (n,), cond (n, P, Dc)) -> x_hat (n, P, C)."""

    def __init__(
        self,
        bits: int,
        cond_dim: int,
        dim: int,
        depth: int,
        adaln_groups: int,
        block: str,
        head_dim: int,
        bounded: bool,
    ) -> None:
        super().__init__()
        self.bounded = bounded
        self.time_embed = TimestepEmbedder(dim)
        self.cond_embed = nn.Linear(cond_dim, dim)
        self.input_proj = nn.Linear(bits, dim)
        cls = AttnBlock if block == "attention" else MlpBlock
        self.res_blocks = nn.ModuleList([cls(dim, head_dim) for _ in range(depth)])
        self.blocks_per_adaln = depth // adaln_groups
        self.ada_ln_blocks = nn.ModuleList([nn.Linear(dim, cls.n_mod * dim) for _ in range(adaln_groups)])
        self.final_layer = FinalLayer(dim, bits)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.time_embed.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        for lin in [*self.ada_ln_blocks, self.final_layer.ada_ln_modulation, self.final_layer.linear]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(
        self, z_nPC: torch.Tensor, t_n: torch.Tensor, cond_nPD: torch.Tensor, tile: int = 1
    ) -> torch.Tensor:
        """`tile` > 1: `cond` holds n / tile rows; row r stands for rows r + j * n / tile (embedded once)."""
        cemb = self.cond_embed(cond_nPD)
        if tile > 1:
            cemb = cemb.repeat(tile, *([1] * (cemb.dim() - 1)))
        return self.body(self.input_proj(z_nPC), self.time_embed(t_n)[:, None, :], cemb)

    def body(self, x_nPD: torch.Tensor, temb: torch.Tensor, cemb_nPD: torch.Tensor) -> torch.Tensor:
        """The network after its three input projections: x = input_proj(z) (n, P, dim), temb =
        time_embed(t) broadcastable to (n, P, dim), cemb = cond_embed(cond) (n, P, dim) -> x_hat (n, P, C).

        Samplers that hold the condition fixed over many steps compute `temb` / `cemb` once."""
        return self.body_modulated(x_nPD, *self.modulations(temb, cemb_nPD))

    def modulations(
        self, temb: torch.Tensor, cemb_nPD: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The adaLN modulations of the blocks and of the final layer, a function of (t, cond) only:
        ([lin(y) (…, n_mod dim) per adaLN group], final_layer.ada_ln_modulation(y) (…, 2 dim)), y =
        silu(temb + cemb). Samplers that know every head time in advance compute them for all at once."""
        y = F.silu(temb + cemb_nPD)
        return [lin(y) for lin in self.ada_ln_blocks], self.final_layer.ada_ln_modulation(y)

    def body_modulated(
        self, x_nPD: torch.Tensor, mods: list[torch.Tensor], final: torch.Tensor
    ) -> torch.Tensor:
        """`body` with its modulations given (see `modulations`) -> x_hat (n, P, C)."""
        x = x_nPD
        for i, blk in enumerate(self.res_blocks):
            x = blk(x, mods[i // self.blocks_per_adaln])
        out = self.final_layer.modulated(x, final)
        return 2 * torch.sigmoid(out) - 1 if self.bounded else out


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SANA-style time shift t' = (1/s) / ((1/s) + (1/t - 1)); identity for s = 1; keeps t = 0 at 0."""
    if shift == 1.0:
        return t
    inv = 1.0 / shift
    return torch.where(t > 0, inv / (inv + (1.0 / t.clamp_min(1e-12) - 1.0)), torch.zeros_like(t))


def to_velocity(x_hat: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v = (x_hat - z) / max(1 - t, 0.05); t broadcast from (n,) (fp32)."""
    denom = (1 - t.float()).clamp_min(T_EPS).view(-1, *([1] * (z.dim() - 1)))
    return (x_hat.float() - z.float()) / denom


class DiffusionHead(nn.Module):
    """Training loss + network; sampling lives in `bitdance.sampling.solvers`."""

    def __init__(
        self,
        bits: int,
        cond_dim: int,
        dim: int,
        depth: int,
        adaln_groups: int = 1,
        block: str = "attention",
        head_dim: int = 64,
        bounded: bool = False,
        P_mean: float = -0.8,
        P_std: float = 0.8,
        time_shift: float = 1.0,
        diff_batch_mul: int = 1,
    ) -> None:
        super().__init__()
        self.bits = bits
        self.P_mean, self.P_std, self.time_shift = P_mean, P_std, time_shift
        self.diff_batch_mul = diff_batch_mul
        self.net = HeadNet(bits, cond_dim, dim, depth, adaln_groups, block, head_dim, bounded)

    def loss(
        self,
        x_nPC: torch.Tensor,
        cond_nPD: torch.Tensor,
        rng: RandomSource,
        reduce: bool = True,
        embed_once: bool = False,
    ) -> torch.Tensor:
        """Velocity-space MSE. Rows are tiled `diff_batch_mul` times (copy j of row r is r + j*n).

        Draws: normal (n*m,) for logit-normal t, then eps (n*m, P, C). `embed_once`: run `cond_embed` on
        the n rows before tiling instead of on the n*m tiled rows (the same values; its gradient is the
        sum over the copies either way, so only float summation order differs).
        """
        m = self.diff_batch_mul
        tile = (m, *([1] * (x_nPC.dim() - 1)))
        x = x_nPC.repeat(tile).float()
        t = torch.sigmoid(rng.randn((x.shape[0],)).to(x.device) * self.P_std + self.P_mean)
        t = shift_time(t, self.time_shift)
        eps = rng.randn(tuple(x.shape)).to(x.device)
        tb = t.view(-1, *([1] * (x.dim() - 1)))
        z = (1 - tb) * eps + tb * x
        if embed_once:
            x_hat = self.net(z.to(cond_nPD.dtype), t, cond_nPD, tile=m)
        else:
            cond = cond_nPD.repeat(tile)
            x_hat = self.net(z.to(cond.dtype), t, cond)
        err = (to_velocity(x_hat, z, t) - to_velocity(x, z, t)) ** 2
        return err.mean() if reduce else err.mean(-1)

    def forward(self, x_nPC: torch.Tensor, cond_nPD: torch.Tensor, rng: RandomSource) -> torch.Tensor:
        return self.loss(x_nPC, cond_nPD, rng)
