"""Folder dataset: manifests (JSONL/CSV), sidecar captions, bad files counted and reported, image modes."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from bitdance.data import FolderDataset, build_dataset, read_manifest


def _make_images(root: Path) -> None:
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "red_wide.png")  # non-square -> centre crop
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(root / "clear.png")  # fully transparent -> white
    Image.new("L", (24, 24), 0).save(root / "black.jpg")
    Image.new("P", (20, 20), 3).save(root / "palette.gif")
    Image.new("LA", (16, 16), (0, 128)).save(root / "half.png")  # half-transparent black on white -> grey
    (root / "corrupt.png").write_bytes(b"this is not an image")
    good = root / "red_wide.png"
    (root / "truncated.png").write_bytes(good.read_bytes()[:40])


ROWS = [
    {"file": "red_wide.png", "caption": "a red square", "label": 1},
    {"file": "clear.png", "caption": "nothing at all", "label": 2},
    {"file": "black.jpg", "caption": "darkness"},
    {"file": "palette.gif", "caption": "palette"},
    {"file": "half.png", "caption": "grey"},
    {"file": "corrupt.png", "caption": "broken"},
    {"file": "truncated.png", "caption": "cut short"},
    {"file": "gone.png", "caption": "missing"},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "caption", "label"])
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_manifest_skips_corrupt_and_missing_with_one_warning_each(tmp_path, fmt):
    _make_images(tmp_path)
    manifest = (_write_jsonl if fmt == "jsonl" else _write_csv)(tmp_path / f"m.{fmt}", ROWS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_dataset("folder", size=16, manifest=manifest)
    messages = [str(w.message) for w in caught]
    missing = [m for m in messages if "missing" in m]
    unreadable = [m for m in messages if "unreadable" in m]
    assert len(missing) == 1 and "gone.png" in missing[0] and " 1 " in missing[0]
    assert len(unreadable) == 1 and "skipped 2" in unreadable[0]
    assert "corrupt.png" in unreadable[0] and "truncated.png" in unreadable[0]
    assert ds.missing == ["gone.png"] and sorted(ds.skipped) == ["corrupt.png", "truncated.png"]
    assert len(ds) == 5

    items = [ds[i] for i in range(len(ds))]
    for it in items:
        assert it["image"].shape == (3, 16, 16) and it["image"].dtype == torch.float32
        assert it["image"].min() >= -1 and it["image"].max() <= 1
    by_caption = {it["caption"]: it for it in items}
    assert by_caption["a red square"]["label"] == 1 and by_caption["darkness"]["label"] == -1
    red = by_caption["a red square"]["image"]
    assert torch.allclose(red[:, 8, 8], torch.tensor([1.0, -1.0, -1.0]), atol=0.02)
    assert torch.allclose(by_caption["nothing at all"]["image"], torch.ones(3, 16, 16))  # white, not black
    grey = by_caption["grey"]["image"][:, 8, 8]
    assert (grey.abs() < 0.05).all()  # 50% black over white
    assert by_caption["a red square"]["meta"]["file"] == "red_wide.png"


def test_all_missing_is_a_value_error_naming_files(tmp_path):
    rows = [{"file": f"nope{i}.png", "caption": "x"} for i in range(3)]
    manifest = _write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(ValueError, match=r"none of the 3 listed files exist.*nope0\.png"):
        FolderDataset(manifest=manifest)


def test_all_unreadable_is_a_value_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable images"):
        FolderDataset(root=tmp_path)


def test_no_manifest_uses_sidecars_then_stems(tmp_path):
    sub = tmp_path / "cats"
    sub.mkdir()
    Image.new("RGB", (8, 8)).save(sub / "tabby_cat.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg")
    (tmp_path / "x.txt").write_text("a photo of a dog\n")
    ds = FolderDataset(root=tmp_path, size=8)
    assert sorted(ds[i]["caption"] for i in range(len(ds))) == ["a photo of a dog", "tabby cat"]
    assert ds[0]["label"] == -1


def test_split_column_filters_and_relative_paths(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    rows = [
        {"file": "a.png", "caption": "a", "split": "train", "source": "web"},
        {"file": "b.png", "caption": "b", "split": "test"},
    ]
    manifest = _write_jsonl(tmp_path / "m.jsonl", rows)
    train = FolderDataset(manifest=manifest, size=8)
    test = FolderDataset(manifest=manifest, split="test", size=8)
    assert [train[0]["caption"], test[0]["caption"]] == ["a", "b"] and len(train) == len(test) == 1
    assert train[0]["meta"]["source"] == "web"


def test_malformed_manifests_raise(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"file": "a.png", "caption": "a"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "bad.csv").write_text("path,text\na.png,hello\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "m.txt").write_text("")
    with pytest.raises(ValueError, match=".jsonl, .csv"):
        read_manifest(tmp_path / "m.txt")
    (tmp_path / "lab.jsonl").write_text('{"file": "a.png", "caption": "a", "label": "cat"}\n')
    with pytest.raises(ValueError, match="label must be an integer"):
        read_manifest(tmp_path / "lab.jsonl")


def test_late_failure_without_verify_serves_next_item(tmp_path):
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"junk")
    ds = FolderDataset(root=tmp_path, size=8, verify=False)
    assert len(ds) == 2
    with pytest.warns(UserWarning, match="unreadable image b.png"):
        item = ds[1]
    assert item["caption"] == "a" and ds.skipped == ["b.png"]
