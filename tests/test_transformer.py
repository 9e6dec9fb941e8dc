import dataclasses

import pytest
import torch

from bitdance.core.configs import GeneratorConfig, get_preset, validate_parallel_num
from bitdance.core.random import GeneratorSource
from bitdance.generator.kv_cache import KVCache
from bitdance.generator.patches import from_sequence, order_for, patch_order, to_sequence
from bitdance.generator.transformer import BitDanceTransformer, attention_groups, group_mask


def cached_hidden(model, labels, bits_seq, grid, p):
    """Run the backbone step by step with a KV cache, the way the sampler does."""
    cache = KVCache(model.config.n_layer)
    prefix = model.embed_prefix(labels)
    b, lp = prefix.shape[:2]
    n = bits_seq.shape[1]
    rope = model.rope_for(grid, p, lp + p - 1)
    groups = attention_groups(lp, n, p)
    first = lp + p - 1
    outs = [model(torch.cat([prefix, model.queries(b, p)], 1), rope[:first], groups[:first], cache)[:, -p:]]
    for k in range(n // p - 1):
        lo = first + k * p
        emb = model.embed_tokens(bits_seq[:, k * p : (k + 1) * p])
        outs.append(model(emb, rope[lo : lo + p], groups[lo : lo + p], cache))
        if model.config.local_window is not None:
            g = cache.groups
            cache.evict((g <= 0) | (g >= (k + 2) - model.config.local_window))
    return torch.cat(outs, 1), cache


@pytest.mark.parametrize("p", [1, 4, 16])
def test_kv_cached_decode_matches_full_forward(tiny_gen, p):
    torch.manual_seed(1)
    bits = torch.randint(0, 2, (2, 16, 16)).float() * 2 - 1
    labels = torch.tensor([3, 7])
    with torch.no_grad():
        full = tiny_gen.teacher_forced_hidden(labels, bits, (4, 4), p)
        step, _ = cached_hidden(tiny_gen, labels, bits, (4, 4), p)
    assert full.shape == step.shape == (2, 16, 64)
    assert torch.allclose(full, step, atol=1e-5)


def test_local_window_cached_matches_full_and_bounds_cache():
    cfg = dataclasses.replace(
        get_preset("generator", "tiny"), grid_size=(8, 8), local_window=2, head_pos="sincos"
    )
    torch.manual_seed(0)
    model = BitDanceTransformer(cfg).eval()
    bits = torch.randint(0, 2, (1, 64, 16)).float() * 2 - 1
    labels = torch.tensor([1])
    with torch.no_grad():
        full = model.teacher_forced_hidden(labels, bits, (8, 8), 4)
        step, cache = cached_hidden(model, labels, bits, (8, 8), 4)
    assert torch.allclose(full, step, atol=1e-5)
    # prefix (2) + queries (3) + at most `window` patches of 4 tokens stay cached
    assert cache.length <= 2 + 3 + 2 * 4
    # the windowed model differs from full attention
    full_attn = BitDanceTransformer(dataclasses.replace(cfg, local_window=None)).eval()
    full_attn.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(full_attn.teacher_forced_hidden(labels, bits, (8, 8), 4), full, atol=1e-4)


def test_block_causal_mask_p4_matches_reference_structure():
    # reference: rows 0-62 causal; rows 63-66 see cols 0-66;
    # block k (k>=1): rows 63+4k..66+4k see cols 0..66+4k
    lp, n, p = 64, 256, 4
    groups = attention_groups(lp, n, p)
    mask = group_mask(groups, groups)
    s = lp + n - 1
    assert mask.shape == (s, s)
    for i in range(63):
        assert mask[i, : i + 1].all() and not mask[i, i + 1 :].any()
    for i in range(63, 67):
        assert mask[i, :67].all() and not mask[i, 67:].any()
    for k in (1, 2, 30, 63):
        for i in range(63 + 4 * k, 67 + 4 * k):
            assert mask[i, : 67 + 4 * k].all() and not mask[i, 67 + 4 * k :].any()


def test_patch_order_and_round_trip():
    perm = patch_order(4, 4, 2)
    assert perm.tolist() == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]
    bits = torch.randint(0, 2, (2, 8, 4, 6)).float() * 2 - 1  # non-square grid
    for p in (1, 4):
        assert torch.equal(from_sequence(to_sequence(bits, p), (4, 6), p), bits)
    assert order_for((4, 6), 1).tolist() == list(range(24))


@pytest.mark.parametrize(
    "p,match", [(3, "perfect square"), (2, "perfect square"), (9, "does not tile"), (0, "perfect square")]
)
def test_bad_parallel_num(p, match):
    with pytest.raises(ValueError, match=match):
        validate_parallel_num(p, (4, 4))


def test_unsupported_parallel_num_in_loss(tiny_gen):
    bits = torch.ones(1, 16, 4, 4)
    with pytest.raises(ValueError, match="allowed"):
        tiny_gen.loss(bits, torch.tensor([0]), GeneratorSource(torch.Generator()), parallel_num=64)


def test_head_output_is_zero_at_init():
    torch.manual_seed(0)
    model = BitDanceTransformer(get_preset("generator", "tiny"))
    z = torch.randn(3, 4, 16)
    out = model.head.net(z, torch.rand(3), torch.randn(3, 4, 64))
    assert torch.equal(out, torch.zeros_like(out))


def test_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_preset("generator", "tiny"), perturb_rate=0.0, cond_dropout=0.0)
    model = BitDanceTransformer(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    bits = torch.randint(0, 2, (4, 16, 4, 4)).float() * 2 - 1
    labels = torch.arange(4)

    def eval_loss():
        rng = GeneratorSource(torch.Generator().manual_seed(123))
        with torch.no_grad():
            return model.loss(bits, labels, rng).item()

    before = eval_loss()
    rng = GeneratorSource(torch.Generator().manual_seed(0))
    for _ in range(60):
        loss = model.loss(bits, labels, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < 0.5 * before


def test_mlp_head_requires_p1():
    with pytest.raises(ValueError, match="mlp"):
        GeneratorConfig(head_type="mlp", parallel_num=4)


def test_text_conditioned_forward_shapes():
    from bitdance.generator.text_encoder import HashTextEncoder

    torch.manual_seed(0)
    model = BitDanceTransformer(get_preset("generator", "tiny-text")).eval()
    enc = HashTextEncoder(32, 8)
    cond = enc(["a red circle", "a blue square left of a green triangle"])
    bits = torch.randint(0, 2, (2, 16, 16)).float() * 2 - 1
    with torch.no_grad():
        h = model.teacher_forced_hidden(cond, bits, (4, 4), 4)
        step, _ = cached_hidden(model, cond, bits, (4, 4), 4)
    assert h.shape == (2, 16, 64)
    assert torch.allclose(h, step, atol=1e-5)
    with pytest.raises(ValueError, match="TextCondition"):
        model.embed_prefix(torch.tensor([1]))
