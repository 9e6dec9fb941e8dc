"""One MiniLM per process: the content filter's semantic layer embeds prompts with the pipeline's encoder.

A text-to-image pipeline already holds all-MiniLM-L6-v2 (its prompt encoder); the filter's semantic layer
would otherwise load a second copy on its first prompt (~0.4 s and ~90 MB). `FilterEncoder` presents the
pipeline's encoder the way the filter wants it: the filter's token budget (`semantic.MAX_TOKENS`, a weight-
sharing view) and CPU float32 embeddings (the filter's index lives on CPU). The embeddings are exactly those
of the filter's own copy (same weights, same arithmetic: tests/test_generate_startup.py).

Only the stock MiniLM on CPU is shared: a MiniLM loaded from another folder has other weights, and a GPU
copy would give slightly different floats, which could move a verdict at its threshold; in those cases the
adapter loads the filter's own CPU copy on first use, as the filter would have.
"""

from __future__ import annotations

import threading
from typing import Any

import torch


class FilterEncoder:
    """`sentence_embedding(prompts) -> (B, 384)` fp32 on CPU, from a pipeline's MiniLMTextEncoder."""

    def __init__(self, encoder: Any, max_len: int) -> None:
        self.encoder, self.max_len = encoder, max_len
        self._view: Any = None
        self._own: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        with self._lock:
            if self.encoder.word.weight.device.type == "cpu":
                if self._view is None:  # made on first use: nothing to pay when the filter is off
                    self._view = self.encoder.with_max_len(self.max_len)
                return self._view
            if self._own is None:  # the pipeline was moved off the CPU after construction: a CPU copy
                from ..generator.text_encoder import MiniLMTextEncoder  # noqa: PLC0415

                self._own = MiniLMTextEncoder(max_len=self.max_len)
            return self._own

    @torch.no_grad()
    def sentence_embedding(self, prompts: list[str]) -> torch.Tensor:
        return self._encoder().sentence_embedding(prompts).float()


def is_stock_minilm(encoder: Any) -> bool:
    """True for a MiniLMTextEncoder loaded from the installed all-MiniLM-L6-v2 package, on CPU."""
    from ..generator.text_encoder import MiniLMTextEncoder, minilm_path  # noqa: PLC0415

    if not isinstance(encoder, MiniLMTextEncoder) or encoder.word.weight.device.type != "cpu":
        return False
    return getattr(encoder, "path", None) == minilm_path()


def share_with_filter(encoder: Any) -> bool:
    """Give the content filter's semantic layer `encoder` (the stock MiniLM) unless it has its own already.

    Returns True when the filter now uses it (`bitdance.safety.semantic.use_encoder`).
    """
    if not is_stock_minilm(encoder):
        return False
    from ..safety import semantic  # noqa: PLC0415

    return semantic.use_encoder(FilterEncoder(encoder, semantic.MAX_TOKENS))
