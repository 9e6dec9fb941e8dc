"""Preallocated KV cache: same keys/values/groups as concatenation, written in place, same samples."""

import dataclasses

import pytest
import torch

from bitdance.core.configs import get_preset
from bitdance.generator.kv_cache import ConcatKVCache, KVCache
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.sampling.decode import SamplingOptions, generate_bits

CatCache = ConcatKVCache  # the cache before preallocation: torch.cat growth per step


def _steps(cache, sizes, layers=2, b=2, h=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    outs = []
    for j, n in enumerate(sizes):
        cache.append_groups(torch.arange(n) + 10 * j)
        for layer in range(layers):
            k, v = torch.randn(b, h, n, d, generator=g), torch.randn(b, h, n, d, generator=g)
            outs.append(cache.update(layer, k, v))
    return outs


@pytest.mark.parametrize("capacity", [None, 3, 12, 100])
def test_views_equal_concatenation(capacity):
    new, old = KVCache(2, capacity), CatCache(2)
    for (k1, v1), (k2, v2) in zip(_steps(new, [5, 4, 3]), _steps(old, [5, 4, 3])):
        assert torch.equal(k1, k2) and torch.equal(v1, v2)
    assert torch.equal(new.groups, old.groups) and new.length == 12
    assert all(torch.equal(a, b) for a, b in zip(new.keys, old.keys))


def test_capacity_is_allocated_once_and_written_in_place():
    cache = KVCache(1, capacity=12)
    _steps(cache, [5], layers=1)
    ptr, held = cache.keys[0].data_ptr(), cache.nbytes()
    _steps(cache, [4, 3], layers=1, seed=1)
    assert cache.keys[0].data_ptr() == ptr and cache.nbytes() == held == 2 * 2 * 3 * 12 * 4 * 4
    _steps(cache, [1], layers=1, seed=2)  # past the capacity: grows instead of failing
    assert cache.length == 13 and cache.keys[0].shape[2] == 13


def test_evict_keeps_the_chosen_positions_in_order():
    new, old = KVCache(2, 20), CatCache(2)
    _steps(new, [5, 4, 3])
    _steps(old, [5, 4, 3])
    keep = torch.tensor([1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1], dtype=torch.bool)
    new.evict(keep)
    old.evict(keep)
    assert new.length == 7 and torch.equal(new.groups, old.groups)
    assert all(torch.equal(a, b) for a, b in zip(new.values, old.values))
    for (k1, _), (k2, _) in zip(_steps(new, [2], seed=5), _steps(old, [2], seed=5)):
        assert torch.equal(k1, k2)  # appending after an eviction continues right after the kept part


def test_bad_capacity_and_batch_mismatch():
    with pytest.raises(ValueError, match="capacity must be a positive integer"):
        KVCache(1, 0)
    cache = KVCache(1, 8)
    cache.update(0, torch.zeros(2, 3, 1, 4), torch.zeros(2, 3, 1, 4))
    with pytest.raises(ValueError, match=r"cached batch/heads \(2, 3\) differ from new \(1, 3\)"):
        cache.update(0, torch.zeros(1, 3, 1, 4), torch.zeros(1, 3, 1, 4))


def _model(local_window=None):
    cfg = dataclasses.replace(get_preset("generator", "tiny"), local_window=local_window)
    if local_window is not None:
        cfg = dataclasses.replace(cfg, grid_size=(8, 8), head_pos="sincos")
    torch.manual_seed(0)
    m = BitDanceTransformer(cfg).eval()
    with torch.no_grad():
        for p in m.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


@pytest.mark.parametrize(
    "p, guidance, solver, window",
    [(1, 1.0, "euler_maruyama", None), (4, 3.0, "euler_maruyama", None), (16, 2.0, "em_fast", None),
     (4, 2.0, "euler_maruyama", 2)],
)  # fmt: skip
def test_samples_are_bit_identical_to_the_concatenating_cache(p, guidance, solver, window):
    m = _model(window)

    def run(kv_cache):
        opts = SamplingOptions(
            parallel_num=p, num_sampling_steps=3, guidance_scale=guidance, solver=solver, kv_cache=kv_cache
        )
        gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
        return generate_bits(m, torch.tensor([1, 2]), opts, gens)

    assert torch.equal(run("preallocated"), run("concat"))


def test_kv_cache_option_is_validated():
    assert SamplingOptions().kv_cache == "preallocated"
    with pytest.raises(ValueError, match="kv_cache must be one of preallocated, concat"):
        SamplingOptions(kv_cache="ring").check()
