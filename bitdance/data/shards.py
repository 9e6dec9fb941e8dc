"""Streaming tar shards in the WebDataset layout, read with the standard library (no ``webdataset`` needed).

A shard is a plain ``.tar`` whose consecutive members share a key (the basename up to its first dot):
``000001.png``, ``000001.txt`` (caption), ``000001.json`` (``caption``, ``label``, ``meta``), ``000001.cls``.
Shards are split first by distributed rank, then by DataLoader worker, so every sample is read exactly once
per epoch across the job (when there are at least world_size x num_workers shards).
"""

from __future__ import annotations

import glob
import io
import json
import os
import posixpath
import random
import re
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from .items import Item, check_size, check_split, load_image, make_item, summarize_names, tensor_to_pil

SHARD_IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
_BRACE = re.compile(r"\{([^{}]*)\}")


def _expand_braces(pattern: str) -> list[str]:
    """``"a-{000..002}.tar"`` -> ``["a-000.tar", "a-001.tar", "a-002.tar"]``; ``"{x,y}"`` alternatives too."""
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") else 0
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    head, tail = pattern[: m.start()], pattern[m.end() :]
    return [out for opt in options for out in _expand_braces(head + opt + tail)]


def expand_urls(urls: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Shard paths from a path, a glob (``data/*.tar``), a brace range (``shard-{000..009}.tar``) or a list
    of those. Order: as given, each glob sorted. Raises if a named shard is missing or nothing matches."""
    items = [urls] if isinstance(urls, str | os.PathLike) else list(urls)
    out: list[str] = []
    missing: list[str] = []
    for item in items:
        for pattern in _expand_braces(str(item)):
            if glob.has_magic(pattern):
                found = sorted(glob.glob(pattern))
                if not found:
                    missing.append(pattern)
                out.extend(found)
            elif Path(pattern).is_file():
                out.append(pattern)
            else:
                missing.append(pattern)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} shard path(s)/pattern(s) matched no file: {summarize_names(missing)}"
        )
    if not out:
        raise ValueError("no shards given: pass urls= as a path, glob, brace pattern or list of .tar files")
    return out


def _split_key(name: str) -> tuple[str, str]:
    """``"dir/0001.seg.png"`` -> (``"dir/0001"``, ``"seg.png"``)."""
    folder, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(folder, stem), ext.lower()


def _iter_groups(path: str, errors: list[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (key, {ext: bytes}) for consecutive members of one shard; a broken shard ends early with an
    entry in ``errors`` (the samples read before the damage are kept)."""
    key, group = None, {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                k, ext = _split_key(member.name)
                if k != key and group:
                    yield key, group
                    group = {}
                key = k
                f = tar.extractfile(member)
                group[ext] = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        errors.append(f"{os.path.basename(path)} ({type(exc).__name__})")
    if group:
        yield key, group


def decode_sample(key: str, group: dict[str, bytes], size: int, shard: str) -> Item:
    """One sample's files -> the common item. Raises (ValueError / PIL errors) on corrupt content."""
    ext = next((e for e in SHARD_IMAGE_EXTENSIONS if e in group), None)
    if ext is None:
        raise ValueError(f"no image among {sorted(group)}")
    img = load_image(io.BytesIO(group[ext]), size)
    info: dict[str, Any] = json.loads(group["json"].decode("utf-8")) if "json" in group else {}
    if not isinstance(info, dict):
        raise ValueError(".json must hold an object")
    caption = group["txt"].decode("utf-8").strip() if "txt" in group else str(info.get("caption", ""))
    label = int(group["cls"].decode("utf-8").strip()) if "cls" in group else int(info.get("label", -1))
    meta = dict(info.get("meta") or {}) if isinstance(info.get("meta"), dict) else {}
    meta.update(key=key, shard=shard)
    return make_item(img, caption, label, meta)


def _default_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ShardDataset(IterableDataset):
    """Streams items (image (3, size, size) in [-1, 1], caption, label, meta {"key", "shard", json meta})
    from tar shards. ``rank``/``world_size`` default to torch.distributed (or $RANK/$WORLD_SIZE).

    ``shuffle=True`` reshuffles shard order per epoch (call ``set_epoch``) and mixes samples through a
    ``shuffle_buffer``-sized buffer. Corrupt samples and broken shards are skipped and summarised in one
    warning per pass; ``split`` is only validated (the shards you pass are the split)."""

    def __init__(
        self,
        urls: str | os.PathLike | Iterable[str | os.PathLike],
        size: int = 32,
        split: str = "train",
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = False,
        shuffle_buffer: int = 1000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.split, self.size = check_split(split), check_size(size)
        self.shards = expand_urls(urls)
        default_rank, default_world = _default_rank_world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}"
            )
        self.shuffle, self.shuffle_buffer, self.seed, self.epoch = shuffle, int(shuffle_buffer), int(seed), 0
        self.skipped: list[str] = []  # keys of corrupt samples seen by this process in its last pass

    def set_epoch(self, epoch: int) -> None:
        """Select the shard / sample order of ``epoch`` when shuffling."""
        self.epoch = int(epoch)

    def my_shards(self) -> list[str]:
        """Shards read by this rank and (inside a DataLoader worker) this worker."""
        shards = list(self.shards)
        if self.shuffle:
            random.Random(f"bitdance/shards/{self.seed}/{self.epoch}").shuffle(shards)
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = shards[self.rank :: self.world_size][worker::n_workers]
        if not mine:
            warnings.warn(
                f"rank {self.rank} worker {worker} reads no shard: {len(shards)} shard(s) for "
                f"{self.world_size * n_workers} readers (world_size x num_workers); write more, "
                "smaller shards",
                stacklevel=2,
            )
        return mine

    def _samples(self, shards: list[str]) -> Iterator[Item]:
        self.skipped, broken = [], []
        for path in shards:
            shard = os.path.basename(path)
            for key, group in _iter_groups(path, broken):
                try:
                    item = decode_sample(key, group, self.size, shard)
                except Exception:  # corrupt image bytes, bad JSON / label, missing image
                    self.skipped.append(f"{shard}:{key}")
                    continue
                yield item
        if self.skipped or broken:
            samples = f": {summarize_names(self.skipped)}" if self.skipped else ""
            shards_note = f"; broken shard(s): {summarize_names(broken)}" if broken else ""
            message = f"rank {self.rank}: skipped {len(self.skipped)} corrupt sample(s){samples}{shards_note}"
            warnings.warn(message, stacklevel=2)

    def __iter__(self) -> Iterator[Item]:
        shards = self.my_shards()
        if not self.shuffle or self.shuffle_buffer <= 1:
            yield from self._samples(shards)
            return
        info = get_worker_info()
        rng = random.Random(f"bitdance/buffer/{self.seed}/{self.epoch}/{self.rank}/{info.id if info else 0}")
        buffer: list[Item] = []
        for item in self._samples(shards):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            j = rng.randrange(len(buffer))
            buffer[j], item = item, buffer[j]
            yield item
        rng.shuffle(buffer)
        yield from buffer


def _encode_image(image: Any, fmt: str) -> bytes:
    if isinstance(image, torch.Tensor):
        image = tensor_to_pil(image)
    elif isinstance(image, str | os.PathLike):
        image = Image.open(image)
    if not isinstance(image, Image.Image):
        raise TypeError(
            f"image must be a PIL image, a (3, H, W) tensor in [-1, 1] or a path, got {type(image)}"
        )
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
    return buf.getvalue()


def write_shards(
    items: Iterable[dict[str, Any]],
    out_dir: str | os.PathLike,
    samples_per_shard: int = 1000,
    prefix: str = "shard",
    image_format: str = "png",
) -> list[Path]:
    """Write items (``image``: PIL / (3, H, W) tensor in [-1, 1] / path; ``caption``; optional ``label``,
    ``meta`` (JSON-serialisable), ``key`` without dots) to ``out_dir/<prefix>-000000.tar``, ... .
    Returns the shard paths. Members carry mtime 0, so equal inputs give byte-identical shards."""
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    if image_format not in ("jpg", "png", "webp"):
        raise ValueError(f"image_format must be one of jpg, png, webp, got {image_format!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tar: tarfile.TarFile | None = None

    def add(name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))

    try:
        for i, item in enumerate(items):
            if i % samples_per_shard == 0:
                if tar is not None:
                    tar.close()
                paths.append(out_dir / f"{prefix}-{len(paths):06d}.tar")
                tar = tarfile.open(paths[-1], "w", format=tarfile.USTAR_FORMAT)
            key = str(item.get("key", f"{i:09d}"))
            if "." in posixpath.basename(key):
                raise ValueError(f"sample key {key!r} must not contain a dot (dots separate the extension)")
            add(f"{key}.{image_format}", _encode_image(item["image"], image_format))
            add(f"{key}.txt", str(item.get("caption", "")).encode("utf-8"))
            label = item.get("label", -1)
            if label is not None and int(label) >= 0:
                add(f"{key}.cls", str(int(label)).encode("utf-8"))
            if item.get("meta"):
                add(f"{key}.json", json.dumps({"meta": item["meta"]}, sort_keys=True).encode("utf-8"))
    finally:
        if tar is not None:
            tar.close()
    return paths
