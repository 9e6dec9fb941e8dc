"""Process-group setup for `torchrun`, model wrapping (DDP / FSDP2), and world-size-free randomness.

One command works alone or under ``torchrun --nproc_per_node N``: the env vars torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK) select gloo on CPU and NCCL on CUDA.

`GlobalBatchSource` makes training randomness independent of the world size: every rank draws the
random tensors of the *whole* global micro-batch from the same seeded generator and keeps its own rows,
so 1 process x batch 8 and 2 processes x batch 4 see bit-identical noise, flips and dropout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..core.random import RandomSource


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_mean(self, value: float) -> float:
        """Mean of a Python float over ranks (for logging and the NaN check)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def any_true(self, flag: bool) -> bool:
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str | None = None) -> DistContext:
    """Initialise from torchrun env vars (if present) and pick the device ('cuda' or 'cpu')."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda requested but no CUDA device is available")
        dev = torch.device("cuda", local if world > 1 else (torch.device(want).index or 0))
        torch.cuda.set_device(dev)
    elif want == "cpu":
        dev = torch.device("cpu")
    else:
        dev = torch.device(want)
    ctx = DistContext(rank, world, local, dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        ctx.initialized_here = True
    return ctx


def wrap_model(
    module: nn.Module,
    ctx: DistContext,
    fsdp: bool = False,
    block_types: tuple[type, ...] = (),
    find_unused: bool = False,
) -> nn.Module:
    """DDP (or FSDP2 `fully_shard` per block + root) when distributed; the module itself otherwise."""
    if not ctx.distributed:
        return module
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for m in module.modules():
            if block_types and isinstance(m, block_types):
                fully_shard(m)
        fully_shard(module)
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused)


def no_sync(model: nn.Module, active: bool):  # noqa: ANN201
    """Skip the gradient all-reduce on non-final accumulation micro-steps (DDP and FSDP2)."""
    if not active:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)

        @contextlib.contextmanager
        def _restore():  # noqa: ANN202
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)

        return _restore()
    return contextlib.nullcontext()


class GlobalBatchSource(RandomSource):
    """Draws for the global micro-batch, sliced to this chunk's items.

    A draw of shape (rows, ...) on a local batch of `local` items is expanded to the global batch
    (`local * n_chunks` items) using the layout ``row = tile * (B * inner) + item * inner + k`` with
    ``rows = tiles * B * inner``; `layouts` maps rows-per-item -> (tiles, inner) for draws that are not
    one row per item (the diffusion head tiles rows ``diff_batch_mul`` times over item-major patches).
    Within one optimizer step, draw number i is made once (on micro-step 0) and reused, sliced, by the
    other micro-steps, so accumulation and data parallelism split the same global batch identically.
    """

    def __init__(
        self,
        generator: torch.Generator,
        local: int,
        chunk: int,
        n_chunks: int,
        layouts: dict[int, tuple[int, int]] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.generator = generator
        self.local, self.chunk, self.n_chunks = local, chunk, n_chunks
        self.layouts = dict(layouts or {})
        self.device = torch.device(device)
        self._draws: list[torch.Tensor] = []
        self._used = 0

    def start_micro_step(self, chunk: int) -> None:
        self.chunk = chunk
        self._used = 0

    def new_step(self) -> None:
        self._draws, self._used = [], 0

    def _global(self, shape: Sequence[int], fn) -> torch.Tensor:  # noqa: ANN001
        if self._used < len(self._draws):
            t = self._draws[self._used]
        else:
            rows = shape[0] * self.n_chunks
            t = fn((rows, *shape[1:]), generator=self.generator, device=self.generator.device)
            self._draws.append(t)
        self._used += 1
        return t

    def _slice(self, full: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        per_item = shape[0] // self.local
        if per_item * self.local != shape[0]:
            raise ValueError(f"draw of {shape[0]} rows does not split over {self.local} items")
        tiles, inner = self.layouts.get(per_item, (1, per_item))
        if tiles * inner != per_item:
            raise ValueError(f"layout {tiles}x{inner} does not match {per_item} rows per item")
        b = self.local * self.n_chunks
        lo, hi = self.chunk * self.local, (self.chunk + 1) * self.local
        view = full.reshape(tiles, b, inner, *full.shape[1:])[:, lo:hi]
        return view.reshape(tuple(shape)).to(self.device)

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        return self._slice(self._global(shape, torch.randn), shape)

    def rand(self, shape: Sequence[int]) -> torch.Tensor:
        return self._slice(self._global(shape, torch.rand), shape)


# ----------------------------------------------------------------------------- state (plain, DDP, FSDP2)


def unwrap(model: nn.Module) -> nn.Module:
    return (
        model.module
        if hasattr(model, "module") and not hasattr(model, "set_requires_gradient_sync")
        else model
    )


def _sharded(model: nn.Module) -> bool:
    return any(hasattr(p, "device_mesh") for p in model.parameters())


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full (unsharded) CPU state dict of a plain, DDP-wrapped or FSDP2-sharded module."""
    model = unwrap(model)
    if _sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model = unwrap(model)
    if _sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))
        return
    from ..checkpoint import load_into

    load_into(model, state, source="training state")


def optim_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    model = unwrap(model)
    if _sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return opt.state_dict()


def load_optim_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict) -> None:
    model = unwrap(model)
    if _sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True))
        return
    opt.load_state_dict(state)


def rng_state(train_generator: torch.Generator | None = None) -> dict:
    import random

    out = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    if train_generator is not None:
        out["train"] = train_generator.get_state()
    return out


def load_rng_state(state: dict, train_generator: torch.Generator | None = None) -> None:
    import random

    torch.set_rng_state(state["torch"])
    if "python" in state:
        v, internal, gauss = state["python"]
        random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if train_generator is not None and "train" in state:
        train_generator.set_state(state["train"])
