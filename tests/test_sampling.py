import dataclasses

import pytest
import torch

from bitdance.core.configs import get_preset
from bitdance.core.random import PerItemSource
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.sampling.decode import KnownTokens, SamplingOptions, generate_bits
from bitdance.sampling.solvers import euler, euler_maruyama, guidance_at, time_grid


def trained_like(seed=0):
    """Tiny model with non-zero head (random final layers) so samples depend on the condition."""
    torch.manual_seed(seed)
    m = BitDanceTransformer(get_preset("generator", "tiny")).eval()
    with torch.no_grad():
        for p in m.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("p", [1, 4, 16])
def test_same_seed_same_bits(p):
    m = trained_like()
    opts = SamplingOptions(parallel_num=p, num_sampling_steps=4, guidance_scale=2.0)
    a = generate_bits(m, torch.tensor([1, 2]), opts, gens(5, 6))
    b = generate_bits(m, torch.tensor([1, 2]), opts, gens(5, 6))
    c = generate_bits(m, torch.tensor([1, 2]), opts, gens(7, 8))
    assert a.shape == (2, 16, 4, 4)
    assert set(a.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_item_alone_equals_item_in_batch(schedule):
    m = trained_like()
    opts = SamplingOptions(
        parallel_num=4, num_sampling_steps=4, guidance_scale=3.0, guidance_schedule=schedule
    )
    batch = generate_bits(m, torch.tensor([0, 5, 9]), opts, gens(10, 11, 12))
    alone = generate_bits(m, torch.tensor([5]), opts, gens(11))
    assert torch.equal(batch[1:2], alone)


def test_cfg_scale_one_equals_no_cfg_path():
    m = trained_like()
    torch.manual_seed(3)
    cond = torch.randn(2, 4, 64)
    uncond = torch.randn(2, 4, 64)
    for solver in (euler_maruyama, euler):
        guided = solver(m.head.net, torch.cat([cond, uncond]), (2, 4, 16), 5, 1.0, PerItemSource(gens(1, 2)))
        plain = solver(m.head.net, cond, (2, 4, 16), 5, 1.0, PerItemSource(gens(1, 2)))
        assert torch.allclose(guided, plain, atol=1e-5)
        assert torch.equal(torch.sign(guided), torch.sign(plain))
    # at the AR level, scale 1 takes the single-stream path; scale != 1 changes the result
    opts1 = SamplingOptions(num_sampling_steps=4, guidance_scale=1.0)
    opts3 = dataclasses.replace(opts1, guidance_scale=3.0)
    a = generate_bits(m, torch.tensor([4]), opts1, gens(0))
    b = generate_bits(m, torch.tensor([4]), opts3, gens(0))
    assert not torch.equal(a, b)


def test_guidance_schedules():
    assert guidance_at(0, 16, 4.0, "linear") == 1.0
    assert guidance_at(8, 16, 4.0, "linear") == pytest.approx(2.5)
    assert guidance_at(5, 16, 4.0, "constant") == 4.0
    with pytest.raises(ValueError, match="allowed"):
        guidance_at(0, 4, 2.0, "cosine")


def test_time_grid():
    g = time_grid(4)
    assert g[0] == 0 and abs(g[-1].item() - 0.95) < 1e-7 and len(g) == 5
    with pytest.raises(ValueError, match=">= 1"):
        time_grid(0)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"num_sampling_steps": -1}, "num_sampling_steps"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_schedule": "cos"}, "guidance_schedule"),
        ({"solver": "heun"}, "solver"),
        ({"parallel_num": 9}, "allowed"),
        ({"parallel_num": 64}, "allowed"),
    ],
)
def test_bad_options(kw, match):
    m = trained_like()
    with pytest.raises(ValueError, match=match):
        generate_bits(m, torch.tensor([0]), SamplingOptions(**kw), gens(0))


def test_known_tokens_are_kept_exactly():
    m = trained_like()
    opts = SamplingOptions(parallel_num=4, num_sampling_steps=3, guidance_scale=2.0)
    ref = generate_bits(m, torch.tensor([2]), opts, gens(0))
    keep = torch.zeros(1, 4, 4, dtype=torch.bool)
    keep[:, :, :2] = True  # keep the left half
    target = -ref  # force different kept values
    out = generate_bits(m, torch.tensor([2]), opts, gens(1), known=KnownTokens(target, keep))
    assert torch.equal(out[:, :, keep[0]], target[:, :, keep[0]])


def test_progress_callback_counts_steps():
    m = trained_like()
    seen = []
    generate_bits(
        m,
        torch.tensor([0]),
        SamplingOptions(parallel_num=4, num_sampling_steps=2),
        gens(0),
        callback=lambda s, t, partial: seen.append((s, t, partial.shape[1])),
    )
    assert seen == [(1, 4, 4), (2, 4, 8), (3, 4, 12), (4, 4, 16)]


def test_bf16_autocast_option_runs_and_validates():
    m = trained_like()
    opts = SamplingOptions(parallel_num=16, num_sampling_steps=2, guidance_scale=2.0, autocast="bf16")
    bits = generate_bits(m, torch.tensor([1]), opts, gens(0))
    assert set(bits.unique().tolist()) <= {-1.0, 1.0} and bits.shape == (1, 16, 4, 4)
    assert m.norm.weight.dtype == torch.float32  # weights untouched
    with pytest.raises(ValueError, match="autocast"):
        generate_bits(m, torch.tensor([1]), SamplingOptions(autocast="fp8"), gens(0))
