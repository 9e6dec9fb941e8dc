"""Evaluation classifiers: training command on a tiny budget, save/load round trip, shipped weights."""

import json

import pytest
import torch

from bitdance.evaluation.classifier import (
    ClassifierConfig,
    EvalClassifier,
    classifier_paths,
    load_classifier_from,
    save_classifier,
)
from bitdance.evaluation.train_classifier import main, tint_batch


def test_round_trip_and_any_input_size(tmp_path):
    torch.manual_seed(0)
    model = EvalClassifier(ClassifierConfig("fashion", [f"c{i}" for i in range(10)])).eval()
    save_classifier(model, tmp_path)
    loaded = load_classifier_from("fashion", tmp_path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        assert loaded.features(torch.zeros(1, 3, 20, 20)).shape == (1, 128)
    with pytest.raises(FileNotFoundError, match="train it with"):
        load_classifier_from("emoji", tmp_path)
    with pytest.raises(ValueError, match="unknown classifier task"):
        classifier_paths("cars")


def test_tint_batch_matches_the_dataset_rule():
    from bitdance.data import COLOURS, tint_garment

    grey = torch.linspace(0, 1, 16).reshape(1, 4, 4)
    ours = tint_batch(grey, torch.tensor([2]))  # 2 = second colour of COLOURS
    ref = tint_garment((grey[0].numpy() * 255).round().astype("uint8"), list(COLOURS)[1])
    assert torch.allclose((ours[0].permute(1, 2, 0) + 1) * 127.5, torch.from_numpy(ref).float(), atol=2.0)
    assert torch.equal(tint_batch(grey, torch.tensor([0]))[0, 0], grey[0] * 2 - 1)  # 0 = plain grey


def _fashion_available() -> bool:
    try:
        from bitdance.data.fashion_mnist import load_fashion_arrays

        load_fashion_arrays("test")
        return True
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not _fashion_available(), reason="needs apt dataset-fashion-mnist")
def test_training_command_on_a_tiny_budget(tmp_path, capsys):
    args = ["--task", "fashion", "--epochs", "1", "--limit", "64", "--test-limit", "16"]
    args += ["--out", str(tmp_path)]
    assert main(args) == 0
    cfg = json.loads((tmp_path / "fashion_classifier.json").read_text())
    assert cfg["training"]["command"].endswith(" ".join(args)) and cfg["training"]["train_items"] == 64
    assert 0 <= cfg["metrics"]["test_accuracy_tinted"] <= 1 and cfg["metrics"]["test_items"] == 16
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["fashion", "emoji"])
def test_shipped_classifiers_are_small_and_documented(task):
    weights, cfg_path = classifier_paths(task)
    if not weights.is_file():
        pytest.skip(f"{task} classifier not shipped in this checkout")
    assert weights.stat().st_size < 2.5 * 2**20  # both together stay under 5 MB
    cfg = json.loads(cfg_path.read_text())
    assert cfg["training"]["command"].startswith("python -m bitdance.evaluation.train_classifier")
    accuracy = max(v for k, v in cfg["metrics"].items() if "accuracy" in k and isinstance(v, float))
    assert accuracy > 0.85


def test_heldout_renders_differ_from_training_renders_as_stated():
    """compose() puts the glyph where the condition says: size, offset and background."""
    import numpy as np
    from PIL import Image

    from bitdance.evaluation.heldout import TRAIN_GLYPH_FRACTION, compose

    glyph = Image.new("RGBA", (50, 50), (255, 0, 0, 255))
    for scale in (0.6, 1.0):
        a = np.asarray(compose(glyph, scale, (0.0, 0.0), (128, 128, 128), size=100))
        red = (a[..., 0] > 200) & (a[..., 1] < 60)
        width = red.any(0).sum() / 100
        assert abs(width - TRAIN_GLYPH_FRACTION * scale) < 0.03
        assert tuple(a[0, 0]) == (128, 128, 128)
    shifted = np.asarray(compose(glyph, 0.6, (0.15, 0.0), (0, 0, 0), size=100))
    cols = np.nonzero(shifted[..., 0].max(0) > 200)[0]
    assert abs((cols.mean() + 0.5) / 100 - 0.65) < 0.03


@pytest.mark.skipif(not classifier_paths("emoji")[0].is_file(), reason="needs the shipped emoji classifier")
def test_emoji_heldout_accuracy_is_measured_per_condition():
    from bitdance.evaluation.classifier import load_classifier
    from bitdance.evaluation.heldout import EMOJI_CONDITIONS, emoji_heldout

    try:
        res = emoji_heldout(load_classifier("emoji"), limit=40)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    assert set(res) == set(EMOJI_CONDITIONS)
    seen = res["train_render"]
    assert seen["n"] == 40 and seen["accuracy"] >= 0.9
    assert seen["ci95"][0] <= seen["accuracy"] <= seen["ci95"][1]
    for cond, v in res.items():
        if "skipped" not in v:
            assert 0 <= v["ci95"][0] <= v["accuracy"] <= v["ci95"][1] <= 1, cond
