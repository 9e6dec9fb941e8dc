"""Which tokenizers may decode a token folder: the one that made it, or one with the same encoder.

A decoder-only fine-tune (`train-tokenizer --freeze-encoder`) keeps every encoder weight bit-identical, so
tokens extracted with the original tokenizer are exactly the codes the fine-tuned one would produce: the
generator trainer may sample and export with it (`bitdance train --tokenizer PATH`). Any other tokenizer
would decode codes it never made, so it is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def state_hash(tok: torch.nn.Module, skip_prefix: str | None = None) -> str:
    """12-hex-digit hash of a module's tensors (names and values), leaving out names under `skip_prefix`."""
    h = hashlib.sha256()
    for k, v in tok.state_dict().items():
        if skip_prefix is not None and k.startswith(skip_prefix):
            continue
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def encoder_hash(tok: torch.nn.Module) -> str:
    """Hash of every tensor outside the decoder: equal hashes, equal codes."""
    return state_hash(tok, skip_prefix="decoder.")


def check_tokenizer_for_tokens(header: dict, folder: str, path: str) -> str | None:
    """Raise ValueError unless the tokenizer at `path` encodes like the one that made the tokens.

    header: a token folder's header.json (`folder` names it in messages). Returns a warning when the match
    cannot be verified (the original tokenizer is gone and the folder predates encoder hashes), else None.
    """
    from ..checkpoint import from_pretrained

    if not Path(path).is_dir():
        raise ValueError(f"--tokenizer {path}: not a folder; give an exported tokenizer folder")
    try:
        tok = from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - report any unreadable folder the same way
        raise ValueError(f"--tokenizer {path}: cannot load a tokenizer there ({e})") from None
    if not hasattr(tok, "decode"):
        raise ValueError(f"--tokenizer {path}: holds a {type(tok).__name__}, not a tokenizer")
    made = header.get("tokenizer", {})
    cfg = getattr(tok, "config", None)
    want_bits = header.get("bits_shape", [None])[0]
    got_bits = getattr(cfg, "z_channels", None)
    if want_bits is not None and got_bits is not None and int(got_bits) != int(want_bits):
        raise ValueError(
            f"--tokenizer {path} makes {got_bits}-bit tokens but {folder} holds {want_bits}-bit tokens"
        )
    have = encoder_hash(tok)
    want = made.get("encoder_hash")
    if want is None:
        original = made.get("path", "")
        if not original or not Path(original).is_dir():
            return (
                f"cannot verify that --tokenizer {path} has the encoder that made {folder} (the original "
                f"tokenizer {original or '?'} is gone and the folder predates encoder hashes); use it only "
                "if it is a decoder-only fine-tune of that tokenizer"
            )
        orig = from_pretrained(original)
        if made.get("hash") and state_hash(orig) != made["hash"]:
            return (
                f"cannot verify --tokenizer {path}: the tokenizer folder that made {folder} ({original}) "
                "has changed since; use it only if it is a decoder-only fine-tune of the original"
            )
        want = encoder_hash(orig)
    if have != want:
        raise ValueError(
            f"--tokenizer {path} has a different encoder from the tokenizer that made {folder} "
            f"({made.get('path', '?')}), so it would decode codes it never made; give a decoder-only "
            "fine-tune of that tokenizer (train-tokenizer --freeze-encoder) or re-extract the tokens with it"
        )
    return None
