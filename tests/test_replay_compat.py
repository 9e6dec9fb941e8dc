"""A PNG made by an earlier release (main at 3fed59b, before the layout change, AI-content marking and the
semantic filter) replays byte-identically with today's code and the shipped model."""

from pathlib import Path

import pytest

from bitdance.cli import main
from bitdance.pipeline import models_dir

OLD = Path(__file__).parent / "data" / "made_before_v2.png"  # bitdance generate "a red sneaker" -o ...

pytestmark = pytest.mark.skipif(
    not (models_dir() / "bitdance-mini" / "model_index.json").is_file(), reason="bitdance-mini not shipped"
)


def test_png_from_before_replays_byte_identically(tmp_path):
    out = tmp_path / "again.png"
    assert main(["generate", "--replay", str(OLD), "-o", str(out)]) == 0
    assert out.read_bytes() == OLD.read_bytes()


def test_new_images_are_marked_and_replay_byte_identically(tmp_path):
    first, again = tmp_path / "new.png", tmp_path / "again.png"
    assert main(["generate", "a red sneaker", "--seed", "3", "-o", str(first)]) == 0
    assert b"trainedAlgorithmicMedia" in first.read_bytes()
    assert main(["generate", "--replay", str(first), "-o", str(again)]) == 0
    assert again.read_bytes() == first.read_bytes()
