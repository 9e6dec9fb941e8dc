"""Evaluation and benchmarks: metrics, adherence scorers, speed bench, diffusion baseline, reports.

Library entry points (imported lazily, so ``import bitdance.evaluation`` stays light):

- ``evaluate_tokenizer`` (tokenizer_eval), ``evaluate_quality`` / ``generate_images`` (quality),
  ``evaluate_adherence`` / ``AdherenceScorer`` (adherence), ``load_suite`` (prompts),
  ``bench_generation`` (speed), ``DiffusionBaseline`` (baseline), ``compare`` (versus),
  ``fid`` / ``kid`` / ``inception_score`` (metrics), ``build_feature_net`` (features),
  ``detect_objects`` (detectors), ``load_classifier`` (classifier).

CLI: ``bitdance eval {tokenizer,fid,adherence}`` and ``bitdance bench [--vs-diffusion]`` (``cli.py``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "evaluate_tokenizer": "tokenizer_eval",
    "evaluate_quality": "quality",
    "generate_images": "quality",
    "evaluate_adherence": "adherence",
    "AdherenceScorer": "adherence",
    "load_suite": "prompts",
    "bench_generation": "speed",
    "DiffusionBaseline": "baseline",
    "compare": "versus",
    "fid": "metrics",
    "kid": "metrics",
    "inception_score": "metrics",
    "build_feature_net": "features",
    "detect_objects": "detectors",
    "load_classifier": "classifier",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # noqa: ANN401
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
