"""KV cache owned by the sampler and passed into the backbone's forward.

Keys and values live in buffers allocated once per layer with room for `capacity` positions (the sampler
knows the sequence length: prefix + queries + tokens); each step writes its new positions in place and the
attention reads a view of the filled part, so decoding does no `torch.cat` growth (a copy of the whole
cache per layer per step). Without a capacity, or past it, the buffers grow by doubling.
`ConcatKVCache` is the cache as it was before (concatenation per step), kept as the baseline that the
sampler-speed benchmark and the tests compare against (`SamplingOptions(kv_cache="concat")`).
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys/values (B, H, L, d) plus the attention group id of every cached position.

    Group ids implement the block-causal rule (a query sees keys whose group <= its own); with a
    local window, keys of old patch groups can be evicted to bound memory. `keys[i]` / `values[i]` /
    `groups` are views of the filled part of the buffers.
    """

    def __init__(self, n_layer: int, capacity: int | None = None) -> None:
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise ValueError(f"capacity must be a positive integer (positions) or None, got {capacity!r}")
        self.capacity = capacity
        self._k: list[torch.Tensor | None] = [None] * n_layer  # (B, H, C, d) buffers
        self._v: list[torch.Tensor | None] = [None] * n_layer
        self._filled = [0] * n_layer  # positions written per layer
        self._groups: torch.Tensor | None = None  # (C,) int64 buffer, shared by all layers
        self._n_groups = 0

    # ------------------------------------------------------------------ views
    @property
    def keys(self) -> list[torch.Tensor | None]:
        return [None if b is None else b[:, :, :n] for b, n in zip(self._k, self._filled)]

    @property
    def values(self) -> list[torch.Tensor | None]:
        return [None if b is None else b[:, :, :n] for b, n in zip(self._v, self._filled)]

    @property
    def groups(self) -> torch.Tensor | None:
        return None if self._groups is None else self._groups[: self._n_groups]

    @property
    def length(self) -> int:
        return self._n_groups

    # ------------------------------------------------------------------ writing
    def _room(self, used: int, new: int) -> int:
        """Buffer length for `used + new` positions: the capacity, or double the need past it."""
        need = used + new
        return self.capacity if self.capacity is not None and need <= self.capacity else 2 * need

    def append_groups(self, groups: torch.Tensor) -> torch.Tensor:
        """Register the group ids of the positions about to be appended; returns all key groups."""
        n, m = self._n_groups, groups.numel()
        if self._groups is None or n + m > self._groups.numel():
            buf = groups.new_empty(self._room(n, m))
            if self._groups is not None:
                buf[:n] = self._groups[:n]
            self._groups = buf
        self._groups[n : n + m] = groups
        self._n_groups = n + m
        return self._groups[: n + m]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, H, l, d) for `layer`; return the full cached keys and values (views)."""
        kb, vb, n, l = self._k[layer], self._v[layer], self._filled[layer], k.shape[2]
        if kb is None or vb is None or n + l > kb.shape[2] or kb.shape[:2] != k.shape[:2]:
            if kb is not None and kb.shape[:2] != k.shape[:2]:
                raise ValueError(
                    f"cached batch/heads {tuple(kb.shape[:2])} differ from new {tuple(k.shape[:2])}"
                )
            room = self._room(n, l)
            b, h, _, d = k.shape
            nk, nv = k.new_empty(b, h, room, d), v.new_empty(b, h, room, v.shape[3])
            if kb is not None and vb is not None:
                nk[:, :, :n], nv[:, :, :n] = kb[:, :, :n], vb[:, :, :n]
            self._k[layer], self._v[layer] = kb, vb = nk, nv
        kb[:, :, n : n + l] = k
        vb[:, :, n : n + l] = v
        self._filled[layer] = n + l
        return kb[:, :, : n + l], vb[:, :, : n + l]

    def evict(self, keep: torch.Tensor) -> None:
        """Keep only cached positions where `keep` (L,) bool is true (local-window attention)."""
        if self._groups is None or bool(keep.all()):
            return
        idx = keep.nonzero().squeeze(1)
        m = idx.numel()
        self._groups[:m] = self._groups[: self._n_groups][idx]
        self._n_groups = m
        for i, (kb, vb) in enumerate(zip(self._k, self._v)):
            if kb is not None and vb is not None:
                n = self._filled[i]
                kb[:, :, :m], vb[:, :, :m] = (
                    kb[:, :, :n][:, :, idx],
                    vb[:, :, :n][:, :, idx],
                )  # gathered first
                self._filled[i] = m

    def append_rows(self, keys: list[torch.Tensor], values: list[torch.Tensor], repeat: int) -> None:
        """Add batch rows: per layer keys/values (R, H, L, d) of the same L filled positions, tiled `repeat`
        times after the cached rows (e.g. a memoised null-condition stream after the conditional one)."""
        for i, (kb, vb) in enumerate(zip(self._k, self._v)):
            n = self._filled[i]
            if kb is None or vb is None or keys[i].shape[2] != n or values[i].shape[2] != n:
                raise ValueError(f"layer {i}: rows to append must have the cached {n} positions")
            b, r = kb.shape[0], keys[i].shape[0] * repeat
            nk, nv = kb.new_empty(b + r, *kb.shape[1:]), vb.new_empty(b + r, *vb.shape[1:])
            nk[:b, :, :n], nv[:b, :, :n] = kb[:, :, :n], vb[:, :, :n]
            nk[b:, :, :n], nv[b:, :, :n] = keys[i].repeat(repeat, 1, 1, 1), values[i].repeat(repeat, 1, 1, 1)
            self._k[i], self._v[i] = nk, nv

    def repeat_batch(self, n: int) -> None:
        """Tile every cached batch n times (e.g. after a shared prefix)."""
        for i, (kb, vb) in enumerate(zip(self._k, self._v)):
            if kb is not None and vb is not None:
                self._k[i], self._v[i] = kb.repeat(n, 1, 1, 1), vb.repeat(n, 1, 1, 1)

    def nbytes(self) -> int:
        """Bytes held by the key/value buffers (allocated room, not only the filled part)."""
        return sum(t.numel() * t.element_size() for t in [*self._k, *self._v] if t is not None)


class ConcatKVCache:
    """The same API, growing by `torch.cat` every step (the behaviour before preallocation)."""

    def __init__(self, n_layer: int, capacity: int | None = None) -> None:
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer
        self.groups: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.groups is None else int(self.groups.numel())

    def append_groups(self, groups: torch.Tensor) -> torch.Tensor:
        self.groups = groups if self.groups is None else torch.cat([self.groups, groups])
        return self.groups

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        old_k, old_v = self.keys[layer], self.values[layer]
        if old_k is None or old_v is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer], self.values[layer] = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
        return self.keys[layer], self.values[layer]  # type: ignore[return-value]

    def append_rows(self, keys: list[torch.Tensor], values: list[torch.Tensor], repeat: int) -> None:
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is None or v is None or keys[i].shape[2] != k.shape[2]:
                raise ValueError(f"layer {i}: rows to append must have the cached positions")
            self.keys[i] = torch.cat([k, keys[i].repeat(repeat, 1, 1, 1)])
            self.values[i] = torch.cat([v, values[i].repeat(repeat, 1, 1, 1)])  # type: ignore[list-item]

    def evict(self, keep: torch.Tensor) -> None:
        if self.groups is None or bool(keep.all()):
            return
        idx = keep.nonzero().squeeze(1)
        self.groups = self.groups[idx]
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None and v is not None:
                self.keys[i], self.values[i] = k[:, :, idx], v[:, :, idx]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.keys, *self.values] if t is not None)


KV_CACHES: dict[str, type] = {"preallocated": KVCache, "concat": ConcatKVCache}
