"""Diffusion baseline: tiny UNet wiring, samplers by name, seeded sampling, time-budgeted resumable training
on the shared loop, and `bench --vs-diffusion` end to end."""

import json

import pytest
import torch

pytest.importorskip("diffusers")

from bitdance.cli import main  # noqa: E402
from bitdance.evaluation import baseline as bl  # noqa: E402
from bitdance.evaluation import baseline_cli as bc  # noqa: E402
from bitdance.evaluation import baseline_train as bt  # noqa: E402


def _fashion_available() -> bool:
    try:
        from bitdance.data.fashion_mnist import load_fashion_arrays

        load_fashion_arrays("train")
        return True
    except FileNotFoundError:
        return False


needs_fashion = pytest.mark.skipif(not _fashion_available(), reason="needs apt dataset-fashion-mnist")
TINY = ["--channels", "8,16", "--attention-levels", "1", "--size", "16", "--limit", "32", "--batch-size", "4"]
TINY += ["--warmup", "2", "--ckpt-every", "3", "--log-every", "1"]
TINY_CFG = bl.BaselineConfig(block_out_channels=(8, 16), attention_levels=(1,), size=16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not _fashion_available():
        pytest.skip("needs apt dataset-fashion-mnist")
    out = tmp_path_factory.mktemp("baseline")
    assert bc.main(["train", "--budget-minutes", "0.005", "--out", str(out), *TINY]) == 0  # ends at step 1
    return out


def test_labels_encode_class_and_tint():
    assert bl.label_of(7, None, True) == 63 and bl.label_of(7, "red", True) == 64
    assert bl.label_of(7, "red", False) == 7
    assert bl.labels_for_items([{"colour": "white"}, {"colour": None}], [0, 9], True) == [8, 81]


def test_unet_config_round_trip_and_checks():
    unet = bl.build_unet(TINY_CFG)
    assert unet.config.num_class_embeds == 91 and tuple(unet.config.block_out_channels) == (8, 16)
    assert unet.config.down_block_types == ("DownBlock2D", "AttnDownBlock2D")
    assert bl.BaselineConfig.from_dict(json.loads(json.dumps(TINY_CFG.to_dict()))) == TINY_CFG
    for bad, match in (
        ({"block_out_channels": (8, 12)}, "multiples of norm groups"),
        ({"attention_levels": (2,)}, "attention levels"),
        ({"size": 15}, "divisible"),
    ):
        with pytest.raises(ValueError, match=match):
            bl.build_unet(bl.BaselineConfig(**{**TINY_CFG.to_dict(), **bad}))
    # the default is sized for 32 px data: about a million parameters, FLOPs counted per image
    big = bl.build_unet(bl.BaselineConfig())
    assert 0.8e6 < sum(p.numel() for p in big.parameters()) < 1.5e6
    f1, f2 = bl.unet_flops(big, 32, 1), bl.unet_flops(big, 32, 2)
    assert 1e8 < f1 < 2e9 and f1 == f2


@pytest.mark.parametrize("sampler", bl.SAMPLERS)
def test_samplers_are_seeded_and_batch_independent(sampler):
    torch.manual_seed(0)
    unet = bl.build_unet(TINY_CFG).eval()
    a = bl.sample_unet(unet, TINY_CFG, [0, 63], 3, [1, 2], 1.0, sampler)
    b = bl.sample_unet(unet, TINY_CFG, [63], 3, [2], 1.0, sampler)
    c = bl.sample_unet(unet, TINY_CFG, [0, 63], 3, [1, 2], 1.0, sampler)
    assert a.shape == (2, 3, 16, 16) and a.abs().max() <= 1
    assert torch.equal(a, c)  # same seeds, same images
    assert torch.allclose(a[1], b[0], atol=1e-5)  # an item does not depend on its batch
    d = bl.sample_unet(unet, TINY_CFG, [0, 63], 3, [3, 4], 1.0, sampler)
    assert not torch.allclose(a, d)
    g = bl.sample_unet(unet, TINY_CFG, [0], 2, [1], 3.0, sampler)
    assert g.shape == (1, 3, 16, 16)


def test_sampling_input_errors():
    unet = bl.build_unet(TINY_CFG).eval()
    with pytest.raises(ValueError, match="labels must be in 0..89"):
        bl.sample_unet(unet, TINY_CFG, [90], 2)
    with pytest.raises(ValueError, match="steps must be an integer"):
        bl.sample_unet(unet, TINY_CFG, [0], 0)
    with pytest.raises(ValueError, match="one seed per label"):
        bl.sample_unet(unet, TINY_CFG, [0, 1], 2, [0])
    with pytest.raises(ValueError, match="unknown sampler 'euler'; choose one of dpmpp, ddim"):
        bl.sample_unet(unet, TINY_CFG, [0], 2, sampler="euler")


def _latest_state(run):
    return torch.load(sorted((run / "checkpoints").glob("state-*.pt"))[-1], weights_only=True)


@needs_fashion
def test_train_is_budgeted_and_resumable(trained, capsys):
    meta = json.loads((trained / "export" / "baseline.json").read_text())
    state = _latest_state(trained)
    assert meta["steps"] == state["step"] >= 1 and meta["config"]["num_labels"] == 90 and meta["params"] > 0
    assert (trained / "export" / "unet" / "config.json").is_file()
    cached = torch.load(trained / bl.DATA_CACHE, weights_only=True)  # resumes skip data preparation
    assert cached["images"].shape == (32, 3, 16, 16) and cached["images"].dtype == torch.uint8
    assert state["loop_elapsed_s"] >= 0.005 * 60
    assert bc.main(["train", "--budget-minutes", "0.005", "--out", str(trained), *TINY]) == 0
    assert "budget already spent" in capsys.readouterr().out
    assert _latest_state(trained)["step"] == state["step"]
    # a larger total budget continues from the saved step and elapsed time (--stop-at keeps it short)
    argv = [
        "train",
        "--budget-minutes",
        "10",
        "--out",
        str(trained),
        *TINY,
        "--stop-at",
        str(state["step"] + 1),
    ]
    assert bc.main(argv) == 0
    later = _latest_state(trained)
    assert later["step"] == state["step"] + 1 and later["loop_elapsed_s"] > state["loop_elapsed_s"]
    assert "resuming at step" in capsys.readouterr().out
    base = bl.DiffusionBaseline(trained)
    x = base.sample([0, 63], 2, [1, 2])
    assert x.shape == (2, 3, 16, 16) and torch.equal(x, base.sample([0, 63], 2, [1, 2]))
    assert base.flops_per_call() > 0


@needs_fashion
def test_train_dev_monitor_and_stop_at(tmp_path):
    from bitdance.evaluation.classifier import classifier_paths
    from bitdance.evaluation.versus import dev_guidance

    if not classifier_paths("fashion")[0].is_file():
        pytest.skip("needs the shipped fashion classifier (FID_cls)")
    out = tmp_path / "dev"
    args = ["train", "--budget-minutes", "5", "--out", str(out), *TINY, "--stop-at", "3", "--dev-n", "4"]
    assert bc.main([*args, "--dev-steps", "1", "--dev-cfg", "1,2"]) == 0
    meta = json.loads((out / "export" / "baseline.json").read_text())
    assert meta["steps"] == 3
    (h,) = meta["dev_history"]
    assert h["step"] == 3 and h["dev_fid_cls_cfg1"] > 0 and h["dev_fid_cls_cfg2"] > 0
    assert dev_guidance(meta) == (1.0 if h["dev_fid_cls_cfg1"] <= h["dev_fid_cls_cfg2"] else 2.0)
    assert json.loads((out / "run.json").read_text())["dev_history"] == meta["dev_history"]


def test_dev_guidance_rule():
    from bitdance.evaluation.versus import dev_guidance

    assert dev_guidance({}) == 1.0
    hist = [{"step": 1, "dev_fid_cls_cfg1": 5.0, "dev_fid_cls_cfg2": 9.0}]
    hist.append({"step": 2, "dev_fid_cls_cfg1": 4.0, "dev_fid_cls_cfg2": 3.5})
    assert dev_guidance({"dev_history": hist}) == 2.0  # the last evaluation decides
    assert dev_guidance({"dev_history": hist[:1]}) == 1.0


def test_train_option_errors(tmp_path, capsys):
    assert bc.main(["train", "--budget-minutes", "0", "--out", str(tmp_path / "x")]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert bc.main(["train", "--budget-minutes", "1", "--out", str(tmp_path / "x"), "--dev-n", "1"]) == 2
    assert "--dev-n 0 or >= 2" in capsys.readouterr().err
    assert (
        bc.main(["train", "--budget-minutes", "1", "--out", str(tmp_path / "x"), "--channels", "8,12"]) == 2
    )
    assert "multiples of norm groups" in capsys.readouterr().err
    assert bc.main(["sample", "--baseline", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a.png")]) == 2
    assert "not a trained baseline" in capsys.readouterr().err
    assert bt.DEV_SPLIT == "test"  # dev items are test 0..n-1; the comparison reads test-heldout (>= 5000)


@needs_fashion
def test_bench_vs_diffusion_in_one_run(trained, tmp_path, capsys):
    from bitdance.evaluation.classifier import classifier_paths

    if not classifier_paths("fashion")[0].is_file():
        pytest.skip("needs the shipped fashion classifier (FID_cls)")
    out, results, images = tmp_path / "vs", tmp_path / "vs_diffusion.json", tmp_path / "img"
    argv = ["bench", "--vs-diffusion", "--model", "random:tiny-text", "--baseline", str(trained)]
    argv += ["--n", "6", "--vs-batch-size", "3", "--parallel", "4,16", "--vs-head-steps", "1,2"]
    argv += ["--baseline-steps", "1,2", "--baseline-samplers", "dpmpp,ddim", "--bootstrap-reps", "3"]
    argv += ["--split", "test-heldout", "--cache-dir", str(tmp_path / "c"), "--out", str(out)]
    argv += ["--results", str(results), "--images-dir", str(images)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "DPM++-2" in printed and "P=16 head-2" in printed and "speed ratio" in printed
    res = json.loads((out / "report.json").read_text())["results"]
    settings = [(p["system"], p["setting"]) for p in res["points"]]
    assert settings[:4] == [("BitDance", f"P={p} head-{s}") for p in (4, 16) for s in (1, 2)]
    assert settings[4:] == [("diffusion", f"{n}-{s}") for n in ("DPM++", "DDIM") for s in (1, 2)]
    for p in res["points"]:
        assert p["fid_cls"] > 0 and p["images_per_second"] > 0 and p["gflop_per_image"] > 0
        assert p["ci"]["low"] <= p["ci"]["high"]
    diff = [p for p in res["points"] if p["system"] == "diffusion"]
    assert diff[1]["gflop_per_image"] == pytest.approx(2 * diff[0]["gflop_per_image"])  # 2 steps vs 1
    m = res["matched"]
    assert m["target_fid_cls"] == max(m["best_fid_ours"], m["best_fid_theirs"])
    assert m["speed_ratio"] == pytest.approx(m["ours_images_per_second"] / m["theirs_images_per_second"])
    committed = json.loads(results.read_text())
    assert committed["name"] == "vs_diffusion" and len(committed["tables"]["frontier"]["rows"]) == 8
    assert "samples" not in committed["metrics"]["points"][0]
    assert (images / "vs_diffusion_frontier.png").is_file() and (images / "baseline_samples.png").is_file()
    assert (out / "frontier.png").is_file() and (out / "samples.png").is_file()


@needs_fashion
def test_bench_vs_diffusion_errors(tmp_path, trained, capsys):
    base = ["bench", "--vs-diffusion", "--model", "random:tiny-text", "--baseline", str(trained), "--n", "4"]
    assert main([*base, "--baseline-samplers", "euler", "--out", str(tmp_path / "o")]) == 2
    assert "--baseline-samplers takes a comma list of dpmpp, ddim" in capsys.readouterr().err
    assert main([*base, "--parallel", "2", "--out", str(tmp_path / "o")]) == 2
    assert "supports P in" in capsys.readouterr().err
    mini = ["bench", "--vs-diffusion", "--model", "random:mini", "--baseline", str(trained), "--n", "4"]
    assert main([*mini, "--out", str(tmp_path / "o")]) == 2
    assert "same size" in capsys.readouterr().err


def test_plateau_rule():
    def hist(*scores):
        return [{"step": i, "dev_fid_cls_cfg1": s + 1, "dev_fid_cls_cfg2": s} for i, s in enumerate(scores)]

    assert bt.plateau(hist(50, 40, 39.5, 39.4), 0, 0.02) is None  # patience 0: the budget alone ends it
    assert bt.plateau(hist(50, 40, 39.5), 3, 0.02) is None  # not enough evaluations yet
    assert bt.plateau(hist(50, 40, 30, 20), 3, 0.02) is None  # still improving
    why = bt.plateau(hist(50, 40, 39.5, 39.4, 40.5), 3, 0.02)  # 39.4 is not 2% better than 40
    assert why is not None and "39.40" in why and "40.00" in why
    assert bt.plateau(hist(50, 40, 39.5, 39.4, 38.0), 3, 0.02) is None  # 38 is 5% better than 40


class _PlateauTrainer:
    """A trainer whose dev score stops improving after the second evaluation."""

    global_batch = 1

    def __init__(self):
        self.scores, self.steps = [], 0

    def start(self, step):
        pass

    def train_step(self, step):
        self.steps += 1
        return {"loss": 1.0}

    def evaluate(self, step):
        self.scores.append({"dev_fid_cls": max(10.0, 30.0 - 10 * len(self.scores))})
        return self.scores[-1]

    def converged(self):
        return bt.plateau(self.scores, 2, 0.02)

    def save_samples(self, step, folder):
        return None

    def export(self, folder):
        return None

    def state_dict(self):
        return {"scores": json.dumps(self.scores)}

    def load_state_dict(self, state):
        self.scores = json.loads(state["scores"])

    def epoch(self, step):
        return float("nan")


def test_shared_loop_stops_at_a_plateau_and_stays_stopped(tmp_path):
    from bitdance.training.dist import DistContext
    from bitdance.training.loop import LoopConfig, fit

    lc = dict(steps=100, out=tmp_path, log_every=1, ckpt_every=2, eval_every=2, progress=False)
    t = _PlateauTrainer()
    summary = fit(t, LoopConfig(**lc), DistContext())
    # evaluations at steps 2, 4, 6, 8, 10 score 30, 20, 10, 10, 10: at step 10 the last two (10, 10) do not
    # beat the best before them (10), so the run ends there with a checkpoint
    assert summary["step"] == 10 and t.steps == 10 and summary["checkpoint"]
    again = _PlateauTrainer()
    assert fit(again, LoopConfig(**lc, resume=True), DistContext())["step"] == 10 and again.steps == 0
