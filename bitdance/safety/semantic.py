"""Semantic layer of the content filter: nearest labelled examples in MiniLM sentence space.

Rules catch listed words; this layer catches phrasings no rule lists. A prompt is read back from the
obfuscation lattice (`normalize.reading`: leetspeak, look-alikes, spacing and accents undone), embedded
with the shipped all-MiniLM-L6-v2 encoder (mean-pooled, L2-normalised, first `MAX_TOKENS` word pieces)
and compared with the embeddings of a labelled list of must-block and benign prompts
(`bitdance/assets/safety/semantic_train.jsonl`). It is blocked when

    sim_block >= threshold  and  sim_block - sim_allow >= margin

where sim_block / sim_allow are the cosine similarities of the nearest must-block / benign example.
The verdict names that example and both similarities. threshold and margin are chosen on the
red-team suite's dev split by `bitdance filter-train` (docs/safety.md, "Semantic layer").

The encoder is loaded on the first prompt that reaches this layer (never when filtering is off).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from bitdance.safety.matcher import CATEGORIES
from bitdance.safety.normalize import reading

MAX_TOKENS = 32  # word pieces embedded; the shipped generator itself reads only the first 20
READ_CHARS = 400  # prompt characters read back for the encoder (more than MAX_TOKENS word pieces need)
CACHE_SIZE = 1024  # recent prompt embeddings kept (server retries, batches of one prompt)
INDEX_NAME = "semantic_index"  # bitdance/assets/safety/semantic_index.{json,safetensors}
TRAIN_NAME = "semantic_train.jsonl"
LABELS = ("block", "allow")


@dataclass(frozen=True)
class Neighbour:
    """A labelled example and its cosine similarity to the prompt."""

    text: str
    label: str
    category: str
    similarity: float


@dataclass(frozen=True)
class SemanticResult:
    """The layer's decision: `blocked`, the nearest must-block and nearest benign examples."""

    blocked: bool
    category: str
    nearest_block: Neighbour
    nearest_allow: Neighbour
    threshold: float
    margin: float

    def describe(self) -> str:
        """One clause for a verdict's reason."""
        b, a = self.nearest_block, self.nearest_allow
        return (
            f"semantic check: nearest must-block example {b.text!r} ({b.category}, similarity "
            f"{b.similarity:.3f}; threshold {self.threshold:.2f}), nearest benign example {a.text!r} "
            f"(similarity {a.similarity:.3f}; required margin {self.margin:.2f})"
        )


def read_examples(path: str | Path) -> list[dict[str, str]]:
    """Labelled examples from a JSONL file: {"prompt", "label": block|allow, "category"} per line."""
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {i}: invalid JSON: {e.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f"{path}: line {i}: expected an object with a non-empty 'prompt'")
        if row.get("label") not in LABELS:
            raise ValueError(f"{path}: line {i}: label must be one of {LABELS}, got {row.get('label')!r}")
        if row.get("category") not in CATEGORIES:
            raise ValueError(
                f"{path}: line {i}: category must be one of {CATEGORIES}, got {row.get('category')!r}"
            )
        rows.append(row)
    return rows


class Embedder:
    """MiniLM sentence embeddings of prompt readings, (B, 384) float32, with a small LRU cache."""

    def __init__(self, encoder: Any = None):
        self._encoder = encoder
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from bitdance.generator.text_encoder import MiniLMTextEncoder  # noqa: PLC0415

            self._encoder = MiniLMTextEncoder(max_len=MAX_TOKENS)
        return self._encoder

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        texts = [reading(p[:READ_CHARS])[:READ_CHARS] or "empty" for p in prompts]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                with torch.inference_mode():
                    emb = self.encoder.sentence_embedding(missing).float()
                for t, e in zip(missing, emb):
                    self._cache[t] = e
            out = torch.stack([self._cache[t] for t in texts])
            for t in texts:
                self._cache.move_to_end(t)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return out


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process (the encoder is loaded on first use)."""
    return Embedder()


class SemanticIndex:
    """Embeddings (N, D) of labelled examples plus the decision settings; `judge(prompt)`."""

    def __init__(
        self,
        texts: list[str],
        labels: list[str],
        categories: list[str],
        embeddings: torch.Tensor,
        threshold: float,
        margin: float,
        embedder: Embedder | None = None,
    ):
        n = len(texts)
        if not (len(labels) == len(categories) == n == embeddings.shape[0]) or n == 0:
            raise ValueError(f"index needs matching non-empty texts/labels/categories/embeddings, got {n}")
        if not {"block", "allow"} <= set(labels):
            raise ValueError("index needs both 'block' and 'allow' examples")
        self.texts, self.labels, self.categories = texts, labels, categories
        emb = embeddings.float()
        is_block = torch.tensor([lab == "block" for lab in labels])
        self._block_idx = is_block.nonzero().squeeze(1)
        self._allow_idx = (~is_block).nonzero().squeeze(1)
        self._block, self._allow = emb[self._block_idx], emb[self._allow_idx]
        self.threshold, self.margin = float(threshold), float(margin)
        self.embedder = embedder or shared_embedder()

    def with_settings(self, threshold: float, margin: float) -> SemanticIndex:
        """The same examples with another threshold/margin (used when choosing them on dev)."""
        emb = torch.zeros(len(self.texts), self._block.shape[1])
        emb[self._block_idx], emb[self._allow_idx] = self._block, self._allow
        return SemanticIndex(self.texts, self.labels, self.categories, emb, threshold, margin, self.embedder)

    def similarities(
        self, prompts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sim_block (B,), idx_block (B,), sim_allow (B,), idx_allow (B,)): nearest of each label."""
        q = self.embedder(prompts)
        sb, ib = (q @ self._block.T).max(1)
        sa, ia = (q @ self._allow.T).max(1)
        return sb, self._block_idx[ib], sa, self._allow_idx[ia]

    def decide(self, sim_block: float, sim_allow: float) -> bool:
        """`decide` with this index's threshold and margin."""
        return decide(sim_block, sim_allow, self.threshold, self.margin)

    def judge_many(self, prompts: list[str]) -> list[SemanticResult]:
        """`judge` for a batch of prompts (one encoder call)."""
        sb, ib, sa, ia = self.similarities(prompts)
        out = []
        for k in range(len(prompts)):
            b, a = int(ib[k]), int(ia[k])
            nb = Neighbour(self.texts[b], "block", self.categories[b], float(sb[k]))
            na = Neighbour(self.texts[a], "allow", self.categories[a], float(sa[k]))
            blocked = self.decide(nb.similarity, na.similarity)
            out.append(SemanticResult(blocked, nb.category, nb, na, self.threshold, self.margin))
        return out

    def judge(self, prompt: str) -> SemanticResult:
        """Nearest labelled examples of `prompt` and whether the layer blocks it."""
        return self.judge_many([prompt])[0]

    # ----------------------------------------------------------------- building and loading
    @classmethod
    def build(
        cls, examples: list[dict[str, str]], threshold: float, margin: float, embedder: Embedder | None = None
    ) -> SemanticIndex:
        """Embed labelled examples (see `read_examples`)."""
        embedder = embedder or shared_embedder()
        texts = [r["prompt"] for r in examples]
        emb = torch.cat([embedder(texts[i : i + 64]) for i in range(0, len(texts), 64)])
        labels = [r["label"] for r in examples]
        cats = [r["category"] for r in examples]
        return cls(texts, labels, cats, emb, threshold, margin, embedder)

    def save(self, folder: str | Path, meta: dict[str, Any], train_file: str | Path) -> None:
        """Write `<folder>/semantic_index.safetensors` (fp16 embeddings) and `.json` (settings, hashes)."""
        from safetensors.torch import save_file  # noqa: PLC0415

        folder = Path(folder)
        emb = torch.zeros(len(self.texts), self._block.shape[1])
        emb[self._block_idx], emb[self._allow_idx] = self._block, self._allow
        tensors = folder / f"{INDEX_NAME}.safetensors"
        save_file({"embeddings": emb.half().contiguous()}, str(tensors))
        info = {
            **meta,
            "threshold": self.threshold,
            "margin": self.margin,
            "max_tokens": MAX_TOKENS,
            "n": len(self.texts),
            "train_file": Path(train_file).name,
            "train_sha256": sha256_file(train_file),
            "embeddings_sha256": sha256_file(tensors),
        }
        (folder / f"{INDEX_NAME}.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, embedder: Embedder | None = None) -> SemanticIndex:
        """Load an index written by `save`; refuses one whose training list or embeddings changed."""
        from safetensors.torch import load_file  # noqa: PLC0415

        folder = Path(folder)
        info = json.loads((folder / f"{INDEX_NAME}.json").read_text(encoding="utf-8"))
        train = folder / info["train_file"]
        tensors = folder / f"{INDEX_NAME}.safetensors"
        if sha256_file(train) != info["train_sha256"] or sha256_file(tensors) != info["embeddings_sha256"]:
            raise ValueError(
                f"{folder}: the semantic index does not match {train.name}; "
                "rebuild it with `bitdance filter-train`"
            )
        rows = read_examples(train)
        emb = load_file(str(tensors))["embeddings"]
        labels = [r["label"] for r in rows]
        cats = [r["category"] for r in rows]
        return cls(
            [r["prompt"] for r in rows], labels, cats, emb, info["threshold"], info["margin"], embedder
        )

    @classmethod
    def builtin(cls) -> SemanticIndex:
        """The shipped index (`bitdance/assets/safety/`), loaded once per process."""
        return _builtin_index()


def decide(sim_block: float, sim_allow: float, threshold: float, margin: float) -> bool:
    """The decision rule: close to a must-block example, and closer to it than to any benign one."""
    return sim_block >= threshold and sim_block - sim_allow >= margin


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assets_dir() -> Path:
    """`bitdance/assets/safety/` (red-team suite, training list, shipped index)."""
    return Path(str(resources.files("bitdance") / "assets" / "safety"))


@lru_cache(maxsize=1)
def _builtin_index() -> SemanticIndex:
    return SemanticIndex.load(assets_dir())
