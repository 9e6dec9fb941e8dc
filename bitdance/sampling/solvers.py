"""Head samplers: integrate the bit flow from noise (t = 0) to data (t = 1), then sign().

All solvers share one signature and are picked by name (`SOLVERS`). Guidance is applied to
velocities: v = v_u + w (v_c - v_u); the conditional and unconditional rows run in one batched
network call and share the same sample x.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.random import RandomSource
from ..generator.diffusion_head import shift_time, to_velocity
from .head_cache import CachedHead

NetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
T_END = 0.95  # stochastic part ends here; one deterministic Euler step covers [0.95, 1]


def time_grid(steps: int, time_shift: float = 1.0, device: torch.device | None = None) -> torch.Tensor:
    """(steps + 1,) grid linspace(0, 0.95) in fp32, time-shifted."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"num_sampling_steps must be an integer >= 1, got {steps!r}")
    return shift_time(torch.linspace(0, T_END, steps + 1, dtype=torch.float32, device=device), time_shift)


def guided_velocity(
    net: NetFn, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float
) -> torch.Tensor:
    """Velocity at (x, t). With guidance, cond holds [cond; uncond] (2n rows) and x has n rows."""
    n = x.shape[0]
    if cond.shape[0] == 2 * n:
        xx = torch.cat([x, x], dim=0)
        tt = t.expand(2 * n)
        v = to_velocity(net(xx.to(cond.dtype), tt, cond), xx, tt)
        v_c, v_u = v[:n], v[n:]
        return v_u + guidance * (v_c - v_u)
    if cond.shape[0] != n:
        raise ValueError(
            f"condition rows {cond.shape[0]} must equal sample rows {n} or twice that (guidance)"
        )
    tt = t.expand(n)
    return to_velocity(net(x.to(cond.dtype), tt, cond), x, tt)


def _final_euler(net: NetFn, x: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
    # The official sampler evaluates the last step at the unshifted t = 0.95 with dt = 0.05.
    t_last = torch.full((1,), T_END, dtype=torch.float32, device=x.device)
    return x + guided_velocity(net, x, t_last, cond, guidance) * (1 - T_END)


def euler_maruyama(
    net: NetFn,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    guidance: float,
    rng: RandomSource,
    time_shift: float = 1.0,
) -> torch.Tensor:
    """Reverse SDE with diffusion 2(1 - t) on [0, 0.95], then one Euler step to 1. Returns continuous x.

    Draws: initial x (shape), then one noise tensor (shape) per SDE step.
    """
    grid = time_grid(steps, time_shift, cond.device)
    x = rng.randn(shape).to(cond.device)
    for k in range(steps):
        t, dt = grid[k], grid[k + 1] - grid[k]
        v = guided_velocity(net, x, t.reshape(1), cond, guidance)
        score = (t * v - x) / (1 - t)
        drift = v + (1 - t) * score
        noise = rng.randn(shape).to(cond.device)
        x = x + drift * dt + torch.sqrt(2 * (1 - t) * dt) * noise
    return _final_euler(net, x, cond, guidance)


def euler(
    net: NetFn,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    guidance: float,
    rng: RandomSource,
    time_shift: float = 1.0,
) -> torch.Tensor:
    """Deterministic probability-flow Euler on the same grid (one draw: the initial x)."""
    grid = time_grid(steps, time_shift, cond.device)
    x = rng.randn(shape).to(cond.device)
    for k in range(steps):
        t, dt = grid[k], grid[k + 1] - grid[k]
        x = x + guided_velocity(net, x, t.reshape(1), cond, guidance) * dt
    return _final_euler(net, x, cond, guidance)


def _cached_grid(
    net: NetFn, cond: torch.Tensor, steps: int, time_shift: float
) -> tuple[CachedHead, list[float]]:
    grid = time_grid(steps, time_shift, cond.device)
    times = torch.cat([grid[:steps], torch.full((1,), T_END, device=cond.device)])  # last: the final Euler
    return CachedHead(net, cond, times), grid.tolist()  # one host read per AR step, none per head step


def em_fast(
    net: NetFn,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    guidance: float,
    rng: RandomSource,
    time_shift: float = 1.0,
) -> torch.Tensor:
    """`euler_maruyama` (same SDE, grid and draws) with the per-AR-step constants computed once
    (`CachedHead`) and the drift written as (1 + t) v - x. Equal to the reference up to float rounding."""
    head, ts = _cached_grid(net, cond, steps, time_shift)
    x = rng.randn(shape).to(cond.device)
    for k in range(steps):
        t, dt = ts[k], ts[k + 1] - ts[k]
        v = head.velocity(x, k, guidance)
        noise = rng.randn(shape).to(cond.device)
        x = x + ((1 + t) * v - x) * dt + (2 * (1 - t) * dt) ** 0.5 * noise
    return x + head.velocity(x, steps, guidance) * (1 - T_END)


def euler_fast(
    net: NetFn,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    guidance: float,
    rng: RandomSource,
    time_shift: float = 1.0,
) -> torch.Tensor:
    """`euler` (deterministic flow, one draw) with the per-AR-step constants computed once."""
    head, ts = _cached_grid(net, cond, steps, time_shift)
    x = rng.randn(shape).to(cond.device)
    for k in range(steps):
        x = x + head.velocity(x, k, guidance) * (ts[k + 1] - ts[k])
    return x + head.velocity(x, steps, guidance) * (1 - T_END)


# "euler_maruyama" is the reference (the official sampler's numerics); the others are faster settings
SOLVERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler_maruyama": euler_maruyama,
    "euler": euler,
    "em_fast": em_fast,
    "euler_fast": euler_fast,
}


def get_solver(name: str) -> Callable[..., torch.Tensor]:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; allowed: {sorted(SOLVERS)}")
    return SOLVERS[name]


def guidance_at(step: int, total: int, scale: float, schedule: str = "constant") -> float:
    """CFG scale at AR step `step` of `total`: constant, or linear 1 + (w - 1) * step / total."""
    if schedule == "constant":
        return float(scale)
    if schedule == "linear":
        return 1.0 + (float(scale) - 1.0) * step / total
    raise ValueError(f"unknown guidance schedule {schedule!r}; allowed: ['constant', 'linear']")
