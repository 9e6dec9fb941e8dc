"""Int8 quantization of BitDance components (see docs/quantization.md)."""

from ..core.int8 import (
    SCHEMES,
    Int8DynamicLinear,
    Int8WeightOnlyConv2d,
    Int8WeightOnlyLinear,
    dequantize_weight,
    quantize_weight,
)
from .model import (
    DECODER_PATTERNS,
    GENERATOR_PATTERNS,
    load_component,
    load_pipeline,
    load_quantized,
    quantize_model,
    quantize_pipeline,
    save_quantized,
    save_quantized_pipeline,
)

__all__ = [
    "DECODER_PATTERNS",
    "GENERATOR_PATTERNS",
    "SCHEMES",
    "Int8DynamicLinear",
    "Int8WeightOnlyConv2d",
    "Int8WeightOnlyLinear",
    "dequantize_weight",
    "load_component",
    "load_pipeline",
    "load_quantized",
    "quantize_model",
    "quantize_pipeline",
    "quantize_weight",
    "save_quantized",
    "save_quantized_pipeline",
]
