"""Text-encoder states of captions, kept per caption string across training steps.

With `--rich-captions` the trainer encodes every item's caption with the frozen text encoder at every step.
The stored captions (and repeated rich ones) come back step after step, and a frozen encoder in eval mode
maps a caption to the same states whatever batch it sits in (the states are padded to `max_len` and the
padding is masked), so each distinct caption is encoded once and then read from here. Least recently used
captions are dropped past `capacity`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from ..generator.transformer import TextCondition


class CaptionStateCache:
    """`cache(captions)` -> TextCondition (B, L, D) fp32 states and (B, L) mask, encoding only the misses."""

    def __init__(self, encoder: Any, capacity: int = 2048) -> None:
        if capacity < 1:
            raise ValueError(f"caption cache capacity must be >= 1, got {capacity}")
        self.encoder, self.capacity = encoder, capacity
        self.entries: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = self.misses = 0

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> TextCondition:
        missing = list(dict.fromkeys(c for c in captions if c not in self.entries))
        self.misses += len(missing)
        self.hits += len(captions) - len(missing)
        fresh: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if missing:
            c = self.encoder(missing)
            states, mask = c.states.float(), c.mask
            fresh = {cap: (states[i], mask[i]) for i, cap in enumerate(missing)}
        rows = [fresh[c] if c in fresh else self.entries[c] for c in captions]
        for c in captions:  # refresh recency (and insert the new ones) before trimming
            self.entries[c] = fresh[c] if c in fresh else self.entries[c]
            self.entries.move_to_end(c)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return TextCondition(torch.stack([s for s, _ in rows]), torch.stack([m for _, m in rows]))
