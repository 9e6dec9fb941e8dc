"""Compare our numerics with recorded official outputs (parity fixture sets).

A fixture set is a folder of official-format files plus `*_io.safetensors` files of recorded inputs,
outputs and random draws (see the fixture README). Tolerances follow that README: single network
passes 1e-4, sampler outputs 1e-3 (rtol 1e-4), decoded images from sampled tokens 1e-3, bits and
integers exact. Every comparison's max deviation is recorded; set `BITDANCE_PARITY_LOG=<file>` to
append them to a file (one line per tensor).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

ENV_FIXTURES = "BITDANCE_OFFICIAL_FIXTURES"
ENV_LOG = "BITDANCE_PARITY_LOG"

# kind -> (atol, rtol)
TOLERANCES: dict[str, tuple[float, float]] = {
    "net": (1e-4, 1e-4),
    "sampler": (1e-3, 1e-4),
    "image": (1e-3, 0.0),
    "exact": (0.0, 0.0),
}


@contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny-model checks on one intra-op thread (much faster, and immune to CPU oversubscription)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def fixture_dir(default: str | Path) -> Path:
    """The fixture folder: $BITDANCE_OFFICIAL_FIXTURES, else `default`."""
    return Path(os.environ.get(ENV_FIXTURES) or default).resolve()


@dataclass
class ParityLog:
    """Max |deviation| per compared tensor, keyed 'set/tensor'."""

    deviations: dict[str, float] = field(default_factory=dict)

    def record(self, key: str, kind: str, dev: float) -> None:
        self.deviations[key] = dev
        path = os.environ.get(ENV_LOG)
        if path:
            with open(path, "a") as f:
                f.write(f"{key}\t{kind}\t{dev:.3e}\n")


LOG = ParityLog()


class IOSet:
    """Recorded tensors of one `*_io.safetensors` file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name.removesuffix("_io.safetensors")
        self.tensors = load_file(str(self.path))
        with safe_open(str(self.path), "pt") as f:
            self.metadata = f.metadata() or {}
        self.checked: set[str] = set()

    def has(self, *names: str) -> bool:
        return all(n in self.tensors for n in names)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def scalar(self, name: str) -> float:
        return float(self.tensors[name].item())

    def stacked_draws(self, name: str) -> list[torch.Tensor]:
        """A stacked `*_rng` tensor -> list of draws (index k of dim 0 = draw k)."""
        return list(self.tensors[name].unbind(0))

    def numbered_draws(self, prefix: str) -> list[torch.Tensor]:
        """`prefix.000`, `prefix.001`, ... in order."""
        keys = sorted(
            (k for k in self.tensors if re.fullmatch(re.escape(prefix) + r"\.\d+", k)),
            key=lambda k: int(k.rsplit(".", 1)[1]),
        )
        return [self.tensors[k] for k in keys]

    def matching(self, pattern: str) -> list[tuple[str, re.Match[str]]]:
        """Tensor names fully matching a regex, with their match objects."""
        return [(k, m) for k in sorted(self.tensors) if (m := re.fullmatch(pattern, k))]

    def check(self, name: str, got: torch.Tensor, kind: str = "net") -> float:
        """Assert `got` matches the recorded tensor within the tolerance of `kind`; return max |diff|."""
        want = self.tensors[name]
        self.checked.add(name)
        got = got.detach().cpu()
        if tuple(got.shape) != tuple(want.shape):
            if got.numel() != want.numel():
                raise AssertionError(
                    f"{self.name}/{name}: shape {tuple(got.shape)} != recorded {tuple(want.shape)}"
                )
            got = got.reshape(want.shape)
        if not want.is_floating_point():
            ok = torch.equal(got.to(want.dtype), want)
            dev = 0.0 if ok else float((got.to(torch.int64) - want.to(torch.int64)).abs().max())
            LOG.record(f"{self.name}/{name}", "int", dev)
            if not ok:
                raise AssertionError(f"{self.name}/{name}: integers differ (max |diff| {dev})")
            return dev
        atol, rtol = TOLERANCES[kind]
        same = got.double() == want.double()  # equal infinities (additive masks) count as 0
        diff = torch.where(same, 0.0, (got.double() - want.double()).abs()).nan_to_num(nan=float("inf"))
        dev = float(diff.max()) if diff.numel() else 0.0
        LOG.record(f"{self.name}/{name}", kind, dev)
        bound = atol + rtol * want.double().abs()
        if bool((diff > bound).any()):
            raise AssertionError(
                f"{self.name}/{name}: max |diff| {dev:.3e} exceeds {kind} tolerance "
                f"(atol {atol}, rtol {rtol})"
            )
        return dev


def check_optional(
    io: IOSet, name: str, compute: Callable[[], torch.Tensor], kind: str = "net"
) -> float | None:
    """Check `name` if the set recorded it (debugging tensors may be absent); None when skipped."""
    if name not in io.tensors:
        return None
    return io.check(name, compute(), kind)


# ----------------------------------------------------------------------------- diffusion-head checks
# Shared by the ImageNet (1x: no P axis) and T2I fixture sets; names follow the fixture README.


def with_patch_axis(t: torch.Tensor) -> torch.Tensor:
    """Per-token head tensors (n, C) -> (n, 1, C); (n, P, C) unchanged."""
    return t.unsqueeze(1) if t.dim() == 2 else t


def check_head_net(io: IOSet, net: torch.nn.Module, prefix: str = "headnet") -> None:
    """`<prefix>_xpred` = net(z, t, cond)."""
    with torch.no_grad():
        out = net(
            with_patch_axis(io[f"{prefix}_z"]), io[f"{prefix}_t"], with_patch_axis(io[f"{prefix}_cond"])
        )
    io.check(f"{prefix}_xpred", out, "net")


def check_head_loss(io: IOSet, head: torch.nn.Module) -> None:
    """headloss_{t,z,xpred,loss} from a stand-alone head call with the recorded (t-normal, eps) draws."""
    from ..core.random import ReplaySource

    seen: list = []
    hooks = [
        head.net.register_forward_pre_hook(lambda m, a: seen.append(a)),
        head.net.register_forward_hook(lambda m, a, o: seen.append(o)),
    ]
    tiling, head.diff_batch_mul = head.diff_batch_mul, 1  # a stand-alone official head call never tiles rows
    try:
        with torch.no_grad():
            draws = [io["headloss_rng_t_normal"], io["headloss_rng_eps"]]
            loss = head.loss(
                with_patch_axis(io["headloss_x"]),
                with_patch_axis(io["headloss_cond"]),
                ReplaySource(draws),
                reduce=io["headloss_loss"].dim() == 0,
            )
    finally:
        head.diff_batch_mul = tiling
        for h in hooks:
            h.remove()
    z, t, _ = seen[0]
    check_optional(io, "headloss_t", lambda: t)
    check_optional(io, "headloss_z", lambda: z)
    check_optional(io, "headloss_xpred", lambda: seen[1])
    io.check("headloss_loss", loss, "net")


def check_head_sampler(io: IOSet, net: torch.nn.Module, time_shift: float) -> None:
    """One Euler-Maruyama step (emstep_*), the final Euler step (eulerfinal_*) and every full sample_<k>_*."""
    from ..core.random import ReplaySource
    from ..generator.diffusion_head import to_velocity
    from ..sampling.solvers import T_END, euler_maruyama, guided_velocity
    from ..tokenizer.quantizer import binarize

    with torch.no_grad():
        if io.has("emstep_x"):
            x, cond = with_patch_axis(io["emstep_x"]), with_patch_axis(io["emstep_cond"])
            t, dt, w = io["emstep_t"].reshape(1), io["emstep_dt"], io.scalar("emstep_cfg")
            xx = torch.cat([x, x])
            out = net(xx, t.expand(xx.shape[0]), cond)
            io.check("emstep_net_out", out, "net")
            io.check("emstep_v", to_velocity(out, xx, t.expand(xx.shape[0])), "net")
            v = guided_velocity(net, x, t, cond, w)
            noise = with_patch_axis(io["emstep_rng_noise"])
            io.check(
                "emstep_x_next", x + (v + (t * v - x)) * dt + torch.sqrt(2 * (1 - t) * dt) * noise, "net"
            )
            xn = with_patch_axis(io["emstep_x_next"])
            t_end = torch.full((1,), T_END)
            xxn = torch.cat([xn, xn])
            out = net(xxn, t_end.expand(xxn.shape[0]), cond)
            io.check("eulerfinal_net_out", out, "net")
            io.check("eulerfinal_v", to_velocity(out, xxn, t_end.expand(xxn.shape[0])), "sampler")
            io.check(
                "eulerfinal_x_next", xn + (1 - T_END) * guided_velocity(net, xn, t_end, cond, w), "sampler"
            )
        for name, m in io.matching(r"sample_(\w+?)_cond"):
            kind = m.group(1)
            cond = with_patch_axis(io[name])
            draws = io.stacked_draws(f"sample_{kind}_rng")
            shape = tuple(with_patch_axis(draws[0]).shape)
            shift = (
                io.scalar(f"sample_{kind}_time_shift") if io.has(f"sample_{kind}_time_shift") else time_shift
            )
            steps = int(io[f"sample_{kind}_steps"])
            xs = euler_maruyama(
                net, cond, shape, steps, io.scalar(f"sample_{kind}_cfg"), ReplaySource(draws), shift
            )
            xs = torch.cat([xs, xs]) if cond.shape[0] == 2 * shape[0] else xs
            io.check(f"sample_{kind}_x", xs, "sampler")
            check_optional(io, f"sample_{kind}_bits", lambda xs=xs: binarize(xs), "exact")
