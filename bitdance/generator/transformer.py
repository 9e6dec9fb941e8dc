"""Decoder-only next-patch transformer (RMSNorm, SwiGLU, 2-D RoPE, no biases) with a conditioning prefix.

Sequence layout for P tokens per step, prefix length Lp and N image tokens (generation order):
    [prefix (Lp)] [P - 1 learned queries] [tokens 0 .. N - P - 1]       length S = Lp + N - 1
Block 0 = [last prefix token, queries] predicts patch 0; the tokens of patch k - 1 predict patch k.
Attention is causal across blocks and bidirectional inside a block. Official key names are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.configs import GeneratorConfig, validate_parallel_num
from ..core.layers import (
    RMSNorm,
    SwiGLU,
    apply_rope,
    apply_rope_complex,
    rope_2d_angles,
    rope_table,
    sincos_2d,
)
from ..core.random import RandomSource
from .diffusion_head import DiffusionHead
from .kv_cache import KVCache
from .patches import order_for, token_xy


@dataclass
class TextCondition:
    """Text-encoder token states (B, L, Dt) and their validity mask (B, L) bool."""

    states: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]


Condition = torch.Tensor | TextCondition  # class labels (B,) int64, or text states
LOSS_IMPLS = ("reference", "fast")  # ways to compute `BitDanceTransformer.loss` (same function)


def cat_conditions(a: Condition, b: Condition) -> Condition:
    if isinstance(a, TextCondition) and isinstance(b, TextCondition):
        return TextCondition(torch.cat([a.states, b.states]), torch.cat([a.mask, b.mask]))
    return torch.cat([a, b])  # type: ignore[list-item]


def index_condition(c: Condition, idx: torch.Tensor | slice) -> Condition:
    if isinstance(c, TextCondition):
        return TextCondition(c.states[idx], c.mask[idx])
    return c[idx]


class Attention(nn.Module):
    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor,
        cache: KVCache | None,
        layer: int,
        q_from: int = 0,
        complex_rope: bool = False,
    ) -> torch.Tensor:
        """x (B, L, D) -> (B, L - q_from, D): keys/values from every position, queries from `q_from` on.

        `complex_rope`: rotate with `apply_rope_complex` (training's fast path)."""
        b, l, d = x.shape
        q, k, v = self.wqkv(x).view(b, l, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        rot = apply_rope_complex if complex_rope else apply_rope
        q, k, mask = rot(q[:, :, q_from:], rope[q_from:]), rot(k, rope), mask[q_from:]
        if cache is not None:
            k, v = cache.update(layer, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(b, l - q_from, d))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg.dim, cfg.n_head)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = SwiGLU(cfg.dim, cfg.ffn_hidden)

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        mask: torch.Tensor,
        cache: KVCache | None,
        i: int,
        q_from: int = 0,
        complex_rope: bool = False,
    ) -> torch.Tensor:
        """x (B, L, D) -> (B, L - q_from, D); positions before `q_from` only serve as keys and values."""
        h = self.attention(self.attention_norm(x), rope, mask, cache, i, q_from, complex_rope)
        x = x[:, q_from:] + h
        return x + self.feed_forward(self.ffn_norm(x))


def attention_groups(prefix_len: int, n_tokens: int, parallel_num: int) -> torch.Tensor:
    """(S,) int64 group id per sequence position: prefix positions are causal singletons (< 0)."""
    s = prefix_len + n_tokens - 1
    pos = torch.arange(s)
    start = prefix_len - 1
    return torch.where(pos < start, pos - start, torch.div(pos - start, parallel_num, rounding_mode="floor"))


def group_mask(q_groups: torch.Tensor, k_groups: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """(Lq, Lk) bool: key visible iff its group <= the query's (with a window: within `window` patches)."""
    allowed = k_groups[None, :] <= q_groups[:, None]
    if window is not None:
        allowed &= (k_groups[None, :] <= 0) | (k_groups[None, :] >= q_groups[:, None] - window)
    return allowed


class BitDanceTransformer(nn.Module):
    """Backbone + binary diffusion head. `forward` is the pure backbone; see `loss` for training."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.dim
        if cfg.cond_type == "class":
            self.cls_embedding = nn.Embedding(cfg.num_classes + 1, cfg.cls_token_num * d)
        else:
            self.text_proj = nn.Linear(cfg.text_dim, d, bias=False)
            self.text_pad = nn.Parameter(torch.zeros(1, 1, d))
            self.boi_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.max_parallel > 1:
            self.query_token = nn.Parameter(torch.zeros(1, cfg.max_parallel - 1, d))
        self.proj_in = SwiGLU(cfg.latent_bits, int(1.5 * d), d, bias=True)
        self.emb_norm = RMSNorm(d, cfg.norm_eps)
        self.layers = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(d, cfg.norm_eps)
        if cfg.head_pos == "learned":
            self.pos_for_diff = nn.Embedding(cfg.num_tokens, d)
        self.head = DiffusionHead(
            cfg.latent_bits,
            d,
            cfg.head_width,
            cfg.head_depth,
            cfg.head_adaln_groups,
            cfg.head_type,
            cfg.head_attn_dim,
            cfg.head_bounded,
            cfg.P_mean,
            cfg.P_std,
            cfg.time_shift,
            cfg.diff_batch_mul,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, m in self.named_modules():
            if name.startswith("head"):
                continue
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        for p in (
            getattr(self, "query_token", None),
            getattr(self, "text_pad", None),
            getattr(self, "boi_token", None),
        ):
            if p is not None:
                nn.init.normal_(p, std=0.02)
        self.head.net.reset_parameters()

    # ------------------------------------------------------------------ conditioning
    def null_condition(self, batch: int, device: torch.device | str = "cpu") -> Condition:
        cfg = self.config
        if cfg.cond_type == "class":
            return torch.full((batch,), cfg.num_classes, dtype=torch.long, device=device)
        states = torch.zeros(batch, cfg.text_len, cfg.text_dim, device=device)
        return TextCondition(states, torch.zeros(batch, cfg.text_len, dtype=torch.bool, device=device))

    def check_condition(self, cond: Condition) -> int:
        """Validate a condition; return its batch size."""
        cfg = self.config
        if cfg.cond_type == "class":
            if not torch.is_tensor(cond) or cond.dim() != 1 or cond.dtype not in (torch.int64, torch.int32):
                raise ValueError("class condition must be a 1-D integer tensor of labels")
            if bool(((cond < 0) | (cond > cfg.num_classes)).any()):
                raise ValueError(
                    f"class labels must be in [0, {cfg.num_classes - 1}] ({cfg.num_classes} = null)"
                )
            return cond.shape[0]
        if not isinstance(cond, TextCondition):
            raise ValueError("this model is text-conditioned: pass a TextCondition (states, mask)")
        if cond.states.dim() != 3 or cond.states.shape[1:] != (cfg.text_len, cfg.text_dim):
            raise ValueError(
                f"text states must be (B, {cfg.text_len}, {cfg.text_dim}), got {tuple(cond.states.shape)}"
            )
        return cond.states.shape[0]

    def embed_prefix(self, cond: Condition) -> torch.Tensor:
        """Condition -> prefix embeddings (B, Lp, D)."""
        cfg = self.config
        self.check_condition(cond)
        if cfg.cond_type == "class":
            return self.cls_embedding(cond).view(cond.shape[0], cfg.cls_token_num, cfg.dim)  # type: ignore[union-attr]
        assert isinstance(cond, TextCondition)
        proj = self.text_proj(cond.states.to(self.text_proj.weight.dtype))
        pad = self.text_pad.to(proj.dtype).expand_as(proj)
        tokens = torch.where(cond.mask[..., None], proj, pad)
        return torch.cat([tokens, self.boi_token.to(proj.dtype).expand(proj.shape[0], 1, -1)], dim=1)

    def drop_condition(self, cond: Condition, rng: RandomSource, prob: float) -> Condition:
        """Replace conditions by the null condition with probability `prob` (one U(0,1) draw per item)."""
        n = self.check_condition(cond)
        drop = rng.rand((n,)) < prob
        if isinstance(cond, TextCondition):
            return TextCondition(cond.states, cond.mask & ~drop.to(cond.mask.device)[:, None])
        return torch.where(drop.to(cond.device), torch.full_like(cond, self.config.num_classes), cond)

    # ------------------------------------------------------------------ positions
    def rope_for(
        self,
        grid: tuple[int, int],
        parallel_num: int,
        n_prefix_slots: int,
        order: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """RoPE table (S, hd/2, 2): identity on prefix/query slots, true 2-D position on every token.

        `order` (N,) raster indices in generation order; default: the patch order of `parallel_num`."""
        cfg = self.config
        order = order_for(grid, parallel_num) if order is None else order.cpu()
        n = grid[0] * grid[1]
        xy = token_xy(grid, order)[: n - parallel_num] + 1.0
        pos = torch.cat([torch.zeros(n_prefix_slots, 2), xy])
        return rope_table(rope_2d_angles(pos, cfg.dim // cfg.n_head, cfg.rope_base))

    def head_positions(self, grid: tuple[int, int], raster_idx: torch.Tensor) -> torch.Tensor:
        """Target-position embedding for the head: (len(raster_idx), D)."""
        cfg = self.config
        if cfg.head_pos == "learned":
            if tuple(grid) != tuple(cfg.grid_size):
                raise ValueError(
                    f"this model's learned head positions support only the {cfg.grid_size} token grid"
                )
            return self.pos_for_diff.weight[raster_idx.to(self.pos_for_diff.weight.device)]
        w = grid[1]
        dev = self.norm.weight.device
        return sincos_2d((raster_idx // w).to(dev), (raster_idx % w).to(dev), cfg.dim).to(
            self.norm.weight.dtype
        )

    # ------------------------------------------------------------------ backbone
    def forward(
        self,
        x_BLD: torch.Tensor,
        rope: torch.Tensor,
        groups: torch.Tensor,
        cache: KVCache | None = None,
        keep_last: int | None = None,
        complex_rope: bool = False,
    ) -> torch.Tensor:
        """Backbone over input embeddings (pre `emb_norm`) -> final-normed hidden states (B, L, D).

        `groups` (L,) are the attention group ids of these positions; with a cache, the new positions
        attend to everything cached (subject to the block rule) and are appended to it. `keep_last` (no
        cache): return only the last `keep_last` positions (B, keep_last, D); the last layer then runs its
        queries, output projection and MLP on those positions only (the others feed it keys and values).
        `complex_rope`: rotate with `apply_rope_complex` instead of `apply_rope` (the same rotation).
        """
        k_groups = cache.append_groups(groups) if cache is not None else groups
        mask = group_mask(groups, k_groups, self.config.local_window).to(x_BLD.device)
        h = self.emb_norm(x_BLD)
        rope = rope.to(x_BLD.device)
        q_from = 0
        if keep_last is not None:
            if cache is not None or not 1 <= keep_last <= x_BLD.shape[1]:
                raise ValueError(f"keep_last must be in 1..{x_BLD.shape[1]} and used without a cache")
            q_from = x_BLD.shape[1] - keep_last
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, rope, mask, cache, i, q_from if i == last else 0, complex_rope)
        return self.norm(h)

    def embed_tokens(self, bits_BNd: torch.Tensor) -> torch.Tensor:
        return self.proj_in(bits_BNd.to(self.proj_in.w1.weight.dtype))

    def queries(self, batch: int, parallel_num: int) -> torch.Tensor:
        if parallel_num == 1:
            return self.emb_norm.weight.new_zeros(batch, 0, self.config.dim)
        return self.query_token[:, : parallel_num - 1].expand(batch, -1, -1)

    def teacher_forced_hidden(
        self,
        cond: Condition,
        bits_BNd: torch.Tensor,
        grid: tuple[int, int],
        parallel_num: int,
        order: torch.Tensor | None = None,
        trim: bool = False,
    ) -> torch.Tensor:
        """Full forward over a whole sequence: bits in generation order (B, N, d) -> hidden (B, N, D).

        `order` (N,): the raster index of each sequence position (default: the patch order). `trim`: skip
        the last layer's work on the prefix positions whose outputs are dropped and rotate with
        `apply_rope_complex` (equal up to float order)."""
        validate_parallel_num(parallel_num, grid)
        prefix = self.embed_prefix(cond)
        b, lp = prefix.shape[:2]
        n = bits_BNd.shape[1]
        seq = torch.cat(
            [prefix, self.queries(b, parallel_num), self.embed_tokens(bits_BNd[:, : n - parallel_num])], 1
        )
        rope = self.rope_for(grid, parallel_num, lp + parallel_num - 1, order)
        groups = attention_groups(lp, n, parallel_num)
        h = self.forward(seq, rope, groups, keep_last=n if trim else None, complex_rope=trim)
        return h[:, -n:]

    # ------------------------------------------------------------------ training
    def loss(
        self,
        bits_BdHW: torch.Tensor,
        cond: Condition,
        rng: RandomSource,
        parallel_num: int | None = None,
        perturb_rate: float | None = None,
        cond_dropout: float | None = None,
        patch_perm: torch.Tensor | None = None,
        impl: str = "fast",
    ) -> torch.Tensor:
        """Teacher-forced next-patch diffusion loss (scalar).

        `impl`: "reference" computes it as first written; "fast" (default) skips the last backbone layer's
        work on dropped prefix positions, rotates with one complex multiply (`apply_rope_complex`) and runs
        the head's `cond_embed` before the rows are tiled. Both
        are the same function of the same draws (equal up to float summation order, tested).

        `patch_perm` (N / P,) int64: generate the patches in this order instead of the default one (any-order
        training; raster order inside each patch). Draws, in order: two U(0,1) (B, N, d) for the bit flips
        of the inputs, one U(0,1) (B,) for condition dropout, then the head's time and noise draws.
        """
        cfg = self.config
        if impl not in LOSS_IMPLS:
            raise ValueError(f"unknown loss impl {impl!r}; allowed: {list(LOSS_IMPLS)}")
        p = parallel_num or cfg.parallel_num
        if p not in cfg.supported_parallel:
            raise ValueError(
                f"parallel_num {p} not supported by this model; allowed: {list(cfg.supported_parallel)}"
            )
        b, d, h, w = bits_BdHW.shape
        grid = (h, w)
        order = order_for(grid, p).to(bits_BdHW.device)
        if patch_perm is not None:
            if sorted(patch_perm.tolist()) != list(range(order.numel() // p)):
                raise ValueError(f"patch_perm must be a permutation of the {order.numel() // p} patches")
            order = order.view(-1, p)[patch_perm.to(order.device)].reshape(-1)
        target = bits_BdHW.flatten(2).transpose(1, 2)[:, order]
        rate = cfg.perturb_rate if perturb_rate is None else perturb_rate
        drop = cfg.cond_dropout if cond_dropout is None else cond_dropout
        inputs = target
        if self.training and rate > 0:
            u1, u2 = rng.rand(target.shape).to(target.device), rng.rand(target.shape).to(target.device)
            inputs = torch.where(u1 < rate * u2, -target, target)
        if self.training and drop > 0:
            cond = self.drop_condition(cond, rng, drop)
        fast = impl == "fast"
        hidden = self.teacher_forced_hidden(
            cond, inputs, grid, p, None if patch_perm is None else order, trim=fast
        )
        hidden = hidden + self.head_positions(grid, order)[None]
        n = h * w
        return self.head.loss(
            target.reshape(b * n // p, p, d), hidden.reshape(b * n // p, p, -1), rng, embed_once=fast
        )
