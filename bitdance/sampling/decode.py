"""Next-patch decoding: a pure function of (model, condition, options, randomness).

One backbone step per patch of P = p*p tokens; the head samples the patch's bits jointly. The
conditional and unconditional streams run as one batched forward (2B rows) and share the sampled
tokens; with a fast solver the null stream's first forward is memoised (`null_prefix.py`). The sampler
owns the KV cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.configs import validate_parallel_num
from ..core.random import RandomSource, as_source
from ..generator.kv_cache import KV_CACHES
from ..generator.patches import from_sequence, order_for
from ..generator.transformer import BitDanceTransformer, Condition, attention_groups
from ..tokenizer.quantizer import binarize, check_bits
from .guidance import any_guidance, guided_condition
from .inpaint import DEFAULT_EDIT_METHOD, generate_edit
from .null_prefix import FAST_ENGINE_SOLVERS, first_forward
from .solvers import get_solver, guidance_at

StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class SamplingOptions:
    """Per-call decoding options (validated by `check`)."""

    parallel_num: int | None = None  # None -> the model's default P
    num_sampling_steps: int = 20  # head SDE steps per AR step (NFE = steps + 1)
    guidance_scale: float = 1.0
    guidance_schedule: str = "constant"  # "constant" | "linear" (1 -> w over AR steps)
    solver: str = "euler_maruyama"
    grid: tuple[int, int] | None = None  # token grid; None -> the model's training grid
    # official behaviour: an AR step whose guidance is exactly 1 samples the two streams independently
    independent_unguided_streams: bool = False
    # mixed precision for the networks: None (the weights' dtype) or "bf16" (torch.autocast; meant for
    # CUDA — on CPU bf16 matmul is far slower than fp32). Velocities and the sampler state stay fp32.
    autocast: str | None = None
    # "preallocated" (default: buffers allocated once, written in place) or "concat" (torch.cat growth,
    # the behaviour before; kept as the benchmark's baseline). Same samples either way.
    kv_cache: str = "preallocated"

    def check(self) -> None:
        import math

        if (
            not isinstance(self.num_sampling_steps, int)
            or isinstance(self.num_sampling_steps, bool)
            or not 1 <= self.num_sampling_steps <= 1000
        ):
            raise ValueError(
                f"num_sampling_steps must be an integer in 1..1000, got {self.num_sampling_steps!r}"
            )
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or not 0 <= g <= 50:
            raise ValueError(f"guidance_scale must be a finite number in [0, 50], got {g!r}")
        if self.guidance_schedule not in ("constant", "linear"):
            raise ValueError(
                f"guidance_schedule must be 'constant' or 'linear', got {self.guidance_schedule!r}"
            )
        get_solver(self.solver)
        if self.autocast not in (None, "bf16"):
            raise ValueError(f"autocast must be None or 'bf16', got {self.autocast!r}")
        if self.kv_cache not in KV_CACHES:
            raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHES)}, got {self.kv_cache!r}")


@dataclass
class KnownTokens:
    """Tokens to keep (inpainting / variations): bits (B, d, h, w) and keep-mask (B, h, w) bool.

    `method` (see `inpaint.py`): "joint" (default: generation order unchanged, kept tokens held inside the
    head), "kept_first" (whole kept patches fed first, then held as in "joint") or "substitute" (pasted
    after each patch: the behaviour before conditioned editing).
    """

    bits: torch.Tensor
    keep: torch.Tensor
    method: str = DEFAULT_EDIT_METHOD


def generate_bits(
    model: BitDanceTransformer,
    cond: Condition,
    options: SamplingOptions | None = None,
    generator: torch.Generator | list[torch.Generator] | RandomSource | None = None,
    known: KnownTokens | None = None,
    callback: StepCallback | None = None,
    negative: Condition | None = None,
) -> torch.Tensor:
    """Sample bits (B, d, h, w) in {-1, +1} for a batch of conditions.

    Randomness: per AR step the solver draws the initial x (B rows, or 2B on an unguided step with
    `independent_unguided_streams`) and one noise tensor per SDE step. Pass a list of generators
    (one per item) to make each item independent of its batch position. `negative` replaces the
    null condition of the unconditional stream (negative prompts).
    """
    options = options or SamplingOptions()
    options.check()
    device_type = model.norm.weight.device.type
    with torch.no_grad(), torch.autocast(device_type, torch.bfloat16, enabled=options.autocast == "bf16"):
        return _generate(model, cond, options, generator, known, callback, negative)


def _generate(
    model: BitDanceTransformer,
    cond: Condition,
    options: SamplingOptions,
    generator: torch.Generator | list[torch.Generator] | RandomSource | None,
    known: KnownTokens | None,
    callback: StepCallback | None,
    negative: Condition | None,
) -> torch.Tensor:
    if known is not None and known.method != "substitute":
        return generate_edit(model, cond, options, generator, known, callback, negative)
    cfg = model.config
    p = options.parallel_num or cfg.parallel_num
    if p not in cfg.supported_parallel:
        raise ValueError(
            f"parallel_num {p} not supported by this model; allowed: {list(cfg.supported_parallel)}"
        )
    grid = tuple(options.grid or cfg.grid_size)
    validate_parallel_num(p, grid)  # type: ignore[arg-type]
    b = model.check_condition(cond)
    device = model.norm.weight.device
    dtype = model.norm.weight.dtype
    rng = as_source(generator, device)
    n = grid[0] * grid[1]
    steps_total = n // p
    order = order_for(grid, p).to(device)  # type: ignore[arg-type]
    d = cfg.latent_bits
    if known is not None:
        check_bits(known.bits, "known bits")
        if known.bits.shape != (b, d, *grid) or known.keep.shape != (b, *grid):
            raise ValueError(
                f"known tokens must be bits (B, {d}, {grid[0]}, {grid[1]}) and keep (B, {grid[0]}, {grid[1]})"
            )
        known_seq = known.bits.to(device).flatten(2).transpose(1, 2)[:, order]
        keep_seq = known.keep.to(device).flatten(1)[:, order]

    guided = any_guidance(options, steps_total)
    full_cond, rows = guided_condition(model, cond, negative, b, device, guided)
    solver = get_solver(options.solver)

    cached_null = guided and negative is None and options.solver in FAST_ENGINE_SOLVERS
    prefix = model.embed_prefix(cond if cached_null else full_cond)
    lp = prefix.shape[1]
    cache = KV_CACHES[options.kv_cache](cfg.n_layer, capacity=lp + n - 1)  # every position fed: room once
    rope_all = model.rope_for(grid, p, lp + p - 1)  # type: ignore[arg-type]
    groups_all = attention_groups(lp, n, p)
    first = lp + p - 1
    if cached_null:  # the null stream's first forward is the same every call: memoised (null_prefix.py)
        hidden = first_forward(model, prefix, p, rope_all[:first], groups_all[:first], cache)
    else:
        x = torch.cat([prefix, model.queries(rows, p)], dim=1)
        hidden = model(x, rope_all[:first], groups_all[:first], cache)[:, -p:]
    out = torch.empty(b, n, d, device=device)
    for k in range(steps_total):
        w = guidance_at(k, steps_total, options.guidance_scale, options.guidance_schedule)
        target = order[k * p : (k + 1) * p]
        cond_h = hidden + model.head_positions(grid, target)[None].to(dtype)  # type: ignore[arg-type]
        if guided and w == 1.0 and options.independent_unguided_streams:
            x_cont = solver(
                model.head.net, cond_h, (rows, p, d), options.num_sampling_steps, 1.0, rng, cfg.time_shift
            )
            step_bits = binarize(x_cont)
            feed = step_bits
        else:
            x_cont = solver(
                model.head.net, cond_h, (b, p, d), options.num_sampling_steps, w, rng, cfg.time_shift
            )
            step_bits = binarize(x_cont)
            feed = None
        if known is not None:
            kb, kk = known_seq[:, k * p : (k + 1) * p], keep_seq[:, k * p : (k + 1) * p, None]
            if feed is not None:
                kb, kk = torch.cat([kb, kb]), torch.cat([kk, kk])
            step_bits = torch.where(kk, kb, step_bits)
        out[:, k * p : (k + 1) * p] = step_bits[:b]
        if feed is None:
            feed = torch.cat([step_bits, step_bits]) if guided else step_bits
        else:
            feed = step_bits
        if callback is not None:
            callback(k + 1, steps_total, out[:, : (k + 1) * p])
        if k == steps_total - 1:
            break
        lo = first + k * p
        emb = model.embed_tokens(feed)
        hidden = model(emb, rope_all[lo : lo + p], groups_all[lo : lo + p], cache)
        if cfg.local_window is not None:
            g = cache.groups
            cache.evict((g <= 0) | (g >= (k + 2) - cfg.local_window))  # type: ignore[operator]
    return from_sequence(out, grid, p)  # type: ignore[arg-type]
