"""KV cache owned by the sampler and passed into the backbone's forward."""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys/values (B, H, L, d) plus the attention group id of every cached position.

    Group ids implement the block-causal rule (a query sees keys whose group <= its own); with a
    local window, keys of old patch groups can be evicted to bound memory.
    """

    def __init__(self, n_layer: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer
        self.groups: torch.Tensor | None = None  # (L,) int64, shared by all layers

    @property
    def length(self) -> int:
        return 0 if self.groups is None else int(self.groups.numel())

    def append_groups(self, groups: torch.Tensor) -> torch.Tensor:
        """Register the group ids of the positions about to be appended; returns all key groups."""
        self.groups = groups if self.groups is None else torch.cat([self.groups, groups])
        return self.groups

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, H, l, d) for `layer`; return the full cached keys and values."""
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]  # type: ignore[return-value]

    def evict(self, keep: torch.Tensor) -> None:
        """Keep only cached positions where `keep` (L,) bool is true (local-window attention)."""
        if self.groups is None or bool(keep.all()):
            return
        idx = keep.nonzero().squeeze(1)
        self.groups = self.groups[idx]
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None and v is not None:
                self.keys[i], self.values[i] = k[:, :, idx], v[:, :, idx]

    def repeat_batch(self, n: int) -> None:
        """Tile every cached batch n times (e.g. after a shared prefix)."""
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None and v is not None:
                self.keys[i], self.values[i] = k.repeat(n, 1, 1, 1), v.repeat(n, 1, 1, 1)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.keys, *self.values] if t is not None)
