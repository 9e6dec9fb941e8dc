"""WebDataset-layout shards: round trip, rank x worker splitting, corrupt data skipped and counted."""

from __future__ import annotations

import io
import json
import tarfile
import types
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import bitdance.data.shards as shards_mod
from bitdance.data import ShapesDataset, ShardDataset, build_dataset, collate_items, expand_urls, write_shards

N_ITEMS, PER_SHARD = 23, 4  # -> 6 shards, the last one short


@pytest.fixture(scope="module")
def source():
    ds = ShapesDataset("train", size=16, length=N_ITEMS)
    return [ds[i] for i in range(N_ITEMS)]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, source):
    out = tmp_path_factory.mktemp("shards")
    items = [dict(it, key=f"s{i:04d}", label=i % 3) for i, it in enumerate(source)]
    paths = write_shards(items, out, samples_per_shard=PER_SHARD)
    assert [p.name for p in paths] == [f"shard-{i:06d}.tar" for i in range(6)]
    return out


def _keys(ds) -> list[str]:
    return [it["meta"]["key"] for it in ds]


def test_round_trip_is_lossless(shard_dir, source):
    ds = build_dataset("webdataset", size=16, urls=str(shard_dir / "*.tar"))
    items = list(ds)
    assert len(items) == N_ITEMS
    for i, (got, want) in enumerate(zip(items, source)):
        assert got["meta"]["key"] == f"s{i:04d}" and got["caption"] == want["caption"]
        assert got["label"] == i % 3
        assert torch.equal(got["image"], want["image"])  # PNG + uint8 round trip is exact
        assert got["meta"]["kind"] == want["meta"]["kind"]  # json meta travels along
        assert got["meta"]["objects"] == want["meta"]["objects"]


def test_rank_and_worker_split_is_disjoint_and_complete(shard_dir, monkeypatch):
    urls = str(shard_dir / "shard-{000000..000005}.tar")
    all_keys = set(_keys(ShardDataset(urls, size=16)))
    assert len(all_keys) == N_ITEMS
    world, workers = 2, 3
    seen: list[str] = []
    for rank in range(world):
        for worker in range(workers):
            info = types.SimpleNamespace(id=worker, num_workers=workers)
            monkeypatch.setattr(shards_mod, "get_worker_info", lambda info=info: info)
            ds = ShardDataset(urls, size=16, rank=rank, world_size=world)
            assert len(ds.my_shards()) == 1
            seen += _keys(ds)
    assert len(seen) == len(set(seen)) == N_ITEMS and set(seen) == all_keys
    with pytest.warns(UserWarning, match="reads no shard"):
        assert ShardDataset(urls, size=16, rank=6, world_size=7).my_shards() == []


def test_dataloader_workers_read_each_sample_once(shard_dir):
    ds = ShardDataset(sorted(shard_dir.glob("*.tar")), size=16, rank=1, world_size=2)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_items)
    keys = [k for batch in loader for k in (m["key"] for m in batch["meta"])]
    expected = _keys(ShardDataset(sorted(shard_dir.glob("*.tar")), size=16, rank=1, world_size=2))
    assert sorted(keys) == sorted(expected) and len(keys) == len(set(keys)) > 0
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_items)))
    assert batch["image"].shape == (3, 3, 16, 16) and batch["label"].dtype == torch.long


def test_shuffle_is_a_permutation_and_seeded(shard_dir):
    urls = sorted(shard_dir.glob("*.tar"))
    a = ShardDataset(urls, size=16, shuffle=True, shuffle_buffer=5, seed=3)
    b = ShardDataset(urls, size=16, shuffle=True, shuffle_buffer=5, seed=3)
    ka, kb = _keys(a), _keys(b)
    assert ka == kb and sorted(ka) == sorted(_keys(ShardDataset(urls, size=16))) and ka != sorted(ka)
    a.set_epoch(1)
    assert _keys(a) != ka


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_corrupt_members_skipped_and_counted(tmp_path):
    path = tmp_path / "mixed.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "dir/a.jpeg", _png((255, 0, 0)))  # wrong extension but decodable: fine
        _add(tar, "dir/a.json", json.dumps({"caption": "from json", "label": 4}).encode())
        _add(tar, "b.png", b"\x89PNG garbage")  # corrupt image
        _add(tar, "b.txt", b"broken")
        _add(tar, "c.webp", _png((0, 0, 255)))
        _add(tar, "c.cls", b"not-a-number")  # corrupt label
        _add(tar, "d.txt", b"caption without image")  # no image
        _add(tar, "e.png", _png((0, 255, 0)))
        _add(tar, "e.seg.png", b"extra field")  # multi-dot extension: key "e", field "seg.png" (ignored)
        _add(tar, "e.txt", b"green")
    ds = ShardDataset(path, size=8)
    expected = r"skipped 3 corrupt sample\(s\): mixed.tar:b, mixed.tar:c, mixed.tar:d"
    with pytest.warns(UserWarning, match=expected):
        items = list(ds)
    assert [(it["meta"]["key"], it["caption"], it["label"]) for it in items] == [
        ("dir/a", "from json", 4),
        ("e", "green", -1),
    ]
    assert len(ds.skipped) == 3


def test_truncated_shard_keeps_earlier_samples(shard_dir, tmp_path):
    data = (shard_dir / "shard-000000.tar").read_bytes()
    broken = tmp_path / "broken.tar"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="broken shard"):
        items = list(ShardDataset([broken, shard_dir / "shard-000001.tar"], size=16))
    assert 1 <= len(items) < 2 * PER_SHARD
    assert items[-1]["meta"]["shard"] == "shard-000001.tar"


def test_expand_urls_and_errors(shard_dir, tmp_path):
    assert len(expand_urls(str(shard_dir / "shard-{000000..000002}.tar"))) == 3
    assert len(expand_urls([shard_dir / "shard-000000.tar", str(shard_dir / "shard-00000{4,5}.tar")])) == 3
    with pytest.raises(FileNotFoundError, match="matched no file"):
        expand_urls(str(tmp_path / "nothing-*.tar"))
    with pytest.raises(ValueError, match="rank"):
        ShardDataset(str(shard_dir / "*.tar"), rank=2, world_size=2)
    with pytest.raises(ValueError, match="urls="):
        build_dataset("webdataset")
    with pytest.raises(ValueError, match="dot"):
        write_shards([{"image": Image.new("RGB", (4, 4)), "caption": "x", "key": "a.b"}], tmp_path / "o")


def test_write_shards_is_deterministic(tmp_path, source):
    a = write_shards(source[:3], tmp_path / "a", samples_per_shard=10, image_format="jpg")
    b = write_shards(source[:3], tmp_path / "b", samples_per_shard=10, image_format="jpg")
    assert Path(a[0]).read_bytes() == Path(b[0]).read_bytes()
    assert [it["caption"] for it in ShardDataset(a, size=16)] == [it["caption"] for it in source[:3]]
