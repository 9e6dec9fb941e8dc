"""Export for edge runtimes: ONNX graphs of every stage and a numpy/ONNX Runtime reference runner."""

from .onnx_export import GRAPHS, export_onnx
from .runner import OnnxRunner, RunnerOutput, numpy_noise, torch_decoder_noise, torch_noise

__all__ = [
    "GRAPHS",
    "OnnxRunner",
    "RunnerOutput",
    "export_onnx",
    "numpy_noise",
    "torch_decoder_noise",
    "torch_noise",
]
