"""Head evaluations with the work that is constant across one AR step's head steps done once.

Within one AR step the head's condition (R, P, Dc) is fixed and the time grid is known in advance, so
`cond_embed(cond)` (R, P, dim), `time_embed(t)` for every grid time (S, dim) and the adaLN modulations for
every grid time (S, R, P, ·: one call per adaLN linear instead of S, up to `MODULATION_BUDGET` values) are
computed once, and with guidance the input projection of the shared sample x runs on n rows instead of 2n.
The arithmetic of each evaluation is otherwise the network's own (`HeadNet.body_modulated`).
"""

from __future__ import annotations

import torch

from ..generator.diffusion_head import to_velocity

MODULATION_BUDGET = 16 * 2**20  # most values (fp32: 64 MiB) of modulations computed ahead for one AR step


class CachedHead:
    """Velocities of a `HeadNet` at the grid times `times` (S,) for a fixed condition (R, P, Dc).

    R = n (no guidance) or 2n ([cond; uncond], guidance), n = sample rows.
    """

    def __init__(self, net: torch.nn.Module, cond: torch.Tensor, times: torch.Tensor) -> None:
        if not hasattr(net, "body_modulated"):
            raise ValueError("cached head solvers need a HeadNet (a network with a `body_modulated` method)")
        self.net, self.rows, self.dtype = net, cond.shape[0], cond.dtype
        self.cemb = net.cond_embed(cond)
        self.temb = net.time_embed(times.to(cond.device))  # (S, dim)
        self.times = times.float()
        # the adaLN modulations depend on (t, cond) only: for every grid time at once when that is small
        lins = [*net.ada_ln_blocks, net.final_layer.ada_ln_modulation]
        rows = self.cemb.numel() // self.cemb.shape[-1]
        ahead = times.numel() * rows * sum(lin.out_features for lin in lins)
        self.mods: tuple[list[torch.Tensor], torch.Tensor] | None = None
        if ahead <= MODULATION_BUDGET:
            self.mods = net.modulations(self.temb[:, None, None, :], self.cemb[None])  # (S, R, P, ·) each

    def velocity(self, x: torch.Tensor, k: int, guidance: float) -> torch.Tensor:
        """Guided velocity (n, P, C) fp32 at grid time k for sample x (n, P, C)."""
        n = x.shape[0]
        if self.rows not in (n, 2 * n):
            raise ValueError(
                f"condition rows {self.rows} must equal sample rows {n} or twice that (guidance)"
            )
        xe = self.net.input_proj(x.to(self.dtype))
        t = self.times[k].reshape(1)
        if self.mods is None:
            mods, final = self.net.modulations(self.temb[k], self.cemb)
        else:
            mods, final = [m[k] for m in self.mods[0]], self.mods[1][k]
        if self.rows == n:
            return to_velocity(self.net.body_modulated(xe, mods, final), x, t)
        xh = self.net.body_modulated(torch.cat([xe, xe]), mods, final)
        v_c, v_u = to_velocity(xh[:n], x, t), to_velocity(xh[n:], x, t)
        return v_u + guidance * (v_c - v_u)
