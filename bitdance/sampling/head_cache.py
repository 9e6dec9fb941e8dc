"""Head evaluations with the work that is constant across one AR step's head steps done once.

Within one AR step the head's condition (R, P, Dc) is fixed and the time grid is known in advance, so
`cond_embed(cond)` (R, P, dim) and `time_embed(t)` for every grid time (S, dim) are computed once, and with
guidance the input projection of the shared sample x runs on n rows instead of 2n. The arithmetic of each
evaluation is otherwise the network's own (`HeadNet.body`).
"""

from __future__ import annotations

import torch

from ..generator.diffusion_head import to_velocity


class CachedHead:
    """Velocities of a `HeadNet` at the grid times `times` (S,) for a fixed condition (R, P, Dc).

    R = n (no guidance) or 2n ([cond; uncond], guidance), n = sample rows.
    """

    def __init__(self, net: torch.nn.Module, cond: torch.Tensor, times: torch.Tensor) -> None:
        if not hasattr(net, "body"):
            raise ValueError("cached head solvers need a HeadNet (a network with a `body` method)")
        self.net, self.rows, self.dtype = net, cond.shape[0], cond.dtype
        self.cemb = net.cond_embed(cond)
        self.temb = net.time_embed(times.to(cond.device))  # (S, dim)
        self.times = times.float()

    def velocity(self, x: torch.Tensor, k: int, guidance: float) -> torch.Tensor:
        """Guided velocity (n, P, C) fp32 at grid time k for sample x (n, P, C)."""
        n = x.shape[0]
        if self.rows not in (n, 2 * n):
            raise ValueError(
                f"condition rows {self.rows} must equal sample rows {n} or twice that (guidance)"
            )
        xe = self.net.input_proj(x.to(self.dtype))
        t = self.times[k].reshape(1)
        if self.rows == n:
            return to_velocity(self.net.body(xe, self.temb[k], self.cemb), x, t)
        xh = self.net.body(torch.cat([xe, xe]), self.temb[k], self.cemb)
        v_c, v_u = to_velocity(xh[:n], x, t), to_velocity(xh[n:], x, t)
        return v_u + guidance * (v_c - v_u)
