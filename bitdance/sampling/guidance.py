"""Classifier-free guidance set-up shared by plain generation (`decode.py`) and editing (`inpaint.py`)."""

from __future__ import annotations

from typing import Any

import torch

from ..generator.transformer import BitDanceTransformer, Condition, cat_conditions
from .solvers import guidance_at


def any_guidance(options: Any, total: int) -> bool:
    """True when some of the `total` AR steps run with a guidance scale other than 1 (two CFG streams)."""
    return any(
        guidance_at(i, total, options.guidance_scale, options.guidance_schedule) != 1.0 for i in range(total)
    )


def guided_condition(
    model: BitDanceTransformer,
    cond: Condition,
    negative: Condition | None,
    batch: int,
    device: torch.device,
    guided: bool,
) -> tuple[Condition, int]:
    """(condition, rows): the conditional stream, followed by the negative / null stream when `guided`
    (both CFG streams in one batch of 2B rows)."""
    if negative is not None and model.check_condition(negative) != batch:
        raise ValueError("negative condition must have one entry per item")
    uncond = negative if negative is not None else model.null_condition(batch, device)
    return (cat_conditions(cond, uncond), 2 * batch) if guided else (cond, batch)
