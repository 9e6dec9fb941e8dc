"""Memory options for running the large official models: int8 weight-only linears and model-level offload.

int8 weight-only: every `nn.Linear` keeps int8 weights plus one scale per output row and computes in
the activation dtype. With `torchao` installed (and importable against this torch) its
`Int8WeightOnlyConfig` kernels are used; otherwise `Int8WeightOnlyLinear` below, which dequantizes
one layer's weight per call (works on CPU and CUDA, halves weight memory versus bf16). PyTorch's
`quantize_dynamic` is not used: it is CPU-only and also quantizes activations.

Model-level offload: components live in host memory and `ModelOffloader.use(module)` moves a module
to the execution device only while it runs (the previously used one goes back to the host).
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn


class Int8WeightOnlyLinear(nn.Module):
    """y = x W^T + b with W stored as int8 (out, in) and a per-row scale (symmetric, absmax / 127)."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False) if bias is not None else None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(q, scale.to(linear.weight.dtype), linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        """Dequantized weight (for code that reads `.weight.dtype` / `.device`; computes a full copy)."""
        return self.dequantized(self.scale.dtype)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return self.qweight.to(dtype) * self.scale.to(dtype)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.dequantized(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only"


def _torchao_available() -> bool:
    if importlib.util.find_spec("torchao") is None:
        return False
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_  # noqa: F401
    except Exception:  # noqa: BLE001 - a torchao built for another torch fails in many ways
        return False
    return True


def quantize_int8_weight_only(module: nn.Module, backend: str = "auto", min_features: int = 0) -> str:
    """Replace the Linear layers of `module` in place; returns the backend used ('torchao' | 'bitdance').

    `min_features`: skip linears whose in or out width is smaller (tiny layers gain nothing).
    """
    if backend not in ("auto", "torchao", "bitdance"):
        raise ValueError(f"backend must be 'auto', 'torchao' or 'bitdance', got {backend!r}")
    use_ao = backend == "torchao" or (backend == "auto" and _torchao_available())
    if use_ao:
        if not _torchao_available():
            raise ValueError("torchao is not installed or does not match this torch; use backend='bitdance'")
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        def keep(m: nn.Module, fqn: str) -> bool:
            return isinstance(m, nn.Linear) and min(m.in_features, m.out_features) >= min_features

        quantize_(module, Int8WeightOnlyConfig(), filter_fn=keep)
        return "torchao"
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear) and min(child.in_features, child.out_features) >= min_features:
            setattr(module, name, Int8WeightOnlyLinear.from_linear(child))
        else:
            quantize_int8_weight_only(child, "bitdance", min_features)
    return "bitdance"


def module_nbytes(module: nn.Module) -> int:
    """Bytes held by parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


class ModelOffloader:
    """Keep at most one managed component on the execution device at a time."""

    def __init__(self, device: str | torch.device, enabled: bool = True) -> None:
        self.device = torch.device(device)
        self.enabled = enabled
        self.active: nn.Module | None = None
        self.moves = 0

    def use(self, module: nn.Module) -> nn.Module:
        """Make `module` resident on the device (offloading the previous one); returns it."""
        if not self.enabled or module is self.active:
            return module
        if self.active is not None:
            self.active.to("cpu")
        module.to(self.device)
        self.moves += 1
        self.active = module
        return module

    def release(self) -> None:
        if self.enabled and self.active is not None:
            self.active.to("cpu")
            self.active = None
