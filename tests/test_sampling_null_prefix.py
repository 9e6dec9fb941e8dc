"""Memoised null-condition prefix (fast solvers): the same bits as computing it in the batch, every call,
and a fresh computation whenever the weights change."""

import dataclasses

import pytest
import torch

from bitdance.core.configs import get_preset
from bitdance.generator.transformer import BitDanceTransformer, TextCondition
from bitdance.sampling import null_prefix as np_mod
from bitdance.sampling.decode import SamplingOptions, generate_bits
from bitdance.sampling.guidance import any_guidance


def _model(preset: str, seed: int = 0) -> BitDanceTransformer:
    torch.manual_seed(seed)
    m = BitDanceTransformer(get_preset("generator", preset)).eval()
    with torch.no_grad():  # the zero-initialised head would make every sample trivial
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _cond(m: BitDanceTransformer, b: int, seed: int = 1):
    cfg = m.config
    g = torch.Generator().manual_seed(seed)
    if cfg.cond_type == "class":
        return torch.randint(0, cfg.num_classes, (b,), generator=g)
    mask = torch.arange(cfg.text_len)[None] < torch.randint(1, cfg.text_len + 1, (b, 1), generator=g)
    return TextCondition(torch.randn(b, cfg.text_len, cfg.text_dim, generator=g), mask)


def _bits(m, cond, opts, seed=0, negative=None):
    gens = [torch.Generator().manual_seed(seed + i) for i in range(len(cond))]
    return generate_bits(m, cond, opts, gens, negative=negative)


@pytest.mark.parametrize("preset", ["tiny", "tiny-text"])
@pytest.mark.parametrize("solver", ["em_fast", "euler_fast"])
@pytest.mark.parametrize("kv_cache", ["preallocated", "concat"])
def test_cached_null_prefix_gives_the_batched_bits(preset, solver, kv_cache):
    m = _model(preset)
    b = 3
    cond = _cond(m, b)
    for p in m.config.supported_parallel:
        for schedule in ("constant", "linear"):
            opts = SamplingOptions(
                parallel_num=p, num_sampling_steps=3, guidance_scale=3.0, guidance_schedule=schedule,
                solver=solver, kv_cache=kv_cache, independent_unguided_streams=schedule == "linear",
            )  # fmt: skip
            np_mod._MEMO.clear()
            cached = _bits(m, cond, opts)
            again = _bits(m, cond, opts)  # served from the memo
            steps = m.config.grid_size[0] * m.config.grid_size[1] // p
            if any_guidance(opts, steps):  # (one linear-schedule AR step runs at scale 1: no null stream)
                assert len(np_mod._MEMO[m]) == 1
            # a negative condition equal to the null one takes the batched path: the same math
            batched = _bits(m, cond, opts, negative=m.null_condition(b))
            assert torch.equal(cached, batched) and torch.equal(again, batched), (p, schedule)


def test_reference_solver_does_not_use_the_memo():
    m = _model("tiny-text")
    np_mod._MEMO.clear()
    _bits(m, _cond(m, 2), SamplingOptions(num_sampling_steps=2, guidance_scale=2.0))
    assert not np_mod._MEMO.get(m)
    _bits(m, _cond(m, 2), SamplingOptions(num_sampling_steps=2, guidance_scale=1.0, solver="em_fast"))
    assert not np_mod._MEMO.get(m)  # unguided: there is no null stream


def test_memo_follows_in_place_weight_changes():
    m = _model("tiny-text")
    cond = _cond(m, 2)
    opts = SamplingOptions(num_sampling_steps=3, guidance_scale=4.0, solver="em_fast")
    np_mod._MEMO.clear()
    before = _bits(m, cond, opts)
    with torch.no_grad():
        m.text_pad.add_(1.0)  # changes only the null stream's prefix
    after = _bits(m, cond, opts)
    assert len(np_mod._MEMO[m]) == 1  # the entry of the old weights is dropped
    _bits(m, cond, dataclasses.replace(opts, parallel_num=1))
    assert len(np_mod._MEMO[m]) == 2  # another P of the same weights is kept beside it
    assert torch.equal(after, _bits(m, cond, opts, negative=m.null_condition(2)))
    assert not torch.equal(before, after)
    other = BitDanceTransformer(dataclasses.replace(m.config)).eval()
    other.load_state_dict(m.state_dict())  # another model object with the same weights: its own memo
    assert torch.equal(_bits(other, cond, opts), after)


def test_append_rows_checks_the_positions():
    from bitdance.generator.kv_cache import KVCache

    cache = KVCache(1, capacity=8)
    cache.append_groups(torch.arange(3))
    cache.update(0, torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4))
    with pytest.raises(ValueError, match="cached 3 positions"):
        cache.append_rows([torch.zeros(1, 1, 2, 4)], [torch.zeros(1, 1, 2, 4)], 2)
    cache.append_rows([torch.ones(1, 1, 3, 4)], [torch.ones(1, 1, 3, 4)], 2)
    assert cache.keys[0].shape == (4, 1, 3, 4) and bool(cache.keys[0][2:].eq(1).all())
    cache.update(0, torch.zeros(4, 1, 1, 4), torch.zeros(4, 1, 1, 4))  # decoding goes on with 4 rows
    assert cache.keys[0].shape == (4, 1, 4, 4)


def test_shipped_model_fast_settings_keep_their_bits():
    """The shipped model's fast settings (whose quality docs/speed.md reports) give the same bits with the
    memoised null prefix as with the null stream computed in the batch."""
    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_pretrained("bitdance-mini")
    m = pipe.generator
    cond = pipe.encode_prompt(["a red sneaker", "two blue circles above a green square", "a cute dog's face"])
    for p in m.config.supported_parallel:
        for steps in (5, 10):
            opts = SamplingOptions(
                parallel_num=p, num_sampling_steps=steps, guidance_scale=3.0, solver="em_fast"
            )
            assert torch.equal(_bits(m, cond, opts), _bits(m, cond, opts, negative=m.null_condition(3))), p
