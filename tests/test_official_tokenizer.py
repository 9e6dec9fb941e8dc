"""Parity of the binary tokenizer with the official one (fixture files `ae.safetensors`, `ae_io.safetensors`).

Every size is read from `ae_config.json` and the recorded tensor shapes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from bitdance.convert.official_checkpoints import ConversionReport, load_official_tokenizer
from bitdance.convert.parity import IOSet, fixture_dir, single_thread
from bitdance.generator.patches import to_sequence
from bitdance.tokenizer.autoencoder import depth_to_space
from bitdance.tokenizer.quantizer import entropy_losses, group_indices

pytestmark = pytest.mark.official


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_thread():
        yield


FIX = fixture_dir(Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "official")
if not FIX.is_dir():
    pytest.skip(
        f"official parity fixtures not found at {FIX} (set BITDANCE_OFFICIAL_FIXTURES)",
        allow_module_level=True,
    )

# every tensor name a set may record, and the test that checks or consumes it
HANDLED = [
    r"x|h|bits|decoded|decode_rng_noise",  # test_encode_decode
    r"vt_in_img\d+|vt_tokens",  # test_vt_forward_patch_order
    r"gfq_indices|gfq_entropy_(per_sample|codebook|loss)|gfq_commitment",  # test_gfq_terms
    r"d2s_in|d2s_out",  # test_depth_to_space
]


def _need(*names: str) -> None:
    missing = [n for n in names if not (FIX / n).is_file()]
    if missing:
        pytest.skip(f"fixture set lacks {missing}")


@pytest.fixture(scope="module")
def io() -> IOSet:
    _need("ae_io.safetensors")
    return IOSet(FIX / "ae_io.safetensors")


@pytest.fixture(scope="module")
def ae():
    _need("ae.safetensors", "ae_config.json")
    report = ConversionReport()
    tok = load_official_tokenizer(FIX / "ae.safetensors", FIX / "ae_config.json", report)
    return tok, report


def test_loads_strictly_with_full_coverage(ae):
    tok, report = ae
    cov = report.coverage[0]
    assert cov.mapped == cov.total == len(tok.state_dict())
    assert f"mapped {cov.total} of {cov.total}" in str(report)
    assert report.config_sources["tokenizer"].endswith("ae_config.json")
    cfg = json.loads((FIX / "ae_config.json").read_text())
    assert tok.config.z_channels == cfg["ddconfig"]["z_channels"]
    assert tok.config.gan_decoder == bool(cfg.get("gan_decoder", False))


def test_encode_decode(ae, io):
    tok, _ = ae
    with torch.no_grad():
        h = tok.encode_logits(io["x"])
        io.check("h", h, "net")
        bits = tok.encode(io["x"])
        io.check("bits", bits, "exact")
        if tok.config.gan_decoder and not io.has("decode_rng_noise"):
            pytest.skip("noise-injected decoder but the set recorded no decode_rng_noise")
        noise = io["decode_rng_noise"] if io.has("decode_rng_noise") else None
        io.check("decoded", tok.decode(io["bits"], noise=noise), "net")


def test_vt_forward_patch_order(ae, io):
    """Tokens of several single images, each flattened in patch order, concatenated."""
    tok, _ = ae
    if not io.has("vt_tokens") or not (FIX / "vision_head_config.json").is_file():
        pytest.skip("no vt_* tensors, or no vision_head_config.json to read the patch side from")
    ps = math.isqrt(json.loads((FIX / "vision_head_config.json").read_text())["parallel_num"])
    names = sorted((k for k, _ in io.matching(r"vt_in_img\d+")), key=lambda k: int(re.sub(r"\D", "", k)))
    with torch.no_grad():
        seqs = [to_sequence(tok.encode(io[n]), ps * ps)[0] for n in names]
    io.check("vt_tokens", torch.cat(seqs), "exact")


def test_gfq_terms(ae, io):
    """Group codes (little-endian) and the group-wise LFQ entropy / commitment terms on `h`."""
    tok, _ = ae
    groups = io["gfq_indices"].shape[0]
    z = io["h"].shape[1]
    io.check("gfq_indices", group_indices(io["bits"], z // groups), "exact")
    losses = entropy_losses(io["h"], group_size=z // groups, temperature=tok.config.entropy_temperature)
    io.check("gfq_entropy_per_sample", losses.per_sample_entropy, "net")
    io.check("gfq_entropy_codebook", losses.codebook_entropy, "net")
    io.check("gfq_entropy_loss", losses.entropy, "net")
    io.check("gfq_commitment", losses.commitment, "net")


def test_depth_to_space(io):
    block = io["d2s_out"].shape[2] // io["d2s_in"].shape[2]
    io.check("d2s_out", depth_to_space(io["d2s_in"], block), "exact")


def test_every_recorded_tensor_is_handled(io):
    unknown = [k for k in io.tensors if not any(re.fullmatch(p, k) for p in HANDLED)]
    assert not unknown, f"recorded tensors no test checks: {unknown}"
