"""Fast sampler settings: deterministic, batch-position independent, close to the reference; the bench."""

import json

import pytest
import torch

from bitdance.cli import main
from bitdance.core.configs import get_preset
from bitdance.core.random import PerItemSource
from bitdance.generator.transformer import BitDanceTransformer
from bitdance.sampling.decode import SamplingOptions, generate_bits
from bitdance.sampling.head_cache import CachedHead
from bitdance.sampling.presets import SAMPLER_PRESETS, sampler_settings
from bitdance.sampling.solvers import em_fast, euler, euler_fast, euler_maruyama

FAST = ["em_fast", "euler_fast"]


def trained_like(seed=0):
    """Tiny model with a non-zero head so that samples depend on the condition and the noise."""
    torch.manual_seed(seed)
    m = BitDanceTransformer(get_preset("generator", "tiny")).eval()
    with torch.no_grad():
        for p in m.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("solver", FAST)
@pytest.mark.parametrize("p", [1, 4, 16])
def test_fast_solver_same_seed_same_bits(solver, p):
    m = trained_like()
    opts = SamplingOptions(parallel_num=p, num_sampling_steps=4, guidance_scale=2.0, solver=solver)
    a = generate_bits(m, torch.tensor([1, 2]), opts, gens(5, 6))
    b = generate_bits(m, torch.tensor([1, 2]), opts, gens(5, 6))
    c = generate_bits(m, torch.tensor([1, 2]), opts, gens(7, 8))
    assert set(a.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("solver", FAST)
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_fast_solver_item_alone_equals_item_in_batch(solver, guidance):
    m = trained_like()
    opts = SamplingOptions(parallel_num=4, num_sampling_steps=4, guidance_scale=guidance, solver=solver)
    batch = generate_bits(m, torch.tensor([0, 5, 9]), opts, gens(10, 11, 12))
    alone = generate_bits(m, torch.tensor([5]), opts, gens(11))
    assert torch.equal(batch[1:2], alone)


@pytest.mark.parametrize("fast, ref", [(em_fast, euler_maruyama), (euler_fast, euler)])
@pytest.mark.parametrize("guided", [False, True])
def test_fast_solver_follows_its_reference_up_to_rounding(fast, ref, guided):
    """Same SDE / ODE, same grid and the same draws: continuous outputs agree to float rounding."""
    m = trained_like()
    torch.manual_seed(3)
    cond = torch.randn(4 if guided else 2, 4, 64)
    a = fast(m.head.net, cond, (2, 4, 16), 6, 2.5, PerItemSource(gens(1, 2)))
    b = ref(m.head.net, cond, (2, 4, 16), 6, 2.5, PerItemSource(gens(1, 2)))
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(a, torch.zeros_like(a))


def test_em_fast_draws_like_the_reference():
    """The cached sampler consumes the random stream exactly as the reference does."""
    m = trained_like()
    cond = torch.randn(2, 4, 64)
    ga, gb = gens(4), gens(4)
    em_fast(m.head.net, cond, (1, 4, 16), 5, 2.0, PerItemSource(ga))
    euler_maruyama(m.head.net, cond, (1, 4, 16), 5, 2.0, PerItemSource(gb))
    assert torch.equal(torch.randn(3, generator=ga[0]), torch.randn(3, generator=gb[0]))


def test_cached_head_refuses_other_networks_and_bad_rows():
    m = trained_like()
    with pytest.raises(ValueError, match="HeadNet"):
        CachedHead(lambda z, t, c: z, torch.zeros(2, 4, 64), torch.zeros(3))
    head = CachedHead(m.head.net, torch.zeros(6, 4, 64), torch.zeros(3))
    with pytest.raises(ValueError, match="condition rows 6"):
        head.velocity(torch.zeros(2, 4, 16), 0, 1.0)


def test_sampler_settings_resolve_to_pipeline_arguments():
    assert sampler_settings("reference", 100) == {"solver": "euler_maruyama", "num_sampling_steps": 100}
    assert sampler_settings("fast", 20) == {"solver": "em_fast", "num_sampling_steps": 10}
    assert sampler_settings("fast4", 100)["num_sampling_steps"] == 25
    assert sampler_settings("fast4", 3)["num_sampling_steps"] == 1
    assert set(SAMPLER_PRESETS) >= {"reference", "fast-exact", "fast", "fast4"}
    with pytest.raises(ValueError, match="allowed: "):
        sampler_settings("turbo", 20)
    with pytest.raises(ValueError, match="positive integer"):
        sampler_settings("fast", 0)


def test_bench_sampler_speed_writes_shared_report(tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["bench", "--sampler-speed", "--model", "random:tiny-text", "--batch-sizes", "1,2"]
    argv += ["--repeats", "1", "--peak-size", "128", "--skip", "official,readme,training", "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads((out / "speed_sampler.json").read_text())
    assert doc["name"] == "speed_sampler" and doc["recipe"]["command"].startswith("bitdance bench")
    table = doc["tables"]["sampler_speed"]
    assert len(table["rows"]) == 2 * 4 and table["columns"][1] == "setting"  # 2 batch sizes x 4 settings
    sec = doc["metrics"]["sections"]["model"][0]
    rows = {r["setting"]: r for r in sec["rows"]}
    assert rows["reference"]["speedup_vs_reference"] == 1.0
    assert rows["fast"]["num_sampling_steps"] * 2 == rows["reference"]["num_sampling_steps"]
    assert rows["fast4"]["num_sampling_steps"] * 4 == rows["reference"]["num_sampling_steps"]
    # fewer head steps -> fewer FLOPs per image; same steps -> nearly the same FLOPs
    assert rows["fast"]["gflop_per_image"] < rows["reference"]["gflop_per_image"]
    assert rows["fast-exact"]["gflop_per_image"] == pytest.approx(
        rows["reference"]["gflop_per_image"], rel=0.2
    )
    assert 0 < rows["reference"]["fraction_of_matmul_peak"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--settings", "fast,turbo"], "unknown sampler setting 'turbo'"),
        (["--settings", "fast"], "must include 'reference'"),
        (["--skip", "nothing"], "--skip takes"),
    ],
)
def test_bench_sampler_speed_bad_input(extra, message, tmp_path, capsys):
    argv = ["bench", "--sampler-speed", "--model", "random:tiny-text", *extra, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_fast_setting_is_recorded_and_replays_byte_identically(tmp_path):
    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_preset("tiny-text")
    kw = sampler_settings("fast", pipe.defaults["num_sampling_steps"])
    out = pipe("a red sneaker", seed=3, guidance_scale=2.0, **kw)
    assert (
        out.recipes[0]["solver"] == "em_fast"
        and out.recipes[0]["num_sampling_steps"] == kw["num_sampling_steps"]
    )
    out.save(tmp_path / "a.png", 0)
    pipe.replay(tmp_path / "a.png").save(tmp_path / "b.png", 0)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    ref = pipe("a red sneaker", seed=3, guidance_scale=2.0)
    assert ref.recipes[0]["solver"] == "euler_maruyama"


def test_bench_sampler_speed_times_both_kv_caches(tmp_path, capsys):
    out = tmp_path / "kv"
    argv = ["bench", "--sampler-speed", "--model", "random:tiny-text", "--batch-sizes", "1"]
    argv += ["--repeats", "1", "--peak-size", "64", "--skip", "official,readme,training", "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads((out / "speed_sampler.json").read_text())
    rows = doc["metrics"]["sections"]["kv_cache"]["rows"]
    assert [r["kv_cache"] for r in rows] == ["preallocated", "concat"]
    assert rows[1]["speedup_vs_concat"] == 1.0 and rows[0]["seconds_per_call"] > 0
    assert set(doc["metrics"]["kv_cache_speedup"]) == {"batch_1"}
    assert [r[1] for r in doc["tables"]["kv_cache"]["rows"]] == ["preallocated", "concat"]


def _readme_result():
    walls = {"median_s": 3.0, "min_s": 2.5, "all_s": [2.5, 3.0, 3.5], "cpu_median_s": 2.0, "cpu_all_s": [2.0]}
    floor = {"median_s": 1.2, "min_s": 1.1, "all_s": [1.1, 1.2], "cpu_median_s": 1.0, "cpu_all_s": [1.0]}
    before = {**walls, "median_s": 4.5, "folder": "/old", "speedup": 1.5}
    return {
        "command": 'bitdance generate "a red sneaker" -o sneaker.png',
        "threads": 1,
        "runs": 3,
        "target_s": 2.0,
        "readme": walls,
        "import_torch": floor,
        "above_import_torch_s": 1.8,
        "baselines": {"before": before},
        "stages_s": {"import torch": 1.1, "load model": 0.2},
        "load_average_1min": [0.5, 0.6],
    }


def test_readme_report_format():
    from bitdance.evaluation.readme_speed import readme_table, shared_report

    res = _readme_result()
    table = readme_table(res)
    assert table["rows"][0][:2] == [res["command"], "3.00"] and table["rows"][1][-1] == "0.67x"
    assert table["rows"][2][0].startswith('python -c "import torch"')
    assert [r[0] for r in table["rows"][3:]] == ["stage: import torch", "stage: load model"]
    doc = json.loads(shared_report(res, {"command": "python scripts/bench_readme.py", "utc": "now"}))
    assert doc["name"] == "speed_readme" and doc["metrics"]["met"] is False
    assert doc["metrics"]["speedup_vs"] == {"before": 1.5}


def test_readme_bench_bad_input(tmp_path):
    from bitdance.evaluation.readme_speed import bench_readme

    with pytest.raises(ValueError, match="runs must be a positive integer"):
        bench_readme(0)
    with pytest.raises(ValueError, match="holds no bitdance package"):
        bench_readme(1, {"before": str(tmp_path)})


def test_cached_head_modulations_ahead_equal_per_step(monkeypatch):
    """The adaLN modulations computed for the whole grid at once give the per-step velocities bit for bit,
    and past MODULATION_BUDGET the head computes them per step instead."""
    from bitdance.sampling import head_cache

    m = trained_like()
    cond = torch.randn(6, 4, 64, generator=torch.Generator().manual_seed(3))
    times = torch.tensor([0.0, 0.3, 0.7, 0.95])
    x = torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ahead = CachedHead(m.head.net, cond, times)
        monkeypatch.setattr(head_cache, "MODULATION_BUDGET", 0)
        per_step = CachedHead(m.head.net, cond, times)
        assert ahead.mods is not None and per_step.mods is None
        for k in range(times.numel()):
            v = ahead.velocity(x, k, 2.5)
            assert torch.equal(v, per_step.velocity(x, k, 2.5))
            t = times[k].reshape(1)
            xh = m.head.net(torch.cat([x, x]), t.expand(6), cond)  # the network's own forward
            vc, vu = ((xh[r] - x) / max(1 - float(t), 0.05) for r in (slice(0, 3), slice(3, 6)))
            assert torch.allclose(v, vu + 2.5 * (vc - vu), atol=1e-5)
