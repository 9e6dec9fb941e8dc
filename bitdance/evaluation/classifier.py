"""Small CNN classifiers trained in this project on the evaluation data (Fashion-MNIST, emoji).

They are the feature network of FID_cls (MNIST-style FID: penultimate 128-d features), the logits of the
Inception-Score-style score, and the object recogniser of the fashion/emoji adherence scorers.

Shipped as ``bitdance/assets/eval/<task>_classifier.safetensors`` (weights) + ``<task>_classifier.json``
(architecture, class names, how it was trained, measured test accuracy). Train them with
``bitdance train-classifier --task fashion|emoji``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointError, atomic_write_bytes, load_into, load_weights, save_state_dict

TASKS: tuple[str, ...] = ("fashion", "emoji")
INPUT_SIZE = 32


def assets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / "eval"


@dataclass
class ClassifierConfig:
    """Architecture + label space of an evaluation classifier."""

    task: str
    class_names: list[str]
    widths: tuple[int, ...] = (32, 64, 128, 128)
    input_size: int = INPUT_SIZE
    training: dict[str, Any] = field(default_factory=dict)  # command, data, epochs, seconds
    metrics: dict[str, Any] = field(default_factory=dict)  # measured test accuracies

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class EvalClassifier(nn.Module):
    """conv(32)@32 -> [pool, conv] x3 (16, 8, 4 px) -> global average pool (D = widths[-1]) -> linear.

    Any input size is resized (bilinear, antialiased) to ``input_size`` first; inputs are (B, 3, H, W) in
    [-1, 1]."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.config = cfg
        w = cfg.widths
        layers: list[nn.Module] = [_conv(3, w[0])]
        for cin, cout in zip(w[:-1], w[1:]):
            layers += [nn.MaxPool2d(2), _conv(cin, cout)]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(w[-1], cfg.num_classes)

    @property
    def num_features(self) -> int:
        return self.config.widths[-1]

    def prepare(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        s = self.config.input_size
        x = images_B3HW.float()
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        return x

    def features(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, D) penultimate features (the FID_cls space)."""
        return self.body(self.prepare(images_B3HW)).mean(dim=(2, 3))

    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, num_classes) logits."""
        return self.fc(self.features(images_B3HW))

    @torch.no_grad()
    def predict(self, images_B3HW: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(B, num_classes) softmax probabilities, computed in eval mode in chunks."""
        self.eval()
        out = [
            self(images_B3HW[i : i + batch_size]).softmax(-1) for i in range(0, len(images_B3HW), batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, self.config.num_classes)


def classifier_paths(task: str, folder: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) of a task's classifier in ``folder`` (default: shipped assets)."""
    if task not in TASKS:
        raise ValueError(f"unknown classifier task {task!r}; allowed: {', '.join(TASKS)}")
    base = Path(folder) if folder is not None else assets_dir()
    return base / f"{task}_classifier.safetensors", base / f"{task}_classifier.json"


def save_classifier(model: EvalClassifier, folder: str | os.PathLike) -> tuple[Path, Path]:
    """Atomically write weights + config JSON for ``model`` into ``folder``."""
    weights, cfg_path = classifier_paths(model.config.task, folder)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_state_dict(state, weights, metadata={"kind": "bitdance-eval-classifier", "task": model.config.task})
    cfg = asdict(model.config)
    cfg["widths"] = list(cfg["widths"])
    atomic_write_bytes(cfg_path, (json.dumps(cfg, indent=1) + "\n").encode())
    return weights, cfg_path


def load_classifier_from(task: str, folder: str | os.PathLike | None = None) -> EvalClassifier:
    """Load a task's classifier (eval mode) from ``folder`` or the shipped assets; clear error if absent."""
    weights, cfg_path = classifier_paths(task, folder)
    if not cfg_path.is_file() or not weights.is_file():
        raise FileNotFoundError(
            f"the {task} evaluation classifier is missing ({weights.name} / {cfg_path.name} in "
            f"{weights.parent}); "
            f"train it with: bitdance train-classifier --task {task}"
        )
    try:
        raw = json.loads(cfg_path.read_text())
        raw["widths"] = tuple(raw["widths"])
        cfg = ClassifierConfig(**raw)
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise CheckpointError(f"{cfg_path}: not a valid classifier config ({e})") from None
    model = EvalClassifier(cfg)
    state = load_weights(weights)
    own = model.state_dict()
    for k, v in own.items():  # counters are not stored
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, v)
    load_into(model, state, source=str(weights))
    return model.eval()


@lru_cache(maxsize=4)
def load_classifier(task: str) -> EvalClassifier:
    """The shipped classifier of ``task`` ('fashion' | 'emoji'), cached per process."""
    return load_classifier_from(task)
