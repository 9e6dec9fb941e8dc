"""Dataset mixtures from a one-line spec, and a step-indexed sampler that makes data order resumable.

Spec grammar: ``name[:k=v[:k=v]][*weight]`` joined by commas, e.g.
``fashion_mnist:tint=1,shapes*2,emoji:repeats=3`` or ``folder:root=imgs:manifest=imgs/m.jsonl``.
Values are parsed as int, float, bool (``true/false/yes/no``) or kept as strings.

Weights: each epoch, a dataset of n items with weight w contributes floor(w) full copies plus a random
round(frac(w) * n) subset; the epoch list is then shuffled (seeded by (seed, epoch)).

The data order is a pure function of (seed, sizes, weights, global batch, step): batch ``step`` is items
``[step * G, (step + 1) * G)`` of the endless concatenation of epoch lists. So resume needs only the step
number, any number of loader workers is safe, and the global batch is the same for every world size.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import Dataset

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass
class MixtureEntry:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0

    def spec(self) -> str:
        opts = "".join(f":{k}={v}" for k, v in self.options.items())
        return f"{self.name}{opts}" + (f"*{self.weight:g}" if self.weight != 1.0 else "")


def _value(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _split_entries(spec: str) -> list[str]:
    """Split on commas that start a new dataset (a comma inside a value such as a url list is kept
    when the next piece is not ``name[:...]`` of a known-looking dataset name followed by ':' or end)."""
    parts = [p.strip() for p in spec.split(",")]
    out: list[str] = []
    for p in parts:
        head = re.split(r"[:*]", p, maxsplit=1)[0]
        if out and p and ("=" in head or not _NAME.match(head)):
            out[-1] += "," + p  # continuation of the previous entry's value
        else:
            out.append(p)
    return out


def parse_mixture(spec: str) -> list[MixtureEntry]:
    """Parse a mixture spec into entries; raises ValueError naming the bad piece."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("--data is empty; give e.g. 'fashion_mnist:tint=1,shapes,emoji'")
    entries = []
    for piece in _split_entries(spec):
        if not piece:
            raise ValueError(f"empty entry in data spec {spec!r}")
        weight = 1.0
        m = re.match(r"^(.*)\*([0-9.eE+-]+)$", piece)
        if m:
            piece, raw_w = m.group(1), m.group(2)
            try:
                weight = float(raw_w)
            except ValueError:
                raise ValueError(f"bad weight {raw_w!r} in {piece!r}; use name*2 or name*0.5") from None
            if not weight > 0 or weight != weight or weight == float("inf"):
                raise ValueError(f"dataset weight must be a positive number, got {raw_w!r}")
        name, *opts = piece.split(":")
        if not _NAME.match(name):
            raise ValueError(f"bad dataset name {name!r} in data spec {spec!r}")
        options: dict[str, Any] = {}
        for kv in opts:
            if "=" not in kv:
                raise ValueError(f"dataset option {kv!r} in {piece!r} must look like key=value")
            k, v = kv.split("=", 1)
            if not k:
                raise ValueError(f"dataset option {kv!r} in {piece!r} has no key")
            options[k] = _value(v)
        entries.append(MixtureEntry(name, options, weight))
    return entries


class MixtureDataset(Dataset):
    """Concatenation of datasets; item i of the mixture is item i - offset_k of dataset k.

    Items gain ``meta["source"]`` (the entry's spec) so logs can break metrics down by dataset.
    """

    def __init__(self, datasets: list[Dataset], entries: list[MixtureEntry]) -> None:
        if len(datasets) != len(entries):
            raise ValueError("one entry per dataset")
        self.datasets, self.entries = datasets, entries
        self.sizes = [len(d) for d in datasets]  # type: ignore[arg-type]
        empty = [e.spec() for e, n in zip(entries, self.sizes) if n == 0]
        if empty:
            raise ValueError(f"dataset(s) {empty} have no usable items")
        self.offsets = np.cumsum([0] + self.sizes).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        k = bisect.bisect_right(self.offsets, index) - 1
        return k, index - self.offsets[k]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        k, j = self.locate(index)
        item = self.datasets[k][j]
        item["meta"] = {**item.get("meta", {}), "source": self.entries[k].name}
        return item

    @property
    def weights(self) -> list[float]:
        return [e.weight for e in self.entries]

    @property
    def skipped(self) -> list[str]:
        """Unreadable files skipped by the underlying datasets (folder datasets record them)."""
        return [s for d in self.datasets for s in getattr(d, "skipped", [])]

    @property
    def missing(self) -> list[str]:
        return [s for d in self.datasets for s in getattr(d, "missing", [])]


def build_mixture(spec: str | list[MixtureEntry], split: str = "train", size: int = 32) -> MixtureDataset:
    """Build every dataset of the spec (via `bitdance.data.build_dataset`) into one MixtureDataset."""
    from ..data import build_dataset

    entries = parse_mixture(spec) if isinstance(spec, str) else spec
    datasets = []
    for e in entries:
        opts = dict(e.options)
        if e.name == "webdataset":
            raise ValueError(
                "webdataset shards are streamed and cannot be sampled by step; train the tokenizer on "
                "folder/built-in sets, and use `bitdance extract-tokens --data webdataset:urls=...` for the "
                "generator"
            )
        datasets.append(build_dataset(e.name, split=split, size=size, **opts))
    return MixtureDataset(datasets, entries)


class StepSampler:
    """Deterministic, resumable index stream: ``batch(step, chunk, n_chunks)`` -> this chunk's indices.

    A global batch of G items is split into ``n_chunks`` equal contiguous chunks (chunk c = micro-step a of
    rank r is ``a * world + r``), so every chunk layout of the same G sees exactly the same items.
    """

    def __init__(self, sizes: list[int], weights: list[float] | None, global_batch: int, seed: int) -> None:
        if not sizes or sum(sizes) == 0:
            raise ValueError("the dataset has no usable items")
        self.sizes = list(sizes)
        self.weights = list(weights or [1.0] * len(sizes))
        self.offsets = np.cumsum([0] + self.sizes)
        self.global_batch = int(global_batch)
        self.seed = int(seed)
        self._cache: dict[int, np.ndarray] = {}
        self._ends: list[int] = []  # cumulative epoch lengths computed so far

    def epoch_indices(self, epoch: int) -> np.ndarray:
        if epoch in self._cache:
            return self._cache[epoch]
        rng = np.random.default_rng([self.seed, epoch, 7919])
        parts = []
        for k, (n, w) in enumerate(zip(self.sizes, self.weights)):
            base = np.arange(n, dtype=np.int64) + self.offsets[k]
            whole, frac = int(w), w - int(w)
            parts.extend([base] * whole)
            extra = int(round(frac * n))
            if extra:
                parts.append(rng.choice(base, size=extra, replace=False))
        idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if len(idx) == 0:
            raise ValueError("dataset weights select no items; increase a weight")
        idx = idx[rng.permutation(len(idx))]
        if len(self._cache) > 4:
            self._cache.pop(min(self._cache))
        self._cache[epoch] = idx
        return idx

    def _position(self, pos: int) -> tuple[int, int]:
        while not self._ends or self._ends[-1] <= pos:
            self._ends.append(
                (self._ends[-1] if self._ends else 0) + len(self.epoch_indices(len(self._ends)))
            )
        e = bisect.bisect_right(self._ends, pos)
        start = self._ends[e - 1] if e else 0
        return e, pos - start

    def stream(self, start: int, count: int) -> np.ndarray:
        out = []
        pos = start
        while count > 0:
            e, off = self._position(pos)
            idx = self.epoch_indices(e)
            take = min(count, len(idx) - off)
            out.append(idx[off : off + take])
            pos, count = pos + take, count - take
        return np.concatenate(out)

    def batch(self, step: int, chunk: int = 0, n_chunks: int = 1) -> list[int]:
        if self.global_batch % n_chunks:
            raise ValueError(f"global batch {self.global_batch} does not split into {n_chunks} equal chunks")
        per = self.global_batch // n_chunks
        return self.stream(step * self.global_batch + chunk * per, per).tolist()

    def epoch_of(self, step: int) -> float:
        """Fractional epoch reached after `step` steps (for logs)."""
        e, off = self._position(step * self.global_batch)
        return e + off / len(self.epoch_indices(e))
