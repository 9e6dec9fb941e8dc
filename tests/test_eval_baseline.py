"""Diffusion baseline: time-budgeted resumable training on a tiny budget, DDIM sampling, --vs-diffusion."""

import json

import pytest
import torch

pytest.importorskip("diffusers")

from bitdance.cli import main  # noqa: E402
from bitdance.evaluation import baseline as bl  # noqa: E402


def _fashion_available() -> bool:
    try:
        from bitdance.data.fashion_mnist import load_fashion_arrays

        load_fashion_arrays("train")
        return True
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(not _fashion_available(), reason="needs apt dataset-fashion-mnist")
TINY = ["--width", "8", "--size", "16", "--limit", "32", "--batch-size", "4", "--warmup", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    assert bl.main(["train", "--budget-minutes", "0.02", "--out", str(out), *TINY]) == 0
    return out


def test_labels_encode_class_and_tint():
    assert bl.label_of(7, None, True) == 63 and bl.label_of(7, "red", True) == 64
    assert bl.label_of(7, "red", False) == 7
    assert bl.labels_for_items([{"colour": "white"}, {"colour": None}], [0, 9], True) == [8, 81]


def _latest_state(run):
    return torch.load(sorted((run / "checkpoints").glob("state-*.pt"))[-1], weights_only=True)


def test_train_is_budgeted_and_resumable(trained, capsys):
    meta = json.loads((trained / "export" / "baseline.json").read_text())
    state = _latest_state(trained)
    assert meta["steps"] == state["step"] >= 1 and meta["num_labels"] == 90 and meta["params"] > 0
    assert (trained / "export" / "unet" / "config.json").is_file()
    cached = torch.load(trained / bl.DATA_CACHE, weights_only=True)  # resumes skip data preparation
    assert cached["images"].shape == (32, 3, 16, 16) and cached["images"].dtype == torch.uint8
    # EMA decay warms up (0.1 at the first step), reaching the target only after ~10k steps at 0.999
    # (the shared training EMA: the baseline trains on the shared loop)
    ema = bl.EMA(torch.nn.Linear(1, 1), 0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.num_updates = 90
    assert ema.current_decay() == pytest.approx(0.91)
    ema.num_updates = 10**6
    assert ema.current_decay() == 0.999
    # same budget again: already spent, nothing changes
    assert bl.main(["train", "--budget-minutes", "0.02", "--out", str(trained), *TINY]) == 0
    assert "budget already spent" in capsys.readouterr().out
    assert _latest_state(trained)["step"] == state["step"]
    # a larger total budget continues from the saved step and elapsed time
    assert bl.main(["train", "--budget-minutes", "0.04", "--out", str(trained), *TINY]) == 0
    later = _latest_state(trained)
    assert later["step"] > state["step"] and later["loop_elapsed_s"] >= 0.04 * 60
    assert "resuming at step" in capsys.readouterr().out


def test_ddim_sampling_is_seeded(trained):
    base = bl.DiffusionBaseline(trained)
    a = base.sample([0, 63], steps=3, seeds=[1, 2])
    b = base.sample([63], steps=3, seeds=[2], guidance_scale=1.0)
    assert a.shape == (2, 3, 16, 16) and a.abs().max() <= 1
    assert torch.allclose(a[1], b[0], atol=1e-5)  # an item does not depend on its batch
    assert base.sample([0], steps=2, seeds=[1], guidance_scale=3.0).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="labels must be in 0..89"):
        base.sample([90], steps=2)
    with pytest.raises(ValueError, match="DDIM steps"):
        base.sample([0], steps=0)


def test_bench_vs_diffusion_in_one_run(trained, tmp_path, capsys):
    from bitdance.evaluation.classifier import classifier_paths

    if not classifier_paths("fashion")[0].is_file():
        pytest.skip("needs the shipped fashion classifier (FID_cls)")
    out = tmp_path / "vs"
    assert (
        main(
            [
                "bench",
                "--vs-diffusion",
                "--model",
                "random:tiny-text",
                "--baseline",
                str(trained),
                "--n",
                "6",
                "--vs-batch-size",
                "3",
                "--steps",
                "1",
                "--baseline-steps",
                "3,2",
                "--cache-dir",
                str(tmp_path / "c"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "UNet DDIM-3" in printed and "BitDance" in printed and "FID_cls" in printed
    res = json.loads((out / "report.json").read_text())["results"]
    names = [s["system"] for s in res["systems"]]
    assert names == ["BitDance", "UNet DDIM-3", "UNet DDIM-2"]
    for s in res["systems"]:
        assert s["fid_cls"] > 0 and s["images_per_second"] > 0 and s["speed_ratio_bitdance_over_this"] > 0
    assert res["systems"][0]["fid_ratio_vs_bitdance"] == pytest.approx(1.0)
    assert (out / "samples.png").is_file()


def test_bad_budget_and_size_mismatch(tmp_path, trained, capsys):
    assert bl.main(["train", "--budget-minutes", "0", "--out", str(tmp_path / "x")]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert (
        main(
            [
                "bench",
                "--vs-diffusion",
                "--model",
                "random:mini",
                "--baseline",
                str(trained),
                "--n",
                "4",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "same size" in capsys.readouterr().err
