"""Optimisation pieces shared by every trainer: AdamW groups, warm-up + cosine LR, EMA, clipping.

The LR schedule is a pure function of the step (its whole "state" is the step number), so resuming
never needs a pickled scheduler object.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def lr_at(step: int, base_lr: float, total_steps: int, warmup: int, min_ratio: float = 0.1) -> float:
    """Linear warm-up from ~0 to `base_lr` over `warmup` steps, then cosine decay to `min_ratio * base_lr`."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total_steps - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices/convs (ndim >= 2); never decay norms, biases, embeddings of single vectors."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_adamw(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; raises if nothing is trainable.

    `fused=None` lets torch pick (on CPU: one kernel launch sequence per parameter); `fused=True` runs the
    whole update as one fused kernel per dtype/device group (the same AdamW, equal up to float rounding).
    """
    groups = param_groups(model, weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused)


def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Clip in place (max_norm <= 0: measure only). Returns the pre-clip global norm as a float."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    if max_norm and max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    norms = [p.grad.detach().float().norm() for p in params]
    return float(torch.stack(norms).norm())


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers.

    Decay warms up as min(decay, (1 + n) / (10 + n)) so short runs are not dominated by the random init.
    Works on plain, DDP-unwrapped and FSDP-sharded parameters (the shadow copies the local shard).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in _tracked(model)}

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow = d * shadow + (1 - d) * value, as two multi-tensor ops (the same arithmetic as one
        `mul_(d).add_(v, alpha=1 - d)` per tensor, without a Python loop of kernel launches)."""
        d = self.current_decay()
        pairs = [(self.shadow[k], v.detach().float()) for k, v in _tracked(model)]
        plain = [(s, v) for s, v in pairs if not hasattr(s, "device_mesh")]
        if plain:
            shadows, values = [s for s, _ in plain], [v for _, v in plain]
            torch._foreach_mul_(shadows, d)
            torch._foreach_add_(shadows, values, alpha=1 - d)
        for s, v in pairs:
            if hasattr(s, "device_mesh"):  # FSDP2 DTensor shards: one op each
                s.mul_(d).add_(v, alpha=1 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for k, v in _tracked(model):
            v.copy_(self.shadow[k].to(v.dtype))

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": {k: _full(v) for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise ValueError(f"EMA state lacks {missing[:5]}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for k, v in self.shadow.items():
            src = state["shadow"][k]
            if hasattr(v, "device_mesh"):  # FSDP2 DTensor shadow: take this rank's shard of the full tensor
                from torch.distributed.tensor import distribute_tensor

                src = distribute_tensor(src.to(v.device), v.device_mesh, v.placements)
            v.copy_(src)

    def full_state(self) -> dict[str, torch.Tensor]:
        """Unsharded shadow tensors (what an export writes)."""
        return {k: _full(v) for k, v in self.shadow.items()}


def _tracked(model: nn.Module):  # noqa: ANN202
    for k, v in model.state_dict(keep_vars=True).items():
        if torch.is_tensor(v) and v.is_floating_point():
            yield k, v


def _full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor gathered to a full tensor; a plain tensor as is (detached, on CPU)."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().cpu()


class OptimConfig:
    """Optimisation hyper-parameters shared by both trainers (validated; plain attributes)."""

    def __init__(
        self,
        steps: int,
        batch_size: int,
        lr: float,
        grad_accum: int = 1,
        warmup: int = 100,
        min_lr_ratio: float = 0.1,
        weight_decay: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.95,
        grad_clip: float = 1.0,
        ema_decay: float = 0.999,
        seed: int = 0,
    ) -> None:
        def pos_int(name: str, v: int, lo: int = 1) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"--{name} must be an integer >= {lo}, got {v!r}")
            return v

        def num(name: str, v: float, lo: float, hi: float, lo_open: bool = False) -> float:
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v > hi
                or v < lo
                or (lo_open and v == lo)
            ):
                raise ValueError(
                    f"--{name} must be a number in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}"
                )
            return float(v)

        self.steps = pos_int("steps", steps)
        self.batch_size = pos_int("batch-size", batch_size)
        self.grad_accum = pos_int("grad-accum", grad_accum)
        self.warmup = pos_int("warmup", warmup, 0)
        self.seed = pos_int("seed", seed, 0)
        self.lr = num("lr", lr, 0.0, 1.0, lo_open=True)
        self.min_lr_ratio = num("min-lr-ratio", min_lr_ratio, 0.0, 1.0)
        self.weight_decay = num("weight-decay", weight_decay, 0.0, 10.0)
        self.beta1 = num("beta1", beta1, 0.0, 0.999999)
        self.beta2 = num("beta2", beta2, 0.0, 0.999999)
        self.grad_clip = num("grad-clip", grad_clip, 0.0, 1e6)
        self.ema_decay = num("ema-decay", ema_decay, 0.0, 0.999999)

    def micro_batch(self, world_size: int) -> int:
        """Per-rank, per-micro-step batch; the global batch must split evenly."""
        parts = world_size * self.grad_accum
        if self.batch_size % parts:
            raise ValueError(
                f"--batch-size {self.batch_size} (the global batch) must be divisible by world size "
                f"{world_size} "
                f"x --grad-accum {self.grad_accum} = {parts}"
            )
        return self.batch_size // parts

    def lr_at(self, step: int) -> float:
        return lr_at(step, self.lr, self.steps, self.warmup, self.min_lr_ratio)

    def to_dict(self) -> dict:
        return dict(vars(self))


def ema_full_state(ema: EMA, model: nn.Module, target: nn.Module) -> dict[str, torch.Tensor]:
    """A full state dict for `target` (an unwrapped copy of `model`'s architecture) holding the EMA weights;
    entries the EMA does not track (integer buffers) come from `model`. Collective under FSDP."""
    state = ema.full_state()
    missing = [k for k in target.state_dict() if k not in state]
    if missing:
        own = model.state_dict()
        for k in missing:
            v = own[k]
            state[k] = (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu()
    return state
