"""Editing conditioned on the kept tokens: in-patch holding, order-independent conditioning, default
generation unchanged, methods recorded for replay."""

import hashlib

import pytest
import torch

from bitdance.core.configs import get_preset
from bitdance.core.random import GeneratorSource
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.pipeline import BitDancePipeline
from bitdance.pipeline.provenance import read_recipe
from bitdance.sampling.decode import KnownTokens, SamplingOptions, generate_bits
from bitdance.sampling.inpaint import edit_order, held_net


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    """A tiny class model whose every weight is random (the default init zeroes the head's output layer,
    which would make sampled tokens independent of any context)."""
    torch.manual_seed(0)
    m = BitDanceTransformer(get_preset("generator", "tiny")).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3)
    return m


def _edit(model, known, p, seed=5, guidance=1.0):
    opts = SamplingOptions(parallel_num=p, num_sampling_steps=3, guidance_scale=guidance)
    g = torch.Generator().manual_seed(seed)
    return generate_bits(model, torch.tensor([1]), opts, GeneratorSource(g), known=known)


def _source(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(1, 16, 4, 4, generator=g) < 0.5, -1.0, 1.0)


def _flip_token(bits, y, x):
    out = bits.clone()
    out[0, :, y, x] = -out[0, :, y, x]
    return out


@pytest.mark.parametrize("p", [4])
def test_in_patch_conditioning(model, p):
    """Changing the kept tokens of the regenerated token's own patch changes it (it did not before)."""
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    keep[0, 0, 0] = False
    side = int(p**0.5)
    a = _source(1)
    b = a.clone()
    b[0, :, :side, :side] = -b[0, :, :side, :side]  # every kept token of the patch changes
    b[0, :, 0, 0] = a[0, :, 0, 0]
    for method in ("joint", "kept_first"):
        ra = _edit(model, KnownTokens(a, keep, method), p)[0, :, 0, 0]
        rb = _edit(model, KnownTokens(b, keep, method), p)[0, :, 0, 0]
        assert not torch.equal(ra, rb), method
    sa = _edit(model, KnownTokens(a, keep, "substitute"), p)[0, :, 0, 0]
    sb = _edit(model, KnownTokens(b, keep, "substitute"), p)[0, :, 0, 0]
    assert torch.equal(sa, sb)  # the old substitution: the regenerated token never saw the kept ones


@pytest.mark.parametrize("p", [1, 4])
def test_kept_tokens_later_in_order_condition_the_regenerated_ones(model, p):
    """Top-left quadrant regenerated (first in generation order); a kept token in the last patch changes."""
    keep = torch.ones(1, 4, 4, dtype=torch.bool)
    keep[0, :2, :2] = False
    a, b = _source(2), _flip_token(_source(2), 3, 3)
    ka = _edit(model, KnownTokens(a, keep, "kept_first"), p)[0, :, :2, :2]
    kb = _edit(model, KnownTokens(b, keep, "kept_first"), p)[0, :, :2, :2]
    assert not torch.equal(ka, kb)
    for method in ("joint", "substitute"):  # in generation order the quadrant comes before (3, 3)
        ja = _edit(model, KnownTokens(a, keep, method), p)[0, :, :2, :2]
        jb = _edit(model, KnownTokens(b, keep, method), p)[0, :, :2, :2]
        assert torch.equal(ja, jb), method


@pytest.mark.parametrize("method", ["kept_first", "joint", "substitute"])
@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_kept_tokens_come_back_exactly(model, method, guidance):
    keep = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(3)) < 0.5
    src = _source(4)
    out = _edit(model, KnownTokens(src, keep, method), 4, guidance=guidance)
    assert torch.equal(out[0][:, keep[0]], src[0][:, keep[0]])
    assert set(out.unique().tolist()) <= {-1.0, 1.0}


def test_kept_first_order_puts_whole_kept_patches_first():
    base = torch.arange(16).view(4, 4)  # 4 patches of 4 tokens
    keep = torch.tensor([[False, True, True, True] + [True] * 4 + [False] * 4 + [True] * 4])
    order = edit_order(keep, base.flatten(), 4, True)
    assert order.view(4, 4)[:, 0].tolist() == [4, 12, 0, 8]  # patches 1, 3 (whole kept) then 0, 2
    assert torch.equal(edit_order(keep, base.flatten(), 4, False), base.flatten())


def test_held_positions_enter_the_head_on_their_noised_path():
    seen = []

    def net(x, t, cond):
        seen.append((x.clone(), t.clone()))
        return torch.zeros_like(x)

    x_known = torch.ones(1, 2, 3)
    hold = torch.tensor([[[True], [False]]])
    eps = torch.full((1, 2, 3), -2.0)
    wrapped = held_net(net, x_known, hold, eps)
    x = torch.full((2, 2, 3), 7.0)  # a guided call: 2 rows for 1 sample row
    wrapped(x, torch.tensor([0.25, 0.25]), torch.zeros(2, 4))
    got = seen[0][0]
    assert torch.allclose(got[:, 0], torch.full((2, 3), 0.75 * -2.0 + 0.25))
    assert torch.equal(got[:, 1], torch.full((2, 3), 7.0))


def _h(t):
    return hashlib.sha256(t.to(torch.int8).numpy().tobytes()).hexdigest()[:16]


def test_default_generation_and_old_edits_are_bit_identical_to_before():
    """Digests recorded with the code before conditioned editing (same seeds and settings)."""
    pipe = BitDancePipeline.from_preset("tiny-text")
    common = {"num_sampling_steps": 2, "output_type": "bits"}
    plain = {1: "b944bd8857dfe390", 4: "ac34946e60e2e151", 16: "f4564c5156e259c4"}
    for p, digest in plain.items():
        out = pipe("a red circle", seed=[0, 1, 2, 3], num_images_per_prompt=4, parallel_num=p,
                   guidance_scale=2.0, **common)  # fmt: skip
        assert _h(out.bits) == digest
    src = pipe("a red circle", seed=1, **common).bits
    old = {1: "a22b3a76ccdfe09b", 4: "76db1cce7a964353", 16: "a73023b278de6325"}
    for p, digest in old.items():
        out = pipe.edit(src, box=(0, 0, 8, 8), prompt="a blue square", seed=3, parallel_num=p,
                        method="substitute", **common)  # fmt: skip
        assert _h(out.bits) == digest


def test_methods_are_recorded_and_replayed(tmp_path):
    pipe = BitDancePipeline.from_preset("tiny-text")
    src = pipe("a red circle", seed=1, num_sampling_steps=1)
    for method in ("kept_first", "joint", "substitute"):
        out = pipe.edit(src.images[0], box=(0, 0, 8, 8), prompt="a blue square", seed=2,
                        num_sampling_steps=1, method=method)  # fmt: skip
        assert out.recipes[0]["known"]["method"] == method
        out.save(tmp_path / f"{method}.png")
        again = pipe.replay(tmp_path / f"{method}.png")
        again.save(tmp_path / f"{method}-2.png")
        assert (tmp_path / f"{method}.png").read_bytes() == (tmp_path / f"{method}-2.png").read_bytes()
    # a recipe from before methods were recorded replays with the substitution that made it
    rec = read_recipe(tmp_path / "substitute.png")
    del rec["known"]["method"]
    assert torch.equal(pipe.replay(rec).bits, out.bits)
    with pytest.raises(ValueError, match="unknown edit method 'paste'; allowed"):
        pipe.edit(src.images[0], box=(0, 0, 8, 8), prompt="a cat", method="paste")


def test_default_edit_method_follows_how_the_model_was_trained() -> None:
    import dataclasses

    from bitdance.core.configs import get_preset
    from bitdance.sampling.inpaint import default_edit_method

    cfg = get_preset("generator", "tiny-text")
    assert default_edit_method(cfg) == "joint"
    assert default_edit_method(dataclasses.replace(cfg, any_order=True)) == "kept_first"
