"""Parity of converted official ImageNet checkpoints (1x MLP head and next-patch attention head).

Each set `<name>.pt` + `<name>_args.json` + `<name>_io.safetensors` is converted with the library
converter; every size comes from the args JSON and the recorded tensor shapes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from bitdance.convert.official_checkpoints import load_official_imagenet
from bitdance.convert.parity import (
    IOSet,
    check_head_loss,
    check_head_net,
    check_head_sampler,
    check_optional,
    fixture_dir,
    single_thread,
)
from bitdance.core.random import ReplaySource
from bitdance.generator.patches import from_sequence, order_for, to_sequence, token_xy
from bitdance.generator.transformer import attention_groups, group_mask
from bitdance.sampling.decode import SamplingOptions, generate_bits
from bitdance.sampling.solvers import guidance_at

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

SETS = ["c2i_1x", "c2i_parallel"]
HANDLED = [
    r"rope_freqs_cis|rope_pos_2d|attn_mask|patch_perm|unpatch_check",  # test_positions_and_order
    r"fwd_.+",  # test_teacher_forced_forward
    r"train_.+",  # test_train_mode_loss
    r"headnet_.+|headloss_.+",  # test_head_network_and_loss
    r"emstep_.+|eulerfinal_.+|sample_(no)?cfg_.+",  # test_head_sampler
    r"ar_.+|decode_rng_noise",  # test_autoregressive_sample
]
_CACHE: dict[str, tuple] = {}


def _load(name: str):
    if name not in _CACHE:
        files = [f"{name}.pt", f"{name}_args.json", f"{name}_io.safetensors"]
        missing = [f for f in files if not (FIX / f).is_file()]
        if missing:
            pytest.skip(f"fixture set lacks {missing}")
        conv = load_official_imagenet(FIX / f"{name}.pt", config=FIX / f"{name}_args.json")
        _CACHE[name] = (conv, IOSet(FIX / f"{name}_io.safetensors"))
    return _CACHE[name]


@pytest.fixture(params=SETS)
def case(request):
    return _load(request.param)


def test_conversion_report(case):
    conv, _ = case
    cov = conv.report.coverage[0]
    assert cov.mapped == cov.total
    assert cov.per_component["generator"] == len(conv.generator.state_dict())
    assert cov.per_component["tokenizer"] == len(conv.tokenizer.state_dict())
    assert "args JSON" in conv.report.config_sources["generator"]
    assert conv.report.config_sources["tokenizer"] == "args vae_substitute"


def test_positions_and_order(case):
    conv, io = case
    gen = conv.generator
    cfg = gen.config
    p, grid = cfg.parallel_num, cfg.grid_size
    io.check("rope_freqs_cis", gen.rope_for(grid, p, cfg.cls_token_num + p - 1), "net")
    io.check("rope_pos_2d", token_xy(grid, torch.arange(grid[0] * grid[1])), "exact")
    if io.has("patch_perm"):
        io.check("patch_perm", order_for(grid, p), "exact")
    if io.has("unpatch_check"):
        seq = order_for(grid, p).float().view(1, -1, 1)
        io.check("unpatch_check", from_sequence(seq, grid, p).view(grid).long(), "exact")
    if io.has("attn_mask"):
        groups = attention_groups(cfg.cls_token_num, grid[0] * grid[1], p)
        allowed = group_mask(groups, groups)
        io.check("attn_mask", torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf")), "exact")


def _capture(gen):
    seen: dict[str, list] = {
        "seq": [],
        "layers": [],
        "net_in": [],
        "net_out": [],
        "proj_in": [],
        "labels": [],
    }
    hooks = [
        gen.emb_norm.register_forward_pre_hook(lambda m, a: seen["seq"].append(a[0])),
        gen.head.net.register_forward_pre_hook(lambda m, a: seen["net_in"].append(a)),
        gen.head.net.register_forward_hook(lambda m, a, o: seen["net_out"].append(o)),
        gen.proj_in.register_forward_pre_hook(lambda m, a: seen["proj_in"].append(a[0])),
        gen.cls_embedding.register_forward_pre_hook(lambda m, a: seen["labels"].append(a[0])),
    ]
    seen["layers"] = [[] for _ in gen.layers]
    for i, layer in enumerate(gen.layers):
        hooks.append(layer.register_forward_hook(lambda m, a, o, i=i: seen["layers"][i].append(o)))
    return seen, hooks


def test_teacher_forced_forward(case):
    conv, io = case
    gen, tok = conv.generator, conv.tokenizer
    cfg = gen.config
    p, grid = cfg.parallel_num, cfg.grid_size
    n = grid[0] * grid[1]
    with torch.no_grad():
        check_optional(io, "fwd_vae_h", lambda: tok.encode_logits(io["fwd_images"]))
        bits = tok.encode(io["fwd_images"])
        io.check("fwd_latent_bits", bits, "exact")
        seq = to_sequence(bits, p)
        check_optional(io, "fwd_proj_in_input", lambda: seq[:, : n - p], "exact")
        seen, hooks = _capture(gen)
        try:
            hidden = gen.teacher_forced_hidden(io["fwd_class_id"], seq, grid, p)
            loss = gen.loss(
                bits, io["fwd_class_id"], ReplaySource([io["fwd_rng_t_normal"], io["fwd_rng_eps"]])
            )
        finally:
            for h in hooks:
                h.remove()
        io.check("fwd_normed_hidden", hidden, "net")
        check_optional(io, "fwd_seq_embeds", lambda: seen["seq"][0])
        for name, m in io.matching(r"fwd_layer(\d+)_out"):
            io.check(name, seen["layers"][int(m.group(1))][0], "net")
        cond = hidden + gen.head_positions(grid, order_for(grid, p))[None]
        check_optional(io, "fwd_head_cond", lambda: cond.reshape(-1, p, cfg.dim))
        check_optional(io, "fwd_head_target", lambda: seq.reshape(-1, p, cfg.latent_bits), "exact")
        z, t, _ = seen["net_in"][-1]
        check_optional(io, "fwd_head_net_t", lambda: t)
        check_optional(io, "fwd_head_net_xpred", lambda: seen["net_out"][-1])
        io.check("fwd_loss", loss, "net")


def test_train_mode_loss(case):
    conv, io = case
    gen = conv.generator
    draws = [
        io[k]
        for k in (
            "train_rng_flip_u1",
            "train_rng_flip_u2",
            "train_rng_label_drop_u",
            "train_rng_t_normal",
            "train_rng_eps",
        )
    ]
    seen, hooks = _capture(gen)
    gen.train()
    try:
        with torch.no_grad():
            loss = gen.loss(io["fwd_latent_bits"], io["fwd_class_id"], ReplaySource(draws))
    finally:
        gen.eval()
        for h in hooks:
            h.remove()
    io.check("train_loss", loss, "net")
    check_optional(io, "train_proj_in_input", lambda: seen["proj_in"][0], "exact")
    check_optional(io, "train_class_id_after_drop", lambda: seen["labels"][0], "exact")


def test_head_network_and_loss(case):
    conv, io = case
    check_head_net(io, conv.generator.head.net)
    check_head_loss(io, conv.generator.head)


def test_head_sampler(case):
    conv, io = case
    check_head_sampler(io, conv.generator.head.net, conv.generator.config.time_shift)


def test_autoregressive_sample(case):
    conv, io = case
    gen, tok = conv.generator, conv.tokenizer
    cfg = gen.config
    p = cfg.parallel_num
    k_steps = cfg.num_tokens // p
    w, steps = io.scalar("ar_cfg_scale"), int(io["ar_head_steps"])
    io.check(
        "ar_step_cfg", torch.tensor([guidance_at(i, k_steps, w, "linear") for i in range(k_steps)]), "net"
    )
    hidden: list[torch.Tensor] = []
    hook = gen.register_forward_hook(lambda m, a, o: hidden.append(o[:, -p:]))
    opts = SamplingOptions(
        parallel_num=p,
        num_sampling_steps=steps,
        guidance_scale=w,
        guidance_schedule="linear",
        independent_unguided_streams=True,
    )
    try:
        bits = generate_bits(gen, io["ar_class_id"], opts, ReplaySource(io.numbered_draws("ar_rng")))
    finally:
        hook.remove()
    check_optional(io, "ar_step_hidden", lambda: torch.stack(hidden))
    io.check("ar_latent", bits, "exact")
    noise = io["decode_rng_noise"] if io.has("decode_rng_noise") else None
    if tok.config.gan_decoder and noise is None:
        pytest.skip("noise-injected decoder but the set recorded no decode_rng_noise")
    with torch.no_grad():
        io.check("ar_images", tok.decode(io["ar_latent"], noise=noise), "image")


def test_ema_weights_are_preferred(case):
    """'model' and 'ema' differ (final norm); the converter must pick 'ema' by default."""
    conv, io = case
    name = io.name
    other = load_official_imagenet(FIX / f"{name}.pt", config=FIX / f"{name}_args.json", weights="model")
    a, b = conv.generator.norm.weight, other.generator.norm.weight
    if torch.equal(a, b):
        pytest.skip("this set's 'model' and 'ema' weights are identical")
    cfg = conv.generator.config
    seq = to_sequence(io["fwd_latent_bits"], cfg.parallel_num)
    with torch.no_grad():
        wrong = other.generator.teacher_forced_hidden(
            io["fwd_class_id"], seq, cfg.grid_size, cfg.parallel_num
        )
    assert (wrong - io["fwd_normed_hidden"]).abs().max() > 1e-3


@pytest.mark.parametrize("name", SETS)
def test_every_recorded_tensor_is_handled(name):
    _, io = _load(name)
    unknown = [k for k in io.tensors if not any(re.fullmatch(p, k) for p in HANDLED)]
    assert not unknown, f"recorded tensors no test checks: {unknown}"
