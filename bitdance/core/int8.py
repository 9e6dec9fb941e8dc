"""Int8 layers: symmetric per-output-channel weights, two runtimes.

Both schemes store the same plain tensors per layer (state-dict keys `<name>.weight_int8` (N, K...) int8,
`<name>.weight_scale` (N,) fp32 and `<name>.bias` (N,) fp32), so w ~= weight_int8 * weight_scale:

- "int8-weight-only": int8 weights stay resident and are widened to the activation dtype on use
  (`Int8WeightOnlyLinear`, `Int8WeightOnlyConv2d`); activations and accumulation stay fp32. Any device.
- "int8-dynamic": activations are quantized per call and the matmul runs in int8 with PyTorch's own quantized
  CPU kernels (`torch.ops.quantized.linear_dynamic`, fbgemm/x86 or qnnpack: the kernels behind
  `torch.ao.nn.quantized.dynamic.Linear`). CPU only.

The rounding rule is PyTorch's `per_channel_symmetric` qint8 rule (scale = absmax / 127.5, values in
[-128, 127]), so the int8 values equal those of `torch.ao.quantization.quantize_dynamic` with
`per_channel_dynamic_qconfig` (a test checks it).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SCHEMES: tuple[str, ...] = ("int8-weight-only", "int8-dynamic")
_EPS = torch.finfo(torch.float32).eps


def check_scheme(scheme: Any) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; supported: {list(SCHEMES)}")
    return scheme


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8. w (N, ...) float -> (q (N, ...) int8, scale (N,) fp32)."""
    wf = w.detach().float().reshape(w.shape[0], -1)
    scale = (wf.abs().amax(dim=1) / 127.5).clamp_min(_EPS)
    # multiply by the fp32 inverse scale and round half to even, exactly as PyTorch's quantize_val does
    q = torch.round(wf * (1.0 / scale)[:, None]).clamp(-128, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize_weight(
    q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(N, ...) int8 and (N,) scale -> float weight of q's shape."""
    return q.to(dtype) * scale.to(dtype).view(-1, *([1] * (q.dim() - 1)))


def dynamic_kernels_available() -> bool:
    """True when this torch build has the quantized CPU kernels the int8-dynamic scheme needs."""
    try:
        return hasattr(torch.ops.quantized, "linear_dynamic") and hasattr(
            torch.ops.quantized, "linear_prepack"
        )
    except (AttributeError, RuntimeError):
        return False


class _Int8Base(nn.Module):
    """Shared state-dict layout; subclasses choose where the int8 tensors live and how forward runs."""

    scheme = ""

    def __init__(self, out_features: int, weight_shape: tuple[int, ...], bias: bool) -> None:
        super().__init__()
        self.out_features = out_features
        self.weight_shape = tuple(weight_shape)
        self.has_bias = bias

    def extra_repr(self) -> str:
        return f"weight_shape={self.weight_shape}, bias={self.has_bias}, scheme={self.scheme}"


class Int8WeightOnlyLinear(_Int8Base):
    """y = (x @ weight_int8^T) * weight_scale + bias; int8 resident, fp32 compute. x (..., K) -> (..., N)."""

    scheme = "int8-weight-only"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None) -> None:
        super().__init__(out_features, (out_features, in_features), bias)
        self.in_features = in_features
        self.register_buffer(
            "weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8, device=device)
        )
        self.register_buffer("weight_scale", torch.ones(out_features, device=device))
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)

    @classmethod
    def from_float(cls, lin: nn.Linear) -> Int8WeightOnlyLinear:
        m = cls(lin.in_features, lin.out_features, lin.bias is not None, device=lin.weight.device)
        q, s = quantize_weight(lin.weight)
        m.weight_int8.copy_(q)
        m.weight_scale.copy_(s)
        if lin.bias is not None:
            m.bias.copy_(lin.bias.detach().float())
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scaling the output instead of the weight saves one (N, K) multiply per call.
        y = F.linear(x, self.weight_int8.to(x.dtype)) * self.weight_scale.to(x.dtype)
        return y + self.bias.to(x.dtype) if self.bias is not None else y


class Int8WeightOnlyConv2d(_Int8Base):
    """Conv2d with int8 weights widened on use (tokenizer decoder; opt-in)."""

    scheme = "int8-weight-only"

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.out_channels, tuple(conv.weight.shape), conv.bias is not None)
        self.stride, self.padding, self.dilation, self.groups = (
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
        )
        if conv.padding_mode != "zeros":
            raise ValueError(f"int8 conv supports padding_mode 'zeros' only, got {conv.padding_mode!r}")
        dev = conv.weight.device
        self.register_buffer("weight_int8", torch.zeros(self.weight_shape, dtype=torch.int8, device=dev))
        self.register_buffer("weight_scale", torch.ones(conv.out_channels, device=dev))
        self.register_buffer("bias", torch.zeros(conv.out_channels, device=dev) if self.has_bias else None)

    @classmethod
    def from_float(cls, conv: nn.Conv2d) -> Int8WeightOnlyConv2d:
        m = cls(conv)
        q, s = quantize_weight(conv.weight)
        m.weight_int8.copy_(q)
        m.weight_scale.copy_(s)
        if conv.bias is not None:
            m.bias.copy_(conv.bias.detach().float())
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = dequantize_weight(self.weight_int8, self.weight_scale, x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def _prepack(q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
    """Pack int8 weights for torch.ops.quantized.linear_dynamic (PyTorch's quantized-tensor API is
    deprecated for end users but is still how its int8 CPU kernels take their weights)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero = torch.zeros(q.shape[0], dtype=torch.int64)
        qw = torch._make_per_channel_quantized_tensor(q.cpu(), scale.double().cpu(), zero, 0)
        return torch.ops.quantized.linear_prepack(qw, None if bias is None else bias.float().cpu())


class Int8DynamicLinear(_Int8Base):
    """Dynamic int8 linear on PyTorch's quantized CPU kernels; weights live only in the packed form.

    state_dict() unpacks to the plain tensors (weight_int8, weight_scale, bias); load_state_dict() packs.
    """

    scheme = "int8-dynamic"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(out_features, (out_features, in_features), bias)
        if not dynamic_kernels_available():
            raise ValueError(
                "int8-dynamic needs PyTorch's quantized CPU kernels (torch.ops.quantized.linear_dynamic), "
                "which this torch build lacks; use scheme int8-weight-only"
            )
        self.in_features = in_features
        self._packed: Any = None

    @classmethod
    def from_float(cls, lin: nn.Linear) -> Int8DynamicLinear:
        m = cls(lin.in_features, lin.out_features, lin.bias is not None)
        q, s = quantize_weight(lin.weight)
        m.set_weight(q, s, None if lin.bias is None else lin.bias.detach())
        return m

    def set_weight(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        if tuple(q.shape) != self.weight_shape or q.dtype != torch.int8:
            raise ValueError(f"expected int8 weight {self.weight_shape}, got {q.dtype} {tuple(q.shape)}")
        self._packed = _prepack(q, scale, bias)

    def unpacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(weight_int8 (N, K), weight_scale (N,) fp32, bias (N,) | None) recovered from the packed form."""
        if self._packed is None:  # built on the meta device, not loaded yet: shapes only
            meta = torch.device("meta")
            b = torch.empty(self.out_features, device=meta) if self.has_bias else None
            return (
                torch.empty(self.weight_shape, dtype=torch.int8, device=meta),
                torch.empty(self.out_features, device=meta),
                b,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qw, bias = torch.ops.quantized.linear_unpack(self._packed)
            return qw.int_repr(), qw.q_per_channel_scales().float(), bias

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        q, s, b = self.unpacked()
        destination[prefix + "weight_int8"] = q
        destination[prefix + "weight_scale"] = s
        if self.has_bias:
            destination[prefix + "bias"] = b

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        names = ["weight_int8", "weight_scale"] + (["bias"] if self.has_bias else [])
        missing = [prefix + n for n in names if prefix + n not in state_dict]
        if missing:
            missing_keys.extend(missing)
            return
        q, s = state_dict[prefix + "weight_int8"], state_dict[prefix + "weight_scale"]
        b = state_dict[prefix + "bias"] if self.has_bias else None
        try:
            self.set_weight(q, s, b)
        except (ValueError, RuntimeError) as e:
            error_msgs.append(f"{prefix}: {e}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed is None:
            raise RuntimeError("Int8DynamicLinear has no weights yet (load a state dict first)")
        if x.device.type != "cpu":
            raise ValueError("int8-dynamic runs on CPU only; use scheme int8-weight-only on other devices")
        shape = x.shape
        y = torch.ops.quantized.linear_dynamic(x.float().reshape(-1, shape[-1]), self._packed, True)
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def int8_module(scheme: str, module: nn.Module, with_weights: bool) -> nn.Module:
    """The int8 replacement of an nn.Linear (either scheme) or nn.Conv2d (weight-only).

    with_weights=False builds an empty module of the right shapes (for loading a saved file).
    """
    check_scheme(scheme)
    if isinstance(module, nn.Conv2d):
        if scheme != "int8-weight-only":
            raise ValueError("convolutions support scheme int8-weight-only only")
        return Int8WeightOnlyConv2d.from_float(module) if with_weights else Int8WeightOnlyConv2d(module)
    if not isinstance(module, nn.Linear):
        raise ValueError(f"cannot quantize a {type(module).__name__}; only Linear and Conv2d layers")
    cls = Int8DynamicLinear if scheme == "int8-dynamic" else Int8WeightOnlyLinear
    if with_weights:
        return cls.from_float(module)
    return cls(module.in_features, module.out_features, module.bias is not None)
