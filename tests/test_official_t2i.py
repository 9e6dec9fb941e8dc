"""Official text-to-image release: head / projector / positions / decode parity, and the full decode loop.

Parity tensors come from `t2i_io.safetensors`. The end-to-end tests build an official-layout folder in a
tmp dir: the fixture's `ae`, `vision_head` and `projector` files plus a TINY RANDOM Qwen3 and a small
word-level text tokenizer with the BitDance special tokens.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from bitdance.convert.memory import Int8WeightOnlyLinear, ModelOffloader
from bitdance.convert.parity import (
    IOSet,
    check_head_loss,
    check_head_net,
    check_head_sampler,
    fixture_dir,
    single_thread,
)
from bitdance.convert.t2i_components import (
    COND_TEMPLATE,
    OFFICIAL_FILES,
    UNCOND_PROMPT,
    convert_t2i_folder,
    image_positions,
    load_t2i_components,
    query_token,
    res_token,
    sincos_table,
)
from bitdance.convert.t2i_runner import OfficialT2IPipeline
from bitdance.core.random import ReplaySource
from bitdance.generator.patches import from_sequence, patch_order, to_sequence
from bitdance.tokenizer.quantizer import binarize

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

HANDLED = [
    r"headnet_(long_)?(z|t|cond|xpred)",  # test_head_network_and_loss
    r"headloss_.+",  # test_head_network_and_loss
    r"emstep_.+|eulerfinal_.+|sample_\w+",  # test_head_sampler
    r"projector_(in|out)",  # test_projector
    r"pe_.+|perm_.+",  # test_positions_and_orders
    r"genstep_.+",  # test_generation_step
    r"decode_.+",  # test_decode
]


def _need(*names: str) -> None:
    missing = [n for n in names if not (FIX / n).is_file()]
    if missing:
        pytest.skip(f"fixture set lacks {missing}")


@pytest.fixture(scope="module")
def comps():
    _need(*OFFICIAL_FILES)
    return load_t2i_components(FIX)


@pytest.fixture(scope="module")
def io() -> IOSet:
    _need("t2i_io.safetensors")
    return IOSet(FIX / "t2i_io.safetensors")


def _grid(io: IOSet) -> tuple[int, int]:
    if not io.has("decode_latent"):
        pytest.skip("the set has no decode_latent to read the latent grid from")
    return tuple(io["decode_latent"].shape[-2:])


def test_components_load_with_full_coverage(comps):
    for cov in comps.report.coverage:
        assert cov.mapped == cov.total
    cfg = json.loads((FIX / "vision_head_config.json").read_text())
    assert comps.parallel_num == cfg["parallel_num"]
    assert comps.head.net.res_blocks[0].attn.n_head == cfg["ch_latent"] // 128
    assert comps.head.diff_batch_mul == 1  # the T2I head never tiles rows


def test_head_network_and_loss(comps, io):
    check_head_net(io, comps.head.net, "headnet")
    if io.has("headnet_long_z"):  # > 32 tokens: the official code switches to flash-attn there
        check_head_net(io, comps.head.net, "headnet_long")
    check_head_loss(io, comps.head)


def test_head_sampler(comps, io):
    check_head_sampler(io, comps.head.net, comps.head_config.time_shift)


def test_projector(comps, io):
    with torch.no_grad():
        io.check("projector_out", comps.projector(io["projector_in"]), "net")


def test_positions_and_orders(comps, io):
    grid = _grid(io)
    ps = math.isqrt(comps.parallel_num)
    if io.has("pe_1d_table_head"):
        rows = io["pe_1d_table_head"].shape[0]
        io.check("pe_1d_table_head", sincos_table(rows, comps.hidden // 2), "net")
    io.check("pe_2d_ps1", image_positions(grid, 1, comps.hidden), "net")
    io.check("pe_2d_psP", image_positions(grid, ps, comps.hidden), "net")
    for name, m in io.matching(r"pe_2d_(\d+)x(\d+)_p(\d+)"):
        h, w, p = (int(v) for v in m.groups())
        io.check(name, image_positions((h, w), p, comps.hidden), "net")
    for name, m in io.matching(r"perm_(\d+)x(\d+)_p(\d+)_(patch_from_raster|raster_from_patch)"):
        perm = patch_order(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        io.check(name, perm if m.group(4) == "patch_from_raster" else torch.argsort(perm), "exact")
    if io.has("perm_grid_psP_patch_from_raster"):
        io.check("perm_grid_psP_patch_from_raster", patch_order(grid[0], grid[1], ps), "exact")


def test_generation_step(comps, io):
    """One AR step of the decode loop: fused head condition, head sample, tokens, next LLM inputs."""
    pipe = OfficialT2IPipeline(comps)
    grid, p = _grid(io), comps.parallel_num
    k = int(io["genstep_step"])
    pe_k = pipe.positions(grid)[k * p : (k + 1) * p]
    h_c, h_u = io["genstep_hidden_c"], io["genstep_hidden_u"]
    io.check("genstep_h_fused", torch.cat([h_c, h_u]) + pe_k, "net")
    draws = ReplaySource(io.stacked_draws("genstep_rng"))
    with torch.no_grad():
        x = pipe.head_sample(h_c, h_u, pe_k, int(io["genstep_steps"]), io.scalar("genstep_cfg"), draws)
        pred = torch.cat([x, x])
        io.check("genstep_pred", pred, "sampler")
        io.check("genstep_tokens", binarize(pred), "exact")
        io.check("genstep_next_embeds", pipe.next_embeds(binarize(pred), pe_k), "net")


def test_decode(comps, io):
    pipe = OfficialT2IPipeline(comps)
    grid = _grid(io)
    latent = from_sequence(io["decode_tokens"], grid, comps.parallel_num)
    io.check("decode_latent", latent, "exact")
    noise = io["decode_rng_noise"] if io.has("decode_rng_noise") else None
    if comps.tokenizer.config.gan_decoder and noise is None:
        pytest.skip("noise-injected decoder but the set recorded no decode_rng_noise")
    io.check("decode_image", pipe.decode(latent, noise=noise), "net")


def test_every_recorded_tensor_is_handled(io):
    unknown = [k for k in io.tensors if not any(re.fullmatch(p, k) for p in HANDLED)]
    assert not unknown, f"recorded tensors no test checks: {unknown}"


# ----------------------------------------------------------------------------- tiny end-to-end

WORDS = ["a", "red", "cat", "on", "the", "mat", "blue", "dog", "user", "assistant"]


def _write_official_folder(dst: Path, hidden: int, parallel_num: int) -> Path:
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    for f in OFFICIAL_FILES:
        shutil.copy(FIX / f, dst / f)
    special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    special += [res_token(k) for k in range(1, 65)] + [query_token(k) for k in range(1, parallel_num)]
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": special})
    fast.save_pretrained(str(dst))
    cfg = transformers.Qwen3Config(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_width=hidden // 2,
        vocab_size=len(fast),
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    transformers.Qwen3ForCausalLM(cfg).save_pretrained(str(dst))
    return dst


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, comps):
    return _write_official_folder(tmp_path_factory.mktemp("t2i_official"), comps.hidden, comps.parallel_num)


@pytest.fixture(scope="module")
def size(comps, io):
    """An image size whose latent grid is the fixture's (non-square) decode grid."""
    gh, gw = _grid(io)
    f = comps.tokenizer.downsample
    return gh * f, gw * f


@pytest.fixture(scope="module")
def tiny_pipe(tiny_folder, size):
    return OfficialT2IPipeline.from_folder(tiny_folder, image_sizes=(size,))


def test_end_to_end_generate_is_deterministic(tiny_pipe, size):
    h, w = size
    kw = {"num_sampling_steps": 2, "guidance_scale": 3.0, "num_images": 2}
    a = tiny_pipe.sample_bits("a red cat", h, w, seed=7, **kw)
    b = tiny_pipe.sample_bits("a red cat", h, w, seed=7, **kw)
    c = tiny_pipe.sample_bits("a red cat", h, w, seed=8, **kw)
    f = tiny_pipe.components.tokenizer.downsample
    assert a.shape == (2, tiny_pipe.components.head_config.bits, h // f, w // f)
    assert set(a.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c)
    images = tiny_pipe.generate(
        "a red cat", h, w, num_sampling_steps=2, guidance_scale=3.0, num_images=2, seed=7
    )
    assert len(images) == 2 and images[0].size == (w, h) and images[0].mode == "RGB"
    with pytest.raises(ValueError, match="unsupported size"):
        tiny_pipe.sample_bits("a red cat", h + 16, w)


def test_prompt_layout(tiny_pipe, size):
    tok = tiny_pipe.text_tokenizer
    grid = (
        size[0] // tiny_pipe.components.tokenizer.downsample,
        size[1] // tiny_pipe.components.tokenizer.downsample,
    )
    cond, uncond = tiny_pipe.prompt_ids("a red cat", grid)
    p = tiny_pipe.components.parallel_num
    tail = ["<|vision_start|>", res_token(grid[0]), res_token(grid[1])] + [
        query_token(k) for k in range(1, p)
    ]
    assert tok.convert_ids_to_tokens(cond[-len(tail) :]) == tail
    assert (
        cond[: -len(tail)]
        == tok(COND_TEMPLATE.format(prompt="a red cat"), add_special_tokens=False)["input_ids"]
    )
    assert uncond[: -len(tail)] == tok(UNCOND_PROMPT, add_special_tokens=False)["input_ids"]


def test_cached_decode_equals_full_forward(tiny_pipe, size):
    """Hidden states given to the head during KV-cached decoding == one block-causal full forward."""
    conds: list[torch.Tensor] = []
    hook = tiny_pipe.components.head.net.register_forward_pre_hook(lambda m, a: conds.append(a[2]))
    steps, p = 2, tiny_pipe.components.parallel_num
    try:
        bits = tiny_pipe.sample_bits(
            "a blue dog", *size, num_sampling_steps=steps, guidance_scale=2.0, seed=3
        )
    finally:
        hook.remove()
    f = tiny_pipe.components.tokenizer.downsample
    grid = (size[0] // f, size[1] // f)
    pe = tiny_pipe.positions(grid)
    seq = to_sequence(bits, p)
    ids, _ = tiny_pipe.prompt_ids("a blue dog", grid)
    llm = tiny_pipe.llm
    with torch.no_grad():
        parts = [llm.get_input_embeddings()(torch.tensor([ids]))]
        k_total = seq.shape[1] // p
        parts += [
            tiny_pipe.next_embeds(seq[:, k * p : (k + 1) * p], pe[k * p : (k + 1) * p])
            for k in range(k_total - 1)
        ]
        emb = torch.cat(parts, dim=1)
        length, start = emb.shape[1], len(ids) - p
        pos = torch.arange(length)
        group = torch.where(pos < start, pos - start, (pos - start) // p)
        mask = (group[None, :] <= group[:, None])[None, None]
        full = llm(inputs_embeds=emb, attention_mask=mask).last_hidden_state
    for k in range(k_total):
        want = full[:, start + k * p : start + (k + 1) * p] + pe[k * p : (k + 1) * p]
        got = conds[k * (steps + 1)][:1]  # cond rows come first
        assert (got - want).abs().max() < 1e-4


def test_converted_folder_gives_identical_bits(tiny_folder, tiny_pipe, size, tmp_path):
    report = convert_t2i_folder(tiny_folder, tmp_path / "conv", llm="symlink", image_sizes=(size,))
    assert all(c.mapped == c.total for c in report.coverage)
    conv = OfficialT2IPipeline.from_folder(tmp_path / "conv")
    kw = {"num_sampling_steps": 2, "guidance_scale": 2.5, "seed": 11}
    ref = tiny_pipe.sample_bits("a cat", *size, **kw)
    assert torch.equal(conv.sample_bits("a cat", *size, **kw), ref)
    # the CLI (format auto-detected; the LLM files copied this time)
    from bitdance.convert import convert_main

    assert convert_main([str(tiny_folder), str(tmp_path / "cli"), "--llm", "copy", "-q"]) == 0
    assert not (tmp_path / "cli" / "llm" / "config.json").is_symlink()
    cli = OfficialT2IPipeline.from_folder(tmp_path / "cli", image_sizes=(size,))
    assert torch.equal(cli.sample_bits("a cat", *size, **kw), ref)


def test_memory_options_run(tiny_folder, tiny_pipe, size):
    kw = {"num_sampling_steps": 2, "guidance_scale": 2.0, "seed": 5}
    off = OfficialT2IPipeline.from_folder(tiny_folder, image_sizes=(size,), offload=True)
    assert torch.equal(off.sample_bits("a mat", *size, **kw), tiny_pipe.sample_bits("a mat", *size, **kw))
    q = OfficialT2IPipeline.from_folder(tiny_folder, image_sizes=(size,), int8=True, int8_backend="bitdance")
    assert any(isinstance(m, Int8WeightOnlyLinear) for m in q.llm.modules())
    bits = q.sample_bits("a mat", *size, **kw)
    assert bits.shape == tiny_pipe.sample_bits("a mat", *size, **kw).shape
    with pytest.raises(ValueError, match="float32"):
        OfficialT2IPipeline.from_folder(tiny_folder, dtype=torch.bfloat16)


def test_int8_torchao_backend(tiny_folder, size):
    from bitdance.convert.memory import _torchao_available

    if not _torchao_available():
        pytest.skip("torchao is not installed (the built-in int8 backend is tested above)")
    q = OfficialT2IPipeline.from_folder(tiny_folder, image_sizes=(size,), int8=True, int8_backend="torchao")
    bits = q.sample_bits("a mat", *size, num_sampling_steps=2, guidance_scale=2.0, seed=5)
    assert set(bits.unique().tolist()) <= {-1.0, 1.0}


def test_int8_linear_and_offloader():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32)
    q = Int8WeightOnlyLinear.from_linear(lin)
    x = torch.randn(5, 64)
    ref = lin(x)
    assert q.qweight.dtype == torch.int8
    assert ((q(x) - ref).abs().max() / ref.abs().max()) < 0.02
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    off = ModelOffloader("cpu")
    off.use(a)
    off.use(a)
    off.use(b)
    assert off.active is b and off.moves == 2
    off.release()
    assert off.active is None


def test_supported_sizes_match_the_reference():
    from bitdance.convert.t2i_components import IMAGE_SIZE_LIST, check_image_size

    assert len(IMAGE_SIZE_LIST) == 18 and (1024, 1024) in IMAGE_SIZE_LIST and (512, 2048) in IMAGE_SIZE_LIST
    tokens = {(h, w): check_image_size(h, w, IMAGE_SIZE_LIST, 16, 64) for h, w in IMAGE_SIZE_LIST}
    assert tokens[(1152, 896)] == (72, 56) and 72 * 56 // 64 == 63
    assert tokens[(640, 384)] == (40, 24) and 40 * 24 // 16 == 60
    with pytest.raises(ValueError, match="allowed: "):
        check_image_size(1000, 1000, IMAGE_SIZE_LIST, 16, 64)


def test_bad_head_file_names_the_key(tmp_path):
    _need(*OFFICIAL_FILES)
    from safetensors.torch import load_file, save_file

    from bitdance.checkpoint import CheckpointError

    for f in OFFICIAL_FILES:
        shutil.copy(FIX / f, tmp_path / f)
    state = load_file(str(FIX / "vision_head.safetensors"))
    state["net.res_blocks.0.attn.wo.weight"] = state["net.res_blocks.0.attn.wo.weight"][:, :-1].contiguous()
    save_file(state, str(tmp_path / "vision_head.safetensors"))
    with pytest.raises(CheckpointError, match=r"shape mismatch net\.res_blocks\.0\.attn\.wo\.weight"):
        load_t2i_components(tmp_path)
