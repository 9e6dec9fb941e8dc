"""Export wrappers: each BitDance stage as a module with plain tensor inputs and outputs (ONNX graphs).

Graphs (all float32):
    prefix         cond -> x0 (B, Lp + P - 1, D): conditioning prefix + P - 1 query tokens (first AR input)
    embed_tokens   bits (B, P, d) -> (B, P, D)
    backbone_step  x (B, L, D), rope (L, hd/2, 2), groups (L,), past_groups (Lp,),
                   past_keys / past_values (n_layer, B, H, Lp, hd)
                   -> hidden (B, L, D), present_keys / present_values (n_layer, B, H, Lp + L, hd)
    head           z (n, P, d), t (n,), cond (n, P, D) -> x_hat (n, P, d)        (`model.head.net`)
    decoder        bits (B, d, h, w) [, noise (B, d, h, w)] -> image (B, 3, H, W)
"""

from __future__ import annotations

import torch
from torch import nn

from ..generator.transformer import BitDanceTransformer, TextCondition
from ..tokenizer.autoencoder import BinaryAutoencoder


class ExplicitCache:
    """KVCache stand-in over stacked past tensors: `BitDanceTransformer.forward` runs unchanged and the
    concatenated (present) keys/values are collected per layer."""

    def __init__(self, past_keys: torch.Tensor, past_values: torch.Tensor, past_groups: torch.Tensor) -> None:
        self.past_keys, self.past_values, self.past_groups = past_keys, past_values, past_groups
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def append_groups(self, groups: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.past_groups, groups])

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.cat([self.past_keys[layer], k], dim=2)
        v = torch.cat([self.past_values[layer], v], dim=2)
        self.keys.append(k)
        self.values.append(v)
        return k, v


class BackboneStep(nn.Module):
    """One cached backbone call with the KV cache as explicit input/output tensors."""

    def __init__(self, model: BitDanceTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        x_BLD: torch.Tensor,
        rope: torch.Tensor,
        groups: torch.Tensor,
        past_groups: torch.Tensor,
        past_keys: torch.Tensor,
        past_values: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = ExplicitCache(past_keys, past_values, past_groups)
        hidden = self.model(x_BLD, rope, groups, cache)  # type: ignore[arg-type]
        return hidden, torch.stack(cache.keys), torch.stack(cache.values)


class ClassPrefix(nn.Module):
    """labels (B,) int64 -> first AR input (B, Lp + P - 1, D)."""

    def __init__(self, model: BitDanceTransformer, parallel_num: int) -> None:
        super().__init__()
        self.model, self.parallel_num = model, parallel_num

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        cfg = self.model.config
        prefix = self.model.cls_embedding(labels).view(labels.shape[0], cfg.cls_token_num, cfg.dim)
        return torch.cat([prefix, self.model.queries(labels.shape[0], self.parallel_num)], dim=1)


class TextPrefix(nn.Module):
    """text states (B, L, Dt) float + mask (B, L) bool -> first AR input (B, Lp + P - 1, D)."""

    def __init__(self, model: BitDanceTransformer, parallel_num: int) -> None:
        super().__init__()
        self.model, self.parallel_num = model, parallel_num

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        prefix = self.model.embed_prefix(TextCondition(states, mask))
        return torch.cat([prefix, self.model.queries(states.shape[0], self.parallel_num)], dim=1)


class TokenEmbed(nn.Module):
    """bits (B, P, d) -> backbone input embeddings (B, P, D)."""

    def __init__(self, model: BitDanceTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return self.model.embed_tokens(bits)


class HeadNet(nn.Module):
    """x-prediction of the diffusion head: `model.head.net(z, t, cond)`."""

    def __init__(self, model: BitDanceTransformer) -> None:
        super().__init__()
        self.net = model.head.net

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(z, t, cond)


class Decoder(nn.Module):
    """Tokenizer decoder without input checks (the runner feeds exact ±1 bits)."""

    def __init__(self, tokenizer: BinaryAutoencoder) -> None:
        super().__init__()
        self.decoder = tokenizer.decoder

    def forward(self, bits: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(bits, noise)
