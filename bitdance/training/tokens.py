"""`extract-tokens`: encode a dataset once into packed bits on disk, plus captions, labels and cached
text-encoder states, so generator training never runs the tokenizer or the text encoder.

Folder layout (written to a temp folder, then renamed into place)::

    header.json        format, count, bits_shape [d, h, w], tokenizer config/hash, text encoder spec, sources
    bits.npy           (N, ceil(d*h*w / 8)) uint8   np.packbits of (bits > 0) flattened in (d, h, w) order
    labels.npy         (N,) int64                   class label (-1 if none)
    caption_ids.npy    (N,) int64                   index into captions.json
    meta.json          (N,) list of compact item descriptions (for the rich captioner; absent in old folders)
    source_ids.npy     (N,) int16                   index into header["sources"]
    captions.json      unique captions
    text_states.npy    (T, D) float16               valid token states of each unique caption, concatenated
    text_offsets.npy   (U + 1,) int64               caption u owns rows text_offsets[u]:text_offsets[u + 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.atomic import atomic_folder
from ..generator.transformer import TextCondition
from .tokenizer_match import encoder_hash, state_hash

FORMAT = "bitdance-tokens"
VERSION = 1


def pack_bits(bits_BdHW: torch.Tensor) -> np.ndarray:
    """±1 bits (B, d, h, w) -> (B, ceil(d*h*w/8)) uint8."""
    on = (bits_BdHW > 0).flatten(1).cpu().numpy().astype(np.uint8)
    return np.packbits(on, axis=1)


def unpack_bits(packed: np.ndarray, shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, nbytes) uint8 -> ±1 float bits (B, d, h, w)."""
    d, h, w = shape
    on = np.unpackbits(packed, axis=1, count=d * h * w).reshape(-1, d, h, w)
    return torch.from_numpy(on.astype(np.float32) * 2 - 1)


def build_encoder(name: str, text_len: int, text_dim: int | None) -> torch.nn.Module | None:
    if name == "none":
        return None
    from ..generator.text_encoder import build_text_encoder

    kw: dict[str, Any] = {"max_len": text_len}
    if name == "hash":
        kw["dim"] = text_dim or 32
    elif text_dim not in (None, 384):
        raise ValueError("--text-dim applies to the hash encoder only (MiniLM states are 384-d)")
    return build_text_encoder(name, **kw)


def encode_captions(
    encoder: torch.nn.Module, captions: list[str], batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Unique captions -> (ragged states (T, D) float16, offsets (U + 1,) int64)."""
    states, offsets = [], [0]
    for i in range(0, len(captions), batch):
        c = encoder(captions[i : i + batch])
        for s, m in zip(c.states, c.mask):
            valid = s[m].float().cpu().numpy().astype(np.float16)
            states.append(valid)
            offsets.append(offsets[-1] + len(valid))
    dim = states[0].shape[1] if states else 0
    return (np.concatenate(states) if states else np.zeros((0, dim), np.float16)), np.asarray(
        offsets, np.int64
    )


def extract_tokens(
    tokenizer_dir: str | os.PathLike,
    data: str,
    out: str | os.PathLike,
    split: str = "train",
    size: int | None = None,
    batch_size: int = 64,
    text_encoder: str = "minilm",
    text_len: int = 16,
    text_dim: int | None = None,
    device: str = "cpu",
    limit: int | None = None,
    overwrite: bool = False,
    num_workers: int = 0,
    progress: bool = True,
) -> Path:
    """Encode dataset mixture `data` with the tokenizer in `tokenizer_dir` into the folder `out`.

    Datasets are encoded in spec order (weights are ignored here: they apply when sampling); `webdataset`
    shards stream through. `limit` caps the total item count."""
    import itertools

    from torch.utils.data import DataLoader, IterableDataset, Subset

    from ..checkpoint import from_pretrained
    from ..data import build_dataset, collate_items
    from .mixture import parse_mixture
    from .progress import ProgressBar

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} already exists and is not empty; pass --overwrite or choose another --out")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if text_len < 1:
        raise ValueError(f"--text-len must be >= 1, got {text_len}")
    tok = from_pretrained(tokenizer_dir, device=device)
    size = size or tok.config.image_size
    if size % tok.downsample:
        raise ValueError(
            f"--size {size} must be a multiple of the tokenizer's downsampling factor {tok.downsample}"
        )
    entries = parse_mixture(data)
    datasets = [build_dataset(e.name, split=split, size=size, **e.options) for e in entries]
    encoder = build_encoder(text_encoder, text_len, text_dim)
    packed, labels, captions, sources, metas = [], [], [], [], []
    sized = all(not isinstance(d, IterableDataset) for d in datasets)
    total = sum(len(d) for d in datasets) if sized else None  # type: ignore[arg-type]
    n_batches = -(-min(total, limit or total) // batch_size) if total is not None else 0
    bar = ProgressBar(max(1, n_batches), 0, batch_size, enabled=progress and sized, desc="extract", every=20)
    bits_shape: tuple[int, ...] = ()
    left = limit if limit is not None else float("inf")
    done = 0
    with torch.no_grad():
        for k, ds in enumerate(datasets):
            if left <= 0:
                break
            if isinstance(ds, IterableDataset):
                stream = itertools.islice(iter(ds), None if left == float("inf") else int(left))
                batches = (collate_items(list(chunk)) for chunk in _chunks(stream, batch_size))
            else:
                m = len(ds) if left == float("inf") else min(len(ds), int(left))
                batches = DataLoader(
                    Subset(ds, list(range(m))),
                    batch_size=batch_size,
                    collate_fn=collate_items,
                    num_workers=num_workers,
                )
            for batch in batches:
                bits = tok.encode(batch["image"].to(device))
                bits_shape = tuple(bits.shape[1:])
                packed.append(pack_bits(bits))
                labels.append(batch["label"].numpy())
                captions.extend(batch["caption"])
                metas.extend(compact_meta(m) for m in batch["meta"])
                sources.extend([k] * len(batch["caption"]))
                left -= len(batch["caption"])
                done += 1
                bar.update(done, {})
    if not packed:
        raise ValueError(f"dataset {data!r} ({split}) yielded no items")
    n = len(captions)
    uniq = sorted(set(captions))
    cap_index = {c: i for i, c in enumerate(uniq)}
    src_names = [e.name for e in entries]
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "count": n,
        "bits_shape": list(bits_shape),
        "image_size": size,
        "data": data,
        "split": split,
        "sources": src_names,
        "tokenizer": {
            "path": str(Path(tokenizer_dir).resolve()),
            "config": tok.config.to_dict(),
            "hash": state_hash(tok),
            "encoder_hash": encoder_hash(tok),
        },
        "text_encoder": None,
        "unique_captions": len(uniq),
        "skipped_files": [s for d in datasets for s in getattr(d, "skipped", [])],
        "missing_files": [s for d in datasets for s in getattr(d, "missing", [])],
    }
    with atomic_folder(out) as tmp:
        np.save(tmp / "bits.npy", np.concatenate(packed))
        np.save(tmp / "labels.npy", np.concatenate(labels).astype(np.int64))
        np.save(tmp / "caption_ids.npy", np.asarray([cap_index[c] for c in captions], np.int64))
        np.save(
            tmp / "source_ids.npy",
            np.asarray(sources, np.int16),
        )
        (tmp / "captions.json").write_text(json.dumps(uniq, ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(metas, ensure_ascii=False), encoding="utf-8")
        _finish_folder(tmp, header, encoder, uniq, text_encoder, text_len, progress)
    return out


def retext_tokens(
    source: str | os.PathLike,
    out: str | os.PathLike,
    text_encoder: str = "minilm",
    text_len: int = 16,
    text_dim: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Copy the token folder `source` to `out` with its captions re-encoded by another text encoder or
    `text_len` (the bits, labels and captions are reused: the tokenizer and the images are not needed)."""
    src = Path(source)
    store = TokenStore(src)  # validates the folder
    out = Path(out)
    if out.resolve() == src.resolve():
        raise ValueError("--out must differ from --from-tokens (the source folder is left as it is)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} already exists and is not empty; pass --overwrite or choose another --out")
    if text_len < 1:
        raise ValueError(f"--text-len must be >= 1, got {text_len}")
    encoder = build_encoder(text_encoder, text_len, text_dim)
    header = dict(store.header)
    header["text_encoder"] = None
    header["text_from"] = str(src.resolve())
    with atomic_folder(out) as tmp:
        for name in (
            "bits.npy",
            "labels.npy",
            "caption_ids.npy",
            "source_ids.npy",
            "captions.json",
            "meta.json",
        ):
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        _finish_folder(tmp, header, encoder, store.captions, text_encoder, text_len, progress)
    return out


def _finish_folder(
    tmp: Path,
    header: dict[str, Any],
    encoder: torch.nn.Module | None,
    captions: list[str],
    text_encoder: str,
    text_len: int,
    progress: bool,
) -> None:
    """Write the text states of `captions` (when there is an encoder) and the header into `tmp` (the
    caller's ``atomic_folder`` then swaps it in)."""
    if encoder is not None:
        if progress:
            print(
                f"encoding {len(captions)} unique captions with the {text_encoder} text encoder "
                f"(max {text_len} tokens)",
                file=sys.stderr,
            )
        states, offsets = encode_captions(encoder, captions)
        np.save(tmp / "text_states.npy", states)
        np.save(tmp / "text_offsets.npy", offsets)
        header["text_encoder"] = {"name": text_encoder, "max_len": text_len, "dim": int(states.shape[1])}
    (tmp / "header.json").write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")


META_KEYS = ("class_name", "colour", "char", "name", "kind", "relation", "count")
OBJECT_KEYS = ("shape", "colour", "size", "position")


def compact_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The part of a dataset item's meta that the rich captioner reads (JSON-friendly, small)."""
    out = {k: meta[k] for k in META_KEYS if k in meta}
    if "objects" in meta:
        out["objects"] = [{k: o.get(k) for k in OBJECT_KEYS} for o in meta["objects"]]
    return out


def _chunks(items, size: int):  # noqa: ANN001, ANN202
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class TokenStore:
    """A read-only token folder in memory (bits, labels) with memory-mapped text states."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        hp = self.folder / "header.json"
        if not hp.is_file():
            raise FileNotFoundError(
                f"{self.folder} is not a token folder (no header.json); create it with "
                "`bitdance extract-tokens`"
            )
        self.header = json.loads(hp.read_text(encoding="utf-8"))
        if self.header.get("format") != FORMAT:
            raise ValueError(f"{hp}: not a {FORMAT} header")
        self.bits = np.load(self.folder / "bits.npy")
        self.labels = np.load(self.folder / "labels.npy")
        self.caption_ids = np.load(self.folder / "caption_ids.npy")
        self.captions = json.loads((self.folder / "captions.json").read_text(encoding="utf-8"))
        self.shape = tuple(self.header["bits_shape"])
        self.source_ids = (
            np.load(self.folder / "source_ids.npy")
            if (self.folder / "source_ids.npy").is_file()
            else np.zeros(len(self.bits), np.int16)
        )
        mp = self.folder / "meta.json"
        self.meta: list[dict[str, Any]] | None = (
            json.loads(mp.read_text(encoding="utf-8")) if mp.is_file() else None
        )
        self.text = self.header.get("text_encoder")
        if len(self.bits) == 0:
            raise ValueError(f"{self.folder} holds no tokens")
        if self.text:
            self.text_states = np.load(self.folder / "text_states.npy", mmap_mode="r")
            self.text_offsets = np.load(self.folder / "text_offsets.npy")

    def __len__(self) -> int:
        return len(self.bits)

    def batch_bits(self, idx: list[int]) -> torch.Tensor:
        return unpack_bits(self.bits[np.asarray(idx)], self.shape)  # type: ignore[arg-type]

    def batch_labels(self, idx: list[int]) -> torch.Tensor:
        return torch.from_numpy(self.labels[np.asarray(idx)].astype(np.int64))

    def caption_condition(self, caption_ids: list[int], text_len: int) -> TextCondition:
        """Cached states of the given unique captions, padded to (B, text_len, D)."""
        if not self.text:
            raise ValueError(
                f"{self.folder} has no cached text states; re-extract with --text-encoder minilm"
            )
        d = self.text_states.shape[1]
        states = torch.zeros(len(caption_ids), text_len, d)
        mask = torch.zeros(len(caption_ids), text_len, dtype=torch.bool)
        for i, u in enumerate(caption_ids):
            lo, hi = int(self.text_offsets[u]), int(self.text_offsets[u + 1])
            k = min(hi - lo, text_len)
            states[i, :k] = torch.from_numpy(np.asarray(self.text_states[lo : lo + k], dtype=np.float32))
            mask[i, :k] = True
        return TextCondition(states, mask)

    def batch_text(self, idx: list[int], text_len: int) -> TextCondition:
        return self.caption_condition(self.caption_ids[np.asarray(idx)].tolist(), text_len)


def extract_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitdance extract-tokens",
        description="Encode a dataset with a trained tokenizer into packed bits "
        "(+ captions, labels, text states).",
        epilog="example: bitdance extract-tokens --tokenizer runs/tok/export "
        "--data fashion_mnist:tint=1,shapes,emoji "
        "--out runs/tokens",
    )
    p.add_argument("--config", help="YAML/JSON file with any of these options (flags override it)")
    p.add_argument(
        "--tokenizer", help="exported tokenizer folder (config.json + model.safetensors) (required)"
    )
    p.add_argument("--data", help="dataset mixture spec, as for train-tokenizer (required)")
    p.add_argument(
        "--from-tokens",
        help="re-encode only the captions of this token folder (new --text-len / --text-encoder); "
        "its bits are reused, so --tokenizer and --data are not needed",
    )
    p.add_argument("--out", help="output token folder (required)")
    p.add_argument(
        "--split", default="train", choices=["train", "test"], help="dataset split (default train)"
    )
    p.add_argument("--size", type=int, help="image size in px (default: the tokenizer's image_size)")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size (default 64)")
    p.add_argument(
        "--text-encoder",
        default="minilm",
        choices=["minilm", "hash", "none"],
        help="cache prompt states with this encoder (default minilm; none for class-only models)",
    )
    p.add_argument(
        "--generator-preset",
        default="mini",
        help="generator preset the tokens are for; sets --text-len/--text-dim defaults (default mini)",
    )
    p.add_argument("--text-len", type=int, help="max text tokens (default: the generator preset's text_len)")
    p.add_argument(
        "--text-dim", type=int, help="hash encoder state width (default: the generator preset's text_dim)"
    )
    p.add_argument("--limit", type=int, help="encode only the first N items (smoke runs)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    return p


def extract_main(argv: list[str]) -> int:
    from .options import parse_with_config, require_options

    args = parse_with_config(extract_parser(), argv)
    from ..core.configs import get_preset

    gen = get_preset("generator", args.generator_preset)
    if args.text_len is None:
        args.text_len = gen.text_len
    if args.text_dim is None and args.text_encoder == "hash":
        args.text_dim = gen.text_dim
    common: dict[str, Any] = {
        "text_encoder": args.text_encoder,
        "text_len": args.text_len,
        "text_dim": args.text_dim,
        "overwrite": args.overwrite,
        "progress": not args.no_progress,
    }
    if args.from_tokens:
        require_options(args, "out")
        given = [f"--{n}" for n in ("tokenizer", "data") if getattr(args, n)]
        if given:
            raise ValueError(f"--from-tokens reuses that folder's bits; drop {' and '.join(given)}")
        out = retext_tokens(args.from_tokens, args.out, **common)
    else:
        require_options(args, "tokenizer", "data", "out")
        out = extract_tokens(
            args.tokenizer,
            args.data,
            args.out,
            split=args.split,
            size=args.size,
            batch_size=args.batch_size,
            device=args.device,
            limit=args.limit,
            num_workers=args.num_workers,
            **common,
        )
    store = TokenStore(out)
    print(
        f"wrote {len(store)} token grids {store.shape} "
        f"({store.header['unique_captions']} unique captions) to {out}",
        file=sys.stderr,
    )
    return 0
