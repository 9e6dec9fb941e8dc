"""The fast generator training step (`--train-impl fast`) against the reference step: the same loss and
gradients (float summation order only), the same training run, deterministic per seed; its pieces (trimmed
last layer, head condition embedding before tiling, multi-tensor EMA, fused AdamW, caption-state cache)."""

import json

import pytest
import torch

from bitdance.core.configs import get_preset
from bitdance.core.random import GeneratorSource
from bitdance.generator.text_encoder import build_text_encoder
from bitdance.generator.transformer import BitDanceTransformer, TextCondition
from bitdance.training.caption_cache import CaptionStateCache
from bitdance.training.dist import DistContext
from bitdance.training.generator_trainer import GeneratorTrainer, generator_config, train_main
from bitdance.training.optim import EMA, OptimConfig
from bitdance.training.throughput import synthetic_tokens
from bitdance.training.tokens import TokenStore, extract_tokens


def _model(preset: str) -> BitDanceTransformer:
    torch.manual_seed(0)
    m = BitDanceTransformer(get_preset("generator", preset)).train()
    with torch.no_grad():  # move the zero-initialised adaLN / final layers so every gradient is non-trivial
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _condition(cfg, b: int):  # noqa: ANN001, ANN202
    if cfg.cond_type == "text":
        g = torch.Generator().manual_seed(1)
        return TextCondition(
            torch.randn(b, cfg.text_len, cfg.text_dim, generator=g),
            torch.rand(b, cfg.text_len, generator=g) < 0.7,
        )
    return torch.arange(b) % cfg.num_classes


def _loss_and_grads(m, bits, cond, p, impl, perm=None):  # noqa: ANN001, ANN202
    m.zero_grad(set_to_none=True)
    rng = GeneratorSource(torch.Generator().manual_seed(7))
    loss = m.loss(bits, cond, rng, parallel_num=p, patch_perm=perm, impl=impl)
    loss.backward()
    return loss.detach(), {k: v.grad.clone() for k, v in m.named_parameters() if v.grad is not None}


@pytest.mark.parametrize("preset", ["tiny-text", "tiny"])
def test_fast_loss_and_gradients_equal_reference(preset):
    m = _model(preset)
    cfg = m.config
    b = 3
    bits = torch.randint(
        0, 2, (b, cfg.latent_bits, *cfg.grid_size), generator=torch.Generator().manual_seed(2)
    )
    bits = bits.float() * 2 - 1
    cond = _condition(cfg, b)
    cases = [(p, None) for p in cfg.supported_parallel] + [(4, torch.tensor([2, 0, 3, 1]))]
    for p, perm in cases:
        l_ref, g_ref = _loss_and_grads(m, bits, cond, p, "reference", perm)
        l_fast, g_fast = _loss_and_grads(m, bits, cond, p, "fast", perm)
        torch.testing.assert_close(l_fast, l_ref, rtol=1e-6, atol=0)
        assert (
            g_fast.keys() == g_ref.keys() and len(g_ref) >= len(list(m.parameters())) - 1
        )  # P=1: no queries
        for k in g_ref:
            scale = g_ref[k].abs().max().item()
            if scale == 0:  # P = 16 on a 4x4 grid feeds no token embeddings
                assert torch.equal(g_fast[k], g_ref[k]), k
                continue
            torch.testing.assert_close(g_fast[k], g_ref[k], rtol=1e-5, atol=1e-5 * scale, msg=k)


def test_loss_impl_is_checked():
    m = _model("tiny")
    bits = torch.ones(1, 16, 4, 4)
    with pytest.raises(ValueError, match="allowed"):
        m.loss(bits, torch.tensor([1]), GeneratorSource(torch.Generator()), impl="quick")


def test_keep_last_equals_the_tail_of_the_full_forward():
    m = _model("tiny-text").eval()
    cfg = m.config
    cond = _condition(cfg, 2)
    bits = torch.randn(2, 16, cfg.latent_bits).sign()
    full = m.teacher_forced_hidden(cond, bits, cfg.grid_size, 4)
    trimmed = m.teacher_forced_hidden(cond, bits, cfg.grid_size, 4, trim=True)
    assert trimmed.shape == full.shape
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-6)
    seq = torch.randn(2, 10, cfg.dim)
    from bitdance.generator.transformer import attention_groups

    rope = m.rope_for(cfg.grid_size, 4, 3 + 3)[:10]
    with pytest.raises(ValueError, match="keep_last"):
        m(seq, rope, attention_groups(3, 8, 1), keep_last=11)


def test_head_condition_embedding_before_tiling_is_the_same_function():
    m = _model("tiny-text")
    head = m.head
    x = torch.randn(6, 4, 16).sign()
    cond = torch.randn(6, 4, 64, requires_grad=True)
    out = {}
    for once in (False, True):
        cond.grad = None
        loss = head.loss(x, cond, GeneratorSource(torch.Generator().manual_seed(5)), embed_once=once)
        loss.backward()
        out[once] = (loss.detach(), cond.grad.clone())
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-5, atol=1e-8)


def test_ema_update_matches_the_per_tensor_loop():
    m = _model("tiny")
    ema = EMA(m, 0.9)
    ref = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    d = ema.current_decay()
    ema.update(m)
    for k, v in m.state_dict().items():
        if v.is_floating_point():
            expect = ref[k].mul_(d).add_(v.float(), alpha=1 - d)
            assert torch.equal(ema.shadow[k], expect), k
    assert ema.num_updates == 1


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    from bitdance.checkpoint import save_pretrained
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    root = tmp_path_factory.mktemp("fast")
    torch.manual_seed(0)
    save_pretrained(BinaryAutoencoder(get_preset("tokenizer", "tiny")), root / "tok")
    folder = extract_tokens(
        root / "tok",
        "shapes:length=24",
        root / "text",
        text_encoder="hash",
        text_len=8,
        text_dim=32,
        progress=False,
    )
    return TokenStore(folder)


def _run(store, impl, steps=3, seed=0, rich=0.0):  # noqa: ANN001, ANN202
    cfg = generator_config("tiny-text", store, None)
    oc = OptimConfig(steps=steps, batch_size=4, lr=1e-3, warmup=1, seed=seed)
    tr = GeneratorTrainer(cfg, store, oc, DistContext(), train_impl=impl, rich_captions=rich)
    tr.start(0)
    losses = [tr.train_step(s)["loss"] for s in range(steps)]
    return tr, losses


def test_fast_training_is_deterministic_per_seed(text_store):
    a, la = _run(text_store, "fast")
    b, lb = _run(text_store, "fast")
    assert la == lb
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(v, w), k
    assert a.optimizer.param_groups[0]["fused"] is True
    _, lc = _run(text_store, "fast", seed=1)
    assert lc != la


@pytest.mark.parametrize("rich", [0.0, 0.5])
def test_fast_and_reference_runs_agree(text_store, rich):
    steps = 10 if rich else 3  # 40 items drawn from 24: stored captions come back (cache hits)
    fast, lf = _run(text_store, "fast", steps=steps, rich=rich)
    ref, lr = _run(text_store, "reference", steps=steps, rich=rich)
    assert ref.optimizer.param_groups[0]["fused"] is None
    torch.testing.assert_close(torch.tensor(lf), torch.tensor(lr), rtol=1e-5, atol=0)
    for (k, v), w in zip(fast.model.state_dict().items(), ref.model.state_dict().values()):
        torch.testing.assert_close(v, w, rtol=1e-4, atol=1e-6, msg=k)
    if rich:
        cache = fast._caption_cache
        assert cache is not None and cache.hits > 0 and cache.misses > 0


def test_fast_trainer_resumes_a_reference_checkpoint(text_store):
    ref, _ = _run(text_store, "reference", steps=2)
    fast, _ = _run(text_store, "fast", steps=1)
    fast.load_state_dict(ref.state_dict())
    assert all(g["fused"] is True for g in fast.optimizer.param_groups)
    again, _ = _run(text_store, "reference", steps=2)
    again.load_state_dict(ref.state_dict())
    torch.testing.assert_close(
        torch.tensor(fast.train_step(2)["loss"]), torch.tensor(again.train_step(2)["loss"]), rtol=1e-5, atol=0
    )


def test_train_impl_is_checked(text_store, capsys):
    cfg = generator_config("tiny-text", text_store, None)
    with pytest.raises(ValueError, match="reference"):
        GeneratorTrainer(
            cfg, text_store, OptimConfig(steps=1, batch_size=4, lr=1e-3), DistContext(), train_impl="x"
        )
    with pytest.raises(SystemExit):
        train_main(["--tokens", str(text_store.folder), "--out", "x", "--train-impl", "turbo"])
    assert "invalid choice" in capsys.readouterr().err


def test_caption_cache_encodes_each_caption_once():
    enc = build_text_encoder("hash", dim=16, max_len=6)
    calls = []

    def counting(caps):  # noqa: ANN001, ANN202
        calls.append(list(caps))
        return enc(caps)

    cache = CaptionStateCache(counting, capacity=3)
    caps = ["a red circle", "a blue square", "a red circle"]
    got = cache(caps)
    want = enc(caps)
    assert torch.equal(got.states, want.states.float()) and torch.equal(got.mask, want.mask)
    assert calls == [["a red circle", "a blue square"]] and (cache.hits, cache.misses) == (1, 2)
    again = cache(["a blue square", "two stars"])
    assert calls[-1] == ["two stars"] and torch.equal(
        again.states, enc(["a blue square", "two stars"]).states
    )
    cache(["one moon", "a red circle"])  # capacity 3: the least recently used ("a blue square") goes
    assert list(cache.entries) == ["two stars", "one moon", "a red circle"]
    with pytest.raises(ValueError, match="capacity"):
        CaptionStateCache(enc, capacity=0)


def test_training_speed_bench_reports_both_steps(tmp_path):
    from bitdance.evaluation.training_speed import bench_training_speed, shared_report

    res = bench_training_speed("tiny-text", batch=4, rounds=2, warmup=1, peak_size=64)
    rows = {r["impl"]: r for r in res["rows"]}
    assert set(rows) == {"reference", "fast"} and rows["reference"]["speedup_vs_reference"] == 1.0
    assert rows["fast"]["gflop_per_step"] < rows["reference"]["gflop_per_step"]
    assert len(res["losses"]["fast"]) == 3 and res["max_rel_loss_diff"] < 1e-5
    assert all(res["phases_ms"][k]["forward"] > 0 for k in rows)
    doc = json.loads(shared_report(res, {"command": "x", "utc": "now", "machine": {}}))
    assert doc["name"] == "speed_training" and doc["tables"]["training_speed"]["rows"][1][0] == "fast"


def test_bench_training_speed_cli_needs_no_model(tmp_path):
    from bitdance.evaluation.cli import main

    out = tmp_path / "ts"
    rc = main(
        [
            "bench",
            "--training-speed",
            "--preset",
            "tiny",
            "--train-batch",
            "4",
            "--rounds",
            "1",
            "--peak-size",
            "64",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and json.loads((out / "speed_training.json").read_text())["metrics"]["speedup"] > 0
    assert main(["bench", "--out", str(out)]) == 2
    assert main(["bench", "--training-speed", "--rounds", "0", "--out", str(out)]) == 2


def test_synthetic_store_shapes_for_the_bench(tmp_path):
    store = TokenStore(synthetic_tokens(tmp_path / "t", "tiny-text", count=8))
    assert len(store) == 8


def test_complex_rope_is_the_same_rotation():
    from bitdance.core.layers import apply_rope, apply_rope_complex, rope_2d_angles, rope_table

    g = torch.Generator().manual_seed(0)
    table = rope_table(rope_2d_angles(torch.rand(9, 2, generator=g) * 4, 16, 10000.0))
    qkv = torch.randn(2, 9, 3 * 3 * 16 + 1, generator=g)[..., 1:]  # odd storage offset: not complex-viewable
    x = qkv.reshape(2, 9, 3, 3, 16).permute(2, 0, 3, 1, 4)[1].detach().requires_grad_()
    grads = []
    for f in (apply_rope, apply_rope_complex):
        x.grad = None
        y = f(x, table)
        (y * torch.arange(y.numel()).view_as(y).sin()).sum().backward()
        grads.append((y.detach(), x.grad.clone()))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-6, atol=1e-7)
