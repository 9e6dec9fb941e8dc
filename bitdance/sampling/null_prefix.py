"""The unconditional stream's first backbone forward, computed once per model state (fast solvers).

With classifier-free guidance and no negative condition, the second stream's prefix is the null condition
(all text slots the pad token, or the null class) for every item of every call, so its first forward
(prefix + learned queries) gives the same hidden states and keys/values each time. The fast solvers
(`FAST_ENGINE_SOLVERS`) compute it once and reuse it: a call's first forward then runs on the B
conditional rows only, and the cached null rows are tiled B times. Rows of a batched forward do not
depend on each other on this CPU, so the samples are bit-identical to computing it in the batch
(tests/test_sampling_null_prefix.py); the reference solver keeps computing it every call.

The memo is keyed by the weights' identity and in-place version counters (any optimizer step,
`load_state_dict` or LoRA merge changes them), the positions' shapes, dtype, device, autocast state and
torch's thread count, and it is held weakly per model.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

from ..generator.kv_cache import ConcatKVCache, KVCache
from ..generator.transformer import BitDanceTransformer

FAST_ENGINE_SOLVERS = ("em_fast", "euler_fast")  # solvers that run with the cached null prefix
_MEMO: weakref.WeakKeyDictionary[BitDanceTransformer, dict[Any, NullPrefix]] = weakref.WeakKeyDictionary()


@dataclass
class NullPrefix:
    """The null stream's first forward: hidden (1, P, D) of its last P slots and per-layer keys/values
    (1, H, Lp + P - 1, hd)."""

    hidden: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def _weights_key(model: torch.nn.Module) -> tuple[Any, ...] | None:
    """Identity and version of every parameter and buffer; None when versions are not tracked."""
    try:
        return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))
    except RuntimeError:  # inference tensors track no version: do not cache
        return None


def null_prefix(
    model: BitDanceTransformer, parallel_num: int, rope: torch.Tensor, groups: torch.Tensor
) -> NullPrefix:
    """The null condition's first forward for `parallel_num` P with the first slots' RoPE table `rope`
    (Lp + P - 1, hd/2, 2) and attention groups `groups` (Lp + P - 1,); memoised per model state."""
    device = model.norm.weight.device
    weights = _weights_key(model)
    key = (
        weights,
        parallel_num,
        tuple(rope.shape),
        tuple(groups.tolist()),
        model.norm.weight.dtype,
        str(device),
        torch.is_autocast_enabled(device.type),
        torch.get_num_threads(),
    )
    memo = _MEMO.setdefault(model, {})
    hit = memo.get(key) if weights is not None else None
    if hit is not None:
        return hit
    cache = KVCache(model.config.n_layer, capacity=groups.numel())
    x = torch.cat([model.embed_prefix(model.null_condition(1, device)), model.queries(1, parallel_num)], 1)
    hidden = model(x, rope, groups, cache)[:, -parallel_num:]
    entry = NullPrefix(hidden, [k.clone() for k in cache.keys], [v.clone() for v in cache.values])  # type: ignore[union-attr]
    if weights is not None:
        for old in [k for k in memo if k[0] != weights]:  # entries of older weights can no longer be hit
            del memo[old]
        memo[key] = entry
    return entry


def first_forward(
    model: BitDanceTransformer,
    cond_prefix: torch.Tensor,
    parallel_num: int,
    rope: torch.Tensor,
    groups: torch.Tensor,
    cache: KVCache | ConcatKVCache,
) -> torch.Tensor:
    """First forward of a guided call whose second stream is the null condition, with that stream cached.

    cond_prefix (B, Lp, D): the conditional rows' prefix. Fills `cache` with 2B rows ([cond; null]) and
    returns the hidden states (2B, P, D) of the last P slots, as the batched forward would."""
    b = cond_prefix.shape[0]
    null = null_prefix(model, parallel_num, rope, groups)
    x = torch.cat([cond_prefix, model.queries(b, parallel_num)], 1)
    hidden = model(x, rope, groups, cache)[:, -parallel_num:]
    cache.append_rows(null.keys, null.values, b)
    return torch.cat([hidden, null.hidden.expand(b, -1, -1)])
