"""Named sampler settings: one name -> (head solver, head steps) for a model's default step count.

`reference` is the official sampler (Euler-Maruyama, the model's steps): bit-identical to the parity
fixtures. The others are faster settings whose quality is measured separately (docs/speed.md). A setting
resolves to plain pipeline arguments (`solver`, `num_sampling_steps`), which the provenance recipe records,
so an image made with any setting replays exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplerPreset:
    """A head solver plus a divisor of the model's default head steps (steps = ceil(default / divisor))."""

    solver: str
    step_divisor: int
    description: str


DEFAULT_SAMPLER = "reference"  # what the pipeline and `bitdance generate` use unless told otherwise
SAMPLER_PRESETS: dict[str, SamplerPreset] = {
    "reference": SamplerPreset(
        "euler_maruyama", 1, "official Euler-Maruyama sampler, the model's head steps"
    ),
    "fast-exact": SamplerPreset(
        "em_fast", 1, "same SDE, grid and draws; per-AR-step constants computed once"
    ),
    "fast": SamplerPreset("em_fast", 2, "em_fast with half the head steps"),
    "fast4": SamplerPreset("em_fast", 4, "em_fast with a quarter of the head steps"),
}


def sampler_settings(name: str, default_steps: int) -> dict[str, Any]:
    """Pipeline keyword arguments {solver, num_sampling_steps} of setting `name` for a model whose default
    head step count is `default_steps`."""
    if not isinstance(name, str) or name not in SAMPLER_PRESETS:
        raise ValueError(f"unknown sampler setting {name!r}; allowed: {', '.join(SAMPLER_PRESETS)}")
    if isinstance(default_steps, bool) or not isinstance(default_steps, int) or default_steps < 1:
        raise ValueError(f"default head steps must be a positive integer, got {default_steps!r}")
    p = SAMPLER_PRESETS[name]
    return {"solver": p.solver, "num_sampling_steps": math.ceil(default_steps / p.step_divisor)}
