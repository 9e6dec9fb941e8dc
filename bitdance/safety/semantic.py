"""Semantic layer of the content filter: nearest labelled examples and a small classifier in MiniLM space.

Rules catch listed words; this layer catches phrasings no rule lists. A prompt is read back from the
obfuscation lattice (`normalize.reading`: leetspeak, look-alikes, spacing, accents and common foreign
words undone), embedded with the all-MiniLM-L6-v2 encoder (mean-pooled, L2-normalised) and compared
with the embeddings of a labelled list of must-block and benign prompts
(`bitdance/assets/safety/semantic_train.jsonl`). Two scores, either of which blocks:

    nearest examples:  sim_block >= threshold  and  sim_block - sim_allow >= margin
                       and  vote >= vote_share
    classifier:        p_block >= clf_threshold

unless the chunk is a labelled benign example itself (sim_allow >= KNOWN_BENIGN): the classifier is
smooth, so it can score one of its own benign training examples (an emoji name such as "shocked face
with exploding head") above the threshold; the label wins. Neither score blocks a chunk that is out of
the labelled examples' domain (no example at similarity >= domain_floor): junk text inside a template
is judged by the rules alone. `vote` is the similarity-weighted must-block share of the vote_k nearest
labelled examples of either label, so one stray must-block example cannot decide alone.

sim_block / sim_allow are the cosine similarities of the nearest must-block / benign example; p_block is
1 - P(allow) of a multinomial logistic regression (allow + one class per category) trained on the same
labelled embeddings. A long prompt is also scored in overlapping chunks of CHUNK_WORDS words (at most
MAX_CHUNKS), so harm late in a long prompt is not averaged away. The verdict names the nearest
must-block example, both similarities and the classifier score. threshold, margin and clf_threshold
are chosen on the red-team suite's dev splits (dev, dev2) by `bitdance filter-train` (docs/safety.md).

The encoder is loaded on the first prompt that reaches this layer (never when filtering is off), or
an already-loaded one is passed in (`Embedder(encoder)`, `ContentFilter(encoder=...)`).
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

from bitdance.core.atomic import atomic_write_bytes, atomic_write_with
from bitdance.safety.jsonl import jsonl_rows
from bitdance.safety.matcher import CATEGORIES
from bitdance.safety.normalize import reading

MAX_TOKENS = 32  # word pieces the filter's own encoder embeds (a shared encoder keeps its own max_len)
READ_CHARS = 2000  # prompt characters read back for the encoder
CHUNK_WORDS = 12  # a reading longer than this is also scored in windows of this many words ...
CHUNK_STRIDE = 6  # ... starting every CHUNK_STRIDE words
MAX_CHUNKS = 8  # windows scored per prompt, besides the whole reading (bounds the cost)
KNOWN_BENIGN = 0.99  # a chunk this similar to a benign example *is* that example: neither score blocks it
VOTE_K = 5  # labelled examples (either label) that vote on a nearest-example block ...
VOTE_SHARE = 0.6  # ... and the similarity-weighted must-block share they must reach
DOMAIN_FLOOR = 0.55  # a chunk with no labelled example this similar is out of domain: rules only
CACHE_SIZE = 1024  # recent chunk embeddings kept (server retries, batches of one prompt)
INDEX_NAME = "semantic_index"  # bitdance/assets/safety/semantic_index.{json,safetensors}
TRAIN_NAME = "semantic_train.jsonl"
LABELS = ("block", "allow")
DOMAIN_CATEGORY = "none"  # a benign example that is no category's near-miss (the model's own domain)
CLASSES = ("allow", *(c for c in CATEGORIES))  # classifier outputs: benign, then one per category


@dataclass(frozen=True)
class Neighbour:
    """A labelled example and its cosine similarity to the prompt."""

    text: str
    label: str
    category: str
    similarity: float


@dataclass(frozen=True)
class SemanticResult:
    """The layer's decision on one prompt (its most harmful chunk): `blocked`, by which score, the
    nearest must-block and benign examples, the classifier's block probability and settings."""

    blocked: bool
    category: str
    nearest_block: Neighbour
    nearest_allow: Neighbour
    threshold: float
    margin: float
    score: float | None = None  # classifier P(block); None when the index has no classifier
    clf_threshold: float | None = None
    by: str = "nearest"  # "nearest" or "classifier": the score that blocked (or would come closest)
    chunk: str = ""  # the reading of the chunk that was judged
    vote: float = 1.0  # similarity-weighted must-block share of the `neighbours`
    vote_share: float = 0.0  # the share a nearest-example block needs
    neighbours: tuple[Neighbour, ...] = ()  # the vote_k nearest labelled examples, either label
    domain_floor: float = 0.0  # below this similarity to every example: out of domain, rules only

    @property
    def in_domain(self) -> bool:
        """Some labelled example is at least `domain_floor` similar to the judged chunk."""
        return max(self.nearest_block.similarity, self.nearest_allow.similarity) >= self.domain_floor

    def describe(self) -> str:
        """One clause for a verdict's reason."""
        b, a = self.nearest_block, self.nearest_allow
        text = (
            f"semantic check: nearest must-block example {b.text!r} ({b.category}, similarity "
            f"{b.similarity:.3f}; threshold {self.threshold:.2f}), nearest benign example {a.text!r} "
            f"(similarity {a.similarity:.3f}; required margin {self.margin:.2f})"
        )
        if self.neighbours:
            near = "; ".join(f"{n.text!r} {n.label} {n.similarity:.3f}" for n in self.neighbours)
            text += (
                f", the {len(self.neighbours)} nearest examples vote {self.vote:.2f} must-block "
                f"(needed {self.vote_share:.2f}: {near})"
            )
        if self.score is not None:
            text += f", classifier P(block) {self.score:.3f} (threshold {self.clf_threshold:.2f})"
        if not self.in_domain:
            floor = self.domain_floor
            text += f"; no labelled example within similarity {floor:.2f}: out of domain, rules only"
        return text


def read_examples(path: str | Path) -> list[dict[str, str]]:
    """Labelled examples from a JSONL file: {"prompt", "label": block|allow, "category"} per line. A
    benign row's category is the category it is a near-miss of, or "none" (the model's own domain)."""
    rows = []
    for i, row in jsonl_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f"{path}: line {i}: expected an object with a non-empty 'prompt'")
        if row.get("label") not in LABELS:
            raise ValueError(f"{path}: line {i}: label must be one of {LABELS}, got {row.get('label')!r}")
        allowed = CATEGORIES if row["label"] == "block" else (*CATEGORIES, DOMAIN_CATEGORY)
        if row.get("category") not in allowed:
            raise ValueError(
                f"{path}: line {i}: category of a {row['label']!r} example must be one of {allowed}, "
                f"got {row.get('category')!r}"
            )
        rows.append(row)
    return rows


def chunks(text: str) -> list[str]:
    """The texts a reading is scored as: the whole reading, then (if longer than CHUNK_WORDS words)
    windows of CHUNK_WORDS words every CHUNK_STRIDE words, at most MAX_CHUNKS of them."""
    words = text.split()
    out = [text or "empty"]
    if len(words) > CHUNK_WORDS:
        for k, at in enumerate(range(0, len(words) - CHUNK_STRIDE, CHUNK_STRIDE)):
            if k == MAX_CHUNKS:
                break
            out.append(" ".join(words[at : at + CHUNK_WORDS]))
    return list(dict.fromkeys(out))


class Embedder:
    """MiniLM sentence embeddings of texts, (B, D) float32 on the CPU, with a small LRU cache.

    encoder: anything with `sentence_embedding(list[str]) -> Tensor (B, D)`, L2-normalised, e.g. the
    pipeline's already-loaded `MiniLMTextEncoder` (on any device); None loads the shipped MiniLM on
    first use.
    """

    def __init__(self, encoder: Any = None):
        if encoder is not None and not callable(getattr(encoder, "sentence_embedding", None)):
            raise TypeError(
                f"encoder must have a sentence_embedding(list[str]) method (e.g. MiniLMTextEncoder), "
                f"got {type(encoder).__name__}"
            )
        self._encoder = encoder
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from bitdance.generator.text_encoder import MiniLMTextEncoder  # noqa: PLC0415

            self._encoder = MiniLMTextEncoder(max_len=MAX_TOKENS)
        return self._encoder

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Embeddings (B, D) of `texts` exactly as given (already read back)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                with torch.inference_mode():
                    emb = self.encoder.sentence_embedding(missing).detach().float().cpu()
                for t, e in zip(missing, emb):
                    self._cache[t] = e
            out = torch.stack([self._cache[t] for t in texts])
            for t in texts:
                self._cache.move_to_end(t)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return out

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        """Embeddings (B, D) of the prompts' readings (whole reading only; see `chunks`)."""
        return self.embed([prompt_reading(p) for p in prompts])


def prompt_reading(prompt: str) -> str:
    """The text the encoder sees for a prompt (its reading, bounded; "empty" for an empty one)."""
    return reading(prompt[:READ_CHARS], vocab())[:READ_CHARS] or "empty"


@lru_cache(maxsize=1)
def vocab() -> frozenset[str] | None:
    """Whole words of the MiniLM word-piece vocabulary (guides leet readings and spaced-out runs), or
    None when the encoder's files are not installed."""
    try:
        from bitdance.generator.text_encoder import minilm_path  # noqa: PLC0415

        data = json.loads((minilm_path() / "tokenizer.json").read_text(encoding="utf-8"))
    except (RuntimeError, OSError, ValueError):
        return None
    words = data.get("model", {}).get("vocab", {})
    return frozenset(w for w in words if w.isalpha() and w.isascii() and (len(w) > 1 or w in "ai"))


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process (the encoder is loaded on first use)."""
    return Embedder()


def use_encoder(encoder: Any) -> bool:
    """Let the process-wide embedder use an already-loaded `encoder` (`sentence_embedding(list[str])`),
    e.g. the pipeline's MiniLM, unless it has loaded one already; True when it now uses `encoder`."""
    if not callable(getattr(encoder, "sentence_embedding", None)):
        raise TypeError(
            f"encoder must have a sentence_embedding(list[str]) method, got {type(encoder).__name__}"
        )
    shared = shared_embedder()
    with shared._lock:
        if shared._encoder is not None:
            return False
        shared._encoder = encoder
    return True


@dataclass(frozen=True)
class Classifier:
    """Multinomial logistic regression over sentence embeddings: logits = x @ weight.T + bias.

    weight (C, D), bias (C,), classes (C,) with "allow" first. `p_block(x)` = 1 - P(allow), (B,).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    classes: tuple[str, ...] = CLASSES

    def probs(self, x_BD: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x_BD @ self.weight.T + self.bias, dim=-1)

    @staticmethod
    def fit(x_ND: torch.Tensor, classes_N: list[str], l2: float = 1e-3, steps: int = 200) -> Classifier:
        """Train on labelled embeddings (class-balanced cross-entropy + L2, L-BFGS, deterministic)."""
        present = [c for c in CLASSES if c in set(classes_N)]
        y = torch.tensor([CLASSES.index(c) for c in classes_N])
        counts = torch.bincount(y, minlength=len(CLASSES)).float()
        w_class = torch.where(counts > 0, counts.sum() / (len(present) * counts.clamp_min(1)), 0.0)
        x = x_ND.float()
        weight = torch.zeros(len(CLASSES), x.shape[1], requires_grad=True)
        bias = torch.zeros(len(CLASSES), requires_grad=True)
        # classes with no examples (copyrighted characters: rules only) can never be predicted
        mask = torch.where(counts > 0, 0.0, -1e4)
        opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            logits = x @ weight.T + bias + mask
            loss = torch.nn.functional.cross_entropy(logits, y, weight=w_class) + l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return Classifier(weight.detach(), (bias + mask).detach())

    def p_block(self, x_BD: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """(P(block) (B,), most likely harmful category per row)."""
        p = self.probs(x_BD)
        cats = [CLASSES[1 + int(i)] for i in p[:, 1:].argmax(1)]
        return 1 - p[:, 0], cats


class SemanticIndex:
    """Embeddings (N, D) of labelled examples, an optional classifier and the decision settings."""

    def __init__(
        self,
        texts: list[str],
        labels: list[str],
        categories: list[str],
        embeddings: torch.Tensor,
        threshold: float,
        margin: float,
        embedder: Embedder | None = None,
        classifier: Classifier | None = None,
        clf_threshold: float = 1.01,
        vote_k: int = VOTE_K,
        vote_share: float = VOTE_SHARE,
        domain_floor: float = DOMAIN_FLOOR,
    ):
        n = len(texts)
        if not (len(labels) == len(categories) == n == embeddings.shape[0]) or n == 0:
            raise ValueError(f"index needs matching non-empty texts/labels/categories/embeddings, got {n}")
        if not {"block", "allow"} <= set(labels):
            raise ValueError("index needs both 'block' and 'allow' examples")
        self.texts, self.labels, self.categories = texts, labels, categories
        self.embeddings = embeddings.float()
        is_block = torch.tensor([lab == "block" for lab in labels])
        self._block_idx = is_block.nonzero().squeeze(1)
        self._allow_idx = (~is_block).nonzero().squeeze(1)
        self._block, self._allow = self.embeddings[self._block_idx], self.embeddings[self._allow_idx]
        self.threshold, self.margin = float(threshold), float(margin)
        self.classifier, self.clf_threshold = classifier, float(clf_threshold)
        self.vote_k, self.vote_share, self.domain_floor = int(vote_k), float(vote_share), float(domain_floor)
        if self.vote_k < 1:
            raise ValueError(f"vote_k must be at least 1, got {vote_k}")
        self._is_block = is_block
        self.embedder = embedder or shared_embedder()

    def with_settings(
        self, threshold: float, margin: float, clf_threshold: float | None = None
    ) -> SemanticIndex:
        """The same examples with other settings (used when choosing them on dev)."""
        ct = self.clf_threshold if clf_threshold is None else clf_threshold
        return SemanticIndex(
            self.texts, self.labels, self.categories, self.embeddings, threshold, margin,
            self.embedder, self.classifier, ct, self.vote_k, self.vote_share, self.domain_floor,
        )  # fmt: skip

    def with_vote(self, vote_k: int, vote_share: float, domain_floor: float) -> SemanticIndex:
        """The same examples and thresholds with another vote and domain floor."""
        return SemanticIndex(
            self.texts, self.labels, self.categories, self.embeddings, self.threshold, self.margin,
            self.embedder, self.classifier, self.clf_threshold, vote_k, vote_share, domain_floor,
        )  # fmt: skip

    def with_classifier(self, classifier: Classifier | None) -> SemanticIndex:
        out = self.with_settings(self.threshold, self.margin)
        out.classifier = classifier
        return out

    def with_embedder(self, embedder: Embedder) -> SemanticIndex:
        """The same index embedding prompts with another embedder (e.g. a shared, already-loaded one)."""
        out = self.with_settings(self.threshold, self.margin)
        out.embedder = embedder
        return out

    def scores(self, x_BD: torch.Tensor) -> dict[str, Any]:
        """Nearest-example similarities, the k-nearest vote and classifier scores of embeddings (B, D)."""
        sim = x_BD.float() @ self.embeddings.T  # (B, N)
        sb, ib = sim[:, self._block_idx].max(1)
        sa, ia = sim[:, self._allow_idx].max(1)
        top, it = sim.topk(min(self.vote_k, sim.shape[1]), dim=1)
        w = top.clamp_min(0.0)
        vote = (w * self._is_block[it].float()).sum(1) / w.sum(1).clamp_min(1e-6)
        out: dict[str, Any] = {"sim_block": sb, "idx_block": self._block_idx[ib], "sim_allow": sa,
                               "idx_allow": self._allow_idx[ia], "vote": vote, "idx_near": it,
                               "sim_near": top}  # fmt: skip
        if self.classifier is not None:
            out["p_block"], out["clf_category"] = self.classifier.p_block(x_BD)
        return out

    def similarities(
        self, prompts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sim_block (B,), idx_block (B,), sim_allow (B,), idx_allow (B,)) of the whole readings."""
        s = self.scores(self.embedder(prompts))
        return s["sim_block"], s["idx_block"], s["sim_allow"], s["idx_allow"]

    def chunk_scores(self, prompts: list[str]) -> list[dict[str, Any]]:
        """Per prompt: the scores of each of its chunks (see `chunks`), one encoder call in all."""
        per = [chunks(prompt_reading(p)) for p in prompts]
        flat = [c for cs in per for c in cs]
        s = self.scores(self.embedder.embed(flat))
        out, at = [], 0
        for cs in per:
            sl = slice(at, at + len(cs))
            out.append({"chunks": cs, **{k: v[sl] for k, v in s.items()}})
            at += len(cs)
        return out

    def decide(
        self, sim_block: float, sim_allow: float, p_block: float | None = None, vote: float = 1.0
    ) -> bool:
        """`decide` with this index's settings (a known benign example is never blocked, nor is an
        out-of-domain chunk; the nearest-example score also needs the k-nearest vote)."""
        return any(self._blocks(sim_block, sim_allow, p_block, vote))

    def _blocks(
        self, sim_block: float, sim_allow: float, p_block: float | None, vote: float
    ) -> tuple[bool, bool]:
        """(nearest-example score blocks, classifier blocks) for one chunk's scores."""
        if sim_allow >= KNOWN_BENIGN or max(sim_block, sim_allow) < self.domain_floor:
            return False, False
        knn = vote >= self.vote_share and decide(sim_block, sim_allow, self.threshold, self.margin)
        return knn, p_block is not None and p_block >= self.clf_threshold

    def judge_many(self, prompts: list[str]) -> list[SemanticResult]:
        """`judge` for a batch of prompts (one encoder call)."""
        out = []
        for s in self.chunk_scores(prompts):
            n = len(s["chunks"])
            p = s.get("p_block")
            vote = s["vote"]
            knn, clf = zip(*(
                self._blocks(float(s["sim_block"][k]), float(s["sim_allow"][k]),
                             None if p is None else float(p[k]), float(vote[k]))
                for k in range(n)
            ))  # fmt: skip
            # the chunk reported: the first blocked one, else the one closest to a must-block example
            hit = [k for k in range(n) if knn[k] or clf[k]]
            k = hit[0] if hit else int(s["sim_block"].argmax())
            b, a = int(s["idx_block"][k]), int(s["idx_allow"][k])
            nb = Neighbour(self.texts[b], "block", self.categories[b], float(s["sim_block"][k]))
            na = Neighbour(self.texts[a], "allow", self.categories[a], float(s["sim_allow"][k]))
            by = "nearest" if knn[k] or not clf[k] else "classifier"
            category = nb.category if by == "nearest" else s["clf_category"][k]
            score = None if p is None else round(float(p[k]), 4)
            ct = None if p is None else self.clf_threshold
            near = tuple(
                Neighbour(self.texts[j], self.labels[j], self.categories[j], round(float(x), 4))
                for j, x in zip(s["idx_near"][k].tolist(), s["sim_near"][k].tolist())
            )
            out.append(SemanticResult(bool(hit), category, nb, na, self.threshold, self.margin, score, ct,
                                      by, s["chunks"][k], round(float(vote[k]), 4), self.vote_share, near,
                                      self.domain_floor))  # fmt: skip
        return out

    def judge(self, prompt: str) -> SemanticResult:
        """Nearest labelled examples of `prompt`, its classifier score and whether the layer blocks it."""
        return self.judge_many([prompt])[0]

    # ----------------------------------------------------------------- building and loading
    @classmethod
    def build(
        cls,
        examples: list[dict[str, str]],
        threshold: float,
        margin: float,
        embedder: Embedder | None = None,
        classifier: bool = False,
    ) -> SemanticIndex:
        """Embed labelled examples (see `read_examples`); `classifier=True` also trains the classifier."""
        embedder = embedder or shared_embedder()
        texts = [r["prompt"] for r in examples]
        emb = torch.cat([embedder(texts[i : i + 64]) for i in range(0, len(texts), 64)])
        labels = [r["label"] for r in examples]
        cats = [r["category"] for r in examples]
        clf = Classifier.fit(emb, [_class_of(r) for r in examples]) if classifier else None
        return cls(texts, labels, cats, emb, threshold, margin, embedder, clf)

    def save(
        self,
        folder: str | Path,
        meta: dict[str, Any],
        train_file: str | Path,
        domain_file: str | Path | None = None,
    ) -> None:
        """Write `<folder>/semantic_index.safetensors` (fp16 embeddings, fp32 classifier) and `.json`.
        The examples are the rows of `train_file`, then those of `domain_file` (if any), in order."""
        from safetensors.torch import save_file  # noqa: PLC0415

        folder = Path(folder)
        tensors = folder / f"{INDEX_NAME}.safetensors"
        data = {"embeddings": self.embeddings.half().contiguous()}
        if self.classifier is not None:
            data["classifier.weight"] = self.classifier.weight.float().contiguous()
            data["classifier.bias"] = self.classifier.bias.float().contiguous()
        atomic_write_with(tensors, lambda tmp: save_file(data, str(tmp)))  # whole file, default mode
        info = {
            **meta,
            "threshold": self.threshold,
            "margin": self.margin,
            "clf_threshold": self.clf_threshold if self.classifier is not None else None,
            "vote_k": self.vote_k,
            "vote_share": self.vote_share,
            "domain_floor": self.domain_floor,
            "classes": list(CLASSES) if self.classifier is not None else None,
            "max_tokens": MAX_TOKENS,
            "chunks": {"words": CHUNK_WORDS, "stride": CHUNK_STRIDE, "max": MAX_CHUNKS},
            "n": len(self.texts),
            "train_file": Path(train_file).name,
            "train_sha256": sha256_file(train_file),
            "domain_file": None if domain_file is None else Path(domain_file).name,
            "domain_sha256": None if domain_file is None else sha256_file(domain_file),
            "embeddings_sha256": sha256_file(tensors),
        }
        atomic_write_bytes(folder / f"{INDEX_NAME}.json", (json.dumps(info, indent=1) + "\n").encode("utf-8"))

    @classmethod
    def load(cls, folder: str | Path, embedder: Embedder | None = None) -> SemanticIndex:
        """Load an index written by `save`; refuses one whose training list or embeddings changed."""
        from safetensors.torch import load_file  # noqa: PLC0415

        folder = Path(folder)
        info = json.loads((folder / f"{INDEX_NAME}.json").read_text(encoding="utf-8"))
        files = [(folder / info["train_file"], info["train_sha256"])]
        if info.get("domain_file"):
            files.append((folder / info["domain_file"], info["domain_sha256"]))
        tensors = folder / f"{INDEX_NAME}.safetensors"
        for path, sha in [*files, (tensors, info["embeddings_sha256"])]:
            if not path.is_file() or sha256_file(path) != sha:
                raise ValueError(
                    f"{folder}: the semantic index does not match {path.name}; "
                    "rebuild it with `bitdance filter-train`"
                )
        rows = [row for path, _ in files for row in read_examples(path)]
        data = load_file(str(tensors))
        clf = None
        if "classifier.weight" in data:
            clf = Classifier(data["classifier.weight"], data["classifier.bias"], tuple(info["classes"]))
        labels = [r["label"] for r in rows]
        cats = [r["category"] for r in rows]
        ct = info.get("clf_threshold")
        # an index written before the vote and the domain floor existed decides as it did then
        vote = (info.get("vote_k", 1), info.get("vote_share", 0.0), info.get("domain_floor", 0.0))
        return cls(
            [r["prompt"] for r in rows], labels, cats, data["embeddings"], info["threshold"], info["margin"],
            embedder, clf, 1.01 if ct is None else ct, *vote,
        )  # fmt: skip

    @classmethod
    def builtin(cls, encoder: Any = None) -> SemanticIndex:
        """The shipped index (`bitdance/assets/safety/`), loaded once per process; `encoder`: an
        already-loaded text encoder to embed prompts with (see `Embedder`)."""
        index = _builtin_index()
        return index if encoder is None else index.with_embedder(embedder_for(encoder))


def _class_of(row: dict[str, str]) -> str:
    return "allow" if row["label"] == "allow" else row["category"]


def embedder_for(encoder: Any) -> Embedder:
    """One Embedder (and so one cache) per shared encoder object."""
    with _EMBEDDERS_LOCK:
        for enc, emb in _EMBEDDERS:
            if enc is encoder:
                return emb
        emb = Embedder(encoder)
        _EMBEDDERS.append((encoder, emb))
        del _EMBEDDERS[:-4]  # a process shares at most a few encoders
        return emb


_EMBEDDERS: list[tuple[Any, Embedder]] = []
_EMBEDDERS_LOCK = threading.Lock()


def decide(sim_block: float, sim_allow: float, threshold: float, margin: float) -> bool:
    """The nearest-example rule: close to a must-block example, and closer to it than to any benign one."""
    return sim_block >= threshold and sim_block - sim_allow >= margin


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assets_dir() -> Path:
    """`bitdance/assets/safety/` (red-team suite, training list, shipped index)."""
    return Path(str(resources.files("bitdance") / "assets" / "safety"))


@lru_cache(maxsize=1)
def _builtin_index() -> SemanticIndex:
    return SemanticIndex.load(assets_dir())
