"""Add res blocks to a trained decoder without changing what it computes.

Each new block is a ``ResBlock(c, c)`` appended to a decoder level (and to the decoder's middle) whose
last convolution starts at zero, so ``skip + h`` is exactly ``skip``: the deepened tokenizer decodes
every code to the same image as before, the encoder (hence every token) is untouched, and a decoder-only
fine-tune (``train-tokenizer --init T --freeze-encoder --decoder-res-blocks N``) starts from the trained
decoder's quality with more capacity to spend.
"""

from __future__ import annotations

import dataclasses

import torch

from .autoencoder import BinaryAutoencoder


def deepen_decoder(model: BinaryAutoencoder, blocks: int) -> BinaryAutoencoder:
    """A copy of ``model`` with ``blocks`` res blocks per decoder level; outputs are unchanged.

    ``blocks`` must be at least the decoder's current count (equal = a plain copy). The copy is on the
    same device and in train/eval mode like ``model``.
    """
    cfg = model.config
    have = cfg.decoder_blocks
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < have:
        raise ValueError(
            f"decoder res blocks can only grow: the decoder has {have} per level, got {blocks!r}; "
            f"use an integer >= {have}"
        )
    new_cfg = dataclasses.replace(cfg, decoder_res_blocks=None if blocks == cfg.num_res_blocks else blocks)
    device = next(model.parameters()).device
    deeper = BinaryAutoencoder(new_cfg).to(device)
    new_blocks = {name: m for name, m in deeper.decoder.named_modules() if _is_new_block(name, have)}
    expected = {f"decoder.{name}.{k}" for name, m in new_blocks.items() for k in m.state_dict()}
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) != expected:
        raise RuntimeError(f"deepening mismatch: missing {sorted(missing)}, unexpected {unexpected}")
    with torch.no_grad():
        for block in new_blocks.values():
            block.conv2.weight.zero_()  # the residual branch adds exactly 0 until trained
    return deeper.train(model.training)


def _is_new_block(name: str, have: int) -> bool:
    """True for 'mid_block.j' and 'up.i.block.j' with j >= have (decoder-relative module names)."""
    parts = name.split(".")
    if len(parts) == 2 and parts[0] == "mid_block":
        return int(parts[1]) >= have
    if len(parts) == 4 and parts[0] == "up" and parts[2] == "block":
        return int(parts[3]) >= have
    return False
