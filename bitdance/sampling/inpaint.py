"""Editing decode: every regenerated token is sampled with the kept tokens as context.

Two mechanisms (`KnownTokens.method`):

- in-patch holding (both "joint" and "kept_first"): inside the head's sampler the kept positions of a patch
  follow their own noised path z_t = (1 - t) eps + t x_known at every network evaluation (RePaint-style
  replacement in the head's flow parameterisation; eps drawn once per patch that holds kept tokens), so
  the patch's attention head samples its regenerated tokens jointly with the kept ones;
- order ("kept_first"): patches whose tokens are all kept are fed to the backbone first, in one block-causal
  forward and without sampling, and the patches with regenerated tokens come after them (in their default
  relative order). The 2-D RoPE carries every token's true position and the head is told its target
  position, so any patch order is a valid sequence; a model trained in raster order only has not seen
  such orders (`bitdance train --any-order` trains with random patch orders).

"joint" keeps the default order: a regenerated token then sees kept tokens earlier in generation order and
those in its own patch, not later ones. "substitute" (the method before editing was conditioned) is the
plain decode loop of `decode.py`, kept so that recipes made with it replay byte-identically.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.configs import GeneratorConfig, validate_parallel_num
from ..core.layers import rope_2d_angles, rope_table
from ..core.random import RandomSource, as_source
from ..generator.kv_cache import KVCache
from ..generator.patches import order_for, token_xy
from ..generator.transformer import BitDanceTransformer, Condition, attention_groups
from ..tokenizer.quantizer import binarize, check_bits
from .guidance import any_guidance, guided_condition
from .solvers import NetFn, get_solver, guidance_at

EDIT_METHODS = ("kept_first", "joint", "substitute")
DEFAULT_EDIT_METHOD = "joint"  # for models trained in patch order only (official checkpoints, v1)
# For models trained with random patch orders too: chosen by the rule of `evaluation/edit_rule.py` on the
# edit benchmark's dev split (docs/results/edit_bench_dev.json; tests/test_edit_rule.py checks they agree).
ANY_ORDER_EDIT_METHOD = "kept_first"


def default_edit_method(cfg: GeneratorConfig) -> str:
    """The model's default edit method: ANY_ORDER_EDIT_METHOD when it was trained with random patch orders
    too (`GeneratorConfig.any_order`), else "joint" (the default order, which a patch-order-only model
    knows)."""
    return ANY_ORDER_EDIT_METHOD if cfg.any_order else DEFAULT_EDIT_METHOD


def check_method(method: str) -> str:
    if method not in EDIT_METHODS:
        raise ValueError(f"unknown edit method {method!r}; allowed: {list(EDIT_METHODS)}")
    return method


def edit_order(keep_seq_BN: torch.Tensor, base_order: torch.Tensor, p: int, kept_first: bool) -> torch.Tensor:
    """Generation order (N,) raster indices: the default one, or whole-kept patches first.

    keep_seq_BN: keep mask in default generation order. A patch counts as kept when it is kept in every
    item of the batch (the order is shared by the batch)."""
    k = base_order.numel() // p
    if not kept_first:
        return base_order
    full = keep_seq_BN.view(keep_seq_BN.shape[0], k, p).all(-1).all(0)
    perm = torch.cat([torch.nonzero(full).flatten(), torch.nonzero(~full).flatten()])
    return base_order.view(k, p)[perm.to(base_order.device)].reshape(-1)


def held_net(net: NetFn, x_known: torch.Tensor, hold: torch.Tensor, eps: torch.Tensor) -> NetFn:
    """Wrap the head network so that held positions enter every evaluation as (1 - t) eps + t x_known.

    x_known, eps: (n, P, d); hold: (n, P, 1) bool. Rows of a guided call (2n) repeat the n rows."""

    def net_fn(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        reps = x.shape[0] // x_known.shape[0]
        tt = t.reshape(-1, 1, 1).float()
        z = (1 - tt) * eps.repeat(reps, 1, 1) + tt * x_known.repeat(reps, 1, 1)
        x = torch.where(hold.repeat(reps, 1, 1), z.to(x.dtype), x)
        return net(x, t, cond)

    return net_fn


def generate_edit(
    model: BitDanceTransformer,
    cond: Condition,
    options,  # noqa: ANN001 - decode.SamplingOptions (checked by the caller)
    generator: torch.Generator | list[torch.Generator] | RandomSource | None,
    known,  # noqa: ANN001 - decode.KnownTokens with method "joint" or "kept_first"
    callback: Callable[[int, int, torch.Tensor], None] | None,
    negative: Condition | None,
) -> torch.Tensor:
    """Sample bits (B, d, h, w) with `known` kept tokens conditioning every regenerated one."""
    cfg = model.config
    p = options.parallel_num or cfg.parallel_num
    if p not in cfg.supported_parallel:
        raise ValueError(
            f"parallel_num {p} not supported by this model; allowed: {list(cfg.supported_parallel)}"
        )
    grid = tuple(options.grid or cfg.grid_size)
    validate_parallel_num(p, grid)  # type: ignore[arg-type]
    b = model.check_condition(cond)
    device, dtype = model.norm.weight.device, model.norm.weight.dtype
    rng = as_source(generator, device)
    n, d = grid[0] * grid[1], cfg.latent_bits
    steps_total = n // p
    check_bits(known.bits, "known bits")
    if known.bits.shape != (b, d, *grid) or known.keep.shape != (b, *grid):
        raise ValueError(
            f"known tokens must be bits (B, {d}, {grid[0]}, {grid[1]}) and keep (B, {grid[0]}, {grid[1]})"
        )
    base = order_for(grid, p).to(device)  # type: ignore[arg-type]
    keep_raster = known.keep.to(device).flatten(1)
    order = edit_order(keep_raster[:, base], base, p, check_method(known.method) == "kept_first")
    known_seq = known.bits.to(device).flatten(2).transpose(1, 2)[:, order]  # (B, N, d)
    keep_seq = keep_raster[:, order]  # (B, N)
    kept_patch = keep_seq.view(b, steps_total, p).all(-1).all(0)  # (K,) kept in every item: no sampling

    guided = any_guidance(options, steps_total)
    full_cond, rows = guided_condition(model, cond, negative, b, device, guided)
    solver = get_solver(options.solver)

    cache = KVCache(cfg.n_layer)
    prefix = model.embed_prefix(full_cond)
    lp = prefix.shape[1]
    first = lp + p - 1
    xy = token_xy(grid, order.cpu())[: n - p] + 1.0  # type: ignore[arg-type]
    pos = torch.cat([torch.zeros(first, 2), xy])
    rope_all = rope_table(rope_2d_angles(pos, cfg.dim // cfg.n_head, cfg.rope_base))
    groups_all = attention_groups(lp, n, p)
    hidden = model(
        torch.cat([prefix, model.queries(rows, p)], 1), rope_all[:first], groups_all[:first], cache
    )
    hidden = hidden[:, -p:]
    out = torch.empty(b, n, d, device=device)
    partial = torch.zeros(b, n, d, device=device)  # default generation order, for progress previews
    inv = torch.empty_like(base)
    inv[base] = torch.arange(n, device=device)
    at_default = inv[order]  # position in default order of each token of `order`

    def feed(lo_patch: int, hi_patch: int, bits_rows: torch.Tensor) -> torch.Tensor:
        lo, hi = first + lo_patch * p, first + hi_patch * p
        h = model(model.embed_tokens(bits_rows), rope_all[lo:hi], groups_all[lo:hi], cache)
        if cfg.local_window is not None:
            g = cache.groups
            cache.evict((g <= 0) | (g >= (hi_patch + 1) - cfg.local_window))  # type: ignore[operator]
        return h[:, -p:]

    k = 0
    while k < steps_total:
        if bool(kept_patch[k]):  # a run of whole kept patches: teacher-forced in one forward
            j = k
            while j < steps_total and bool(kept_patch[j]):
                j += 1
            run = known_seq[:, k * p : j * p]
            out[:, k * p : j * p] = run
            partial[:, at_default[k * p : j * p]] = run
            if callback is not None:
                callback(j, steps_total, partial)
            if j == steps_total:
                break
            hidden = feed(k, j, torch.cat([run, run]) if guided else run)
            k = j
            continue
        w = guidance_at(k, steps_total, options.guidance_scale, options.guidance_schedule)
        target = order[k * p : (k + 1) * p]
        cond_h = hidden + model.head_positions(grid, target)[None].to(dtype)  # type: ignore[arg-type]
        kb, kk = known_seq[:, k * p : (k + 1) * p], keep_seq[:, k * p : (k + 1) * p, None]
        separate = guided and w == 1.0 and options.independent_unguided_streams
        if separate:
            kb, kk = torch.cat([kb, kb]), torch.cat([kk, kk])
        shape = (rows if separate else b, p, d)
        net = model.head.net
        if bool(kk.any()):  # the held positions' noise: one draw per patch that holds kept tokens
            net = held_net(net, kb, kk, rng.randn(shape).to(device))
        x_cont = solver(
            net, cond_h, shape, options.num_sampling_steps, 1.0 if separate else w, rng, cfg.time_shift
        )
        step_bits = torch.where(kk, kb, binarize(x_cont))
        out[:, k * p : (k + 1) * p] = step_bits[:b]
        partial[:, at_default[k * p : (k + 1) * p]] = step_bits[:b]
        if callback is not None:
            callback(k + 1, steps_total, partial)
        if k == steps_total - 1:
            break
        rows_bits = step_bits if separate else (torch.cat([step_bits, step_bits]) if guided else step_bits)
        hidden = feed(k, k + 1, rows_bits)
        k += 1
    raster = torch.empty_like(out)
    raster[:, order] = out
    return raster.transpose(1, 2).reshape(b, d, *grid)
