"""PNGs from an earlier release and model: main at 3fed59b made `made_before_v2.png` with bitdance-mini v1,
before the layout change, AI-content marking and the semantic filter. Its bytes replayed identically while
v1 was the shipped model (that test ran from 3fed59b until v2 shipped); with v2 shipped, replaying it
must refuse with the model-hash error and write nothing, and `--force` must still read its old-format
recipe and make the image from it. New images replay byte-identically."""

from pathlib import Path

import pytest

from bitdance.cli import main
from bitdance.pipeline import models_dir
from bitdance.pipeline.provenance import read_recipe

OLD = Path(__file__).parent / "data" / "made_before_v2.png"  # bitdance generate "a red sneaker" -o ...
V1_HASH = "3f2b9890b03b"  # the model hash recorded in OLD (bitdance-mini v1)

pytestmark = pytest.mark.skipif(
    not (models_dir() / "bitdance-mini" / "model_index.json").is_file(), reason="bitdance-mini not shipped"
)


def test_png_of_the_previous_model_is_refused_by_hash_and_forced_replay_reads_its_recipe(tmp_path, capsys):
    out = tmp_path / "again.png"
    assert main(["generate", "--replay", str(OLD), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model hash mismatch" in err and V1_HASH in err and "--force" in err
    assert not out.exists()
    assert main(["generate", "--replay", str(OLD), "-o", str(out), "--force"]) == 0
    old, new = read_recipe(OLD), read_recipe(out)
    assert new["prompt"] == old["prompt"] == "a red sneaker"
    assert new["seed"] == old["seed"]


def test_new_images_are_marked_and_replay_byte_identically(tmp_path):
    first, again = tmp_path / "new.png", tmp_path / "again.png"
    assert main(["generate", "a red sneaker", "--seed", "3", "-o", str(first)]) == 0
    assert b"trainedAlgorithmicMedia" in first.read_bytes()
    assert main(["generate", "--replay", str(first), "-o", str(again)]) == 0
    assert again.read_bytes() == first.read_bytes()
