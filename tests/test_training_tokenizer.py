"""Tokenizer training: losses fall on every built-in set, metrics, bad data, NaN stop, CLI errors."""

import json
import math
import warnings

import pytest
import torch

from bitdance.core.configs import get_preset
from bitdance.data import build_dataset
from bitdance.evaluation.metrics import bit_usage, psnr, ssim
from bitdance.training.dist import DistContext
from bitdance.training.loop import LoopConfig, NonFiniteLoss, TrainingStopped, fit
from bitdance.training.mixture import build_mixture
from bitdance.training.optim import OptimConfig
from bitdance.training.progress import read_metrics
from bitdance.training.tokenizer_trainer import TokenizerLossConfig, TokenizerTrainer


def _available(name: str, **kw) -> bool:
    try:
        build_dataset(name, "train", 16, **kw)
        return True
    except (FileNotFoundError, ImportError):
        return False


def _trainer(
    spec: str, steps: int, lr: float = 3e-3, batch: int = 8, perceptual: str = "none", size: int = 16
):
    cfg = get_preset("tokenizer", "tiny")
    cfg.image_size = size
    train = build_mixture(spec, "train", size)
    oc = OptimConfig(steps=steps, batch_size=batch, lr=lr, warmup=2, min_lr_ratio=0.5, seed=0)
    losses = TokenizerLossConfig(perceptual=perceptual, entropy_weight=0.01, commit_weight=0.1)
    return TokenizerTrainer(cfg, train, train, oc, losses, DistContext(), eval_samples=8)


@pytest.mark.parametrize("spec", ["shapes", "digits", "fashion_mnist:tint=1", "emoji"])
def test_reconstruction_loss_falls_on_each_builtin_dataset(spec, tmp_path):
    name = spec.split(":")[0]
    if not _available(name):
        pytest.skip(f"{name} assets not installed")
    tr = _trainer(spec, steps=16)
    tr.start(0)
    l1 = [tr.train_step(s)["l1"] for s in range(16)]
    assert all(math.isfinite(v) for v in l1)
    assert sum(l1[-4:]) / 4 < 0.8 * sum(l1[:4]) / 4, l1


def test_fit_writes_checkpoints_export_metrics_grids_and_plot(tmp_path):
    tr = _trainer("shapes:length=64", steps=4, perceptual="auto")
    summary = fit(
        tr, LoopConfig(steps=4, out=tmp_path, ckpt_every=2, log_every=1, progress=False), DistContext()
    )
    assert summary["step"] == 4
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "state-000002.pt",
        "state-000004.pt",
    ]
    from bitdance.checkpoint import from_pretrained

    tok = from_pretrained(tmp_path / "export")
    assert tok.encode(torch.zeros(1, 3, 16, 16)).shape == (1, 16, 4, 4)
    recs = read_metrics(tmp_path / "metrics.jsonl", kind=None)
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3, 4]
    ev = [r for r in recs if r["kind"] == "eval"]
    assert len(ev) == 2 and {"psnr", "ssim", "bit_entropy"} <= set(ev[0])
    assert "perceptual" in recs[0]  # the EfficientNet / gradient perceptual term is logged
    assert (tmp_path / "samples" / "recon-000004.png").is_file() and (tmp_path / "loss.png").is_file()


def test_metrics_psnr_ssim_bit_usage():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert psnr(x, x) == pytest.approx(100.0) and ssim(x, x) == pytest.approx(1.0, abs=1e-4)
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    assert 10 < psnr(x, noisy) < 30 and ssim(x, noisy) < 0.95
    bits = torch.where(torch.rand(4, 16, 4, 4) > 0.5, 1.0, -1.0)
    u = bit_usage(bits)
    assert u["bit_entropy"] > 0.8 and 0 < u["distinct_tokens"] <= 1
    assert bit_usage(-torch.ones(2, 16, 4, 4))["bit_entropy"] < 0.01


def test_perceptual_losses():
    from bitdance.training.perceptual import GradientLoss, build_perceptual

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    g = GradientLoss()
    assert g(x, x) == 0 and g(x, y) > 0
    loss, kind = build_perceptual("auto")
    if kind == "efficientnet":
        assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
        near = loss(x, (x + 0.05 * torch.randn_like(x)).clamp(-1, 1))
        assert 0 < near < loss(x, y)
    with pytest.raises(ValueError):
        build_perceptual("lpips")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    tr = _trainer("shapes:length=32", steps=6)
    real = tr._losses

    def poisoned(images, step):
        total, terms, recon = real(images, step)
        return (total * float("nan") if step == 2 else total), terms, recon

    monkeypatch.setattr(tr, "_losses", poisoned)
    with pytest.raises(TrainingStopped, match=r"nan at step 3.*state-000002\.pt"):
        fit(tr, LoopConfig(steps=6, out=tmp_path, ckpt_every=2, progress=False), DistContext())
    from bitdance.training.checkpoints import CheckpointManager

    state, path = CheckpointManager(tmp_path / "checkpoints").latest()
    assert path.name == "state-000002.pt"
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert issubclass(NonFiniteLoss, RuntimeError)


def _folder_with_bad_files(root):
    from PIL import Image

    root.mkdir()
    for i in range(6):
        Image.new("RGB", (20, 20), (40 * i, 0, 0)).save(root / f"red_{i}.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "empty.jpg").write_bytes(b"")
    rows = [{"file": f"red_{i}.png", "caption": f"red square {i}"} for i in range(6)]
    rows += [
        {"file": "broken.png", "caption": "x"},
        {"file": "gone.png", "caption": "y"},
        {"file": "empty.jpg", "caption": "z"},
    ]
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_corrupt_images_skipped_and_counted_missing_listed(tmp_path):
    root = _folder_with_bad_files(tmp_path / "imgs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_mixture(f"folder:root={root}:manifest={root / 'm.jsonl'}", "train", 16)
    text = " ".join(str(w.message) for w in caught)
    assert "1 listed file(s) missing" in text and "gone.png" in text
    assert "skipped 2 unreadable" in text
    assert len(ds) == 6 and sorted(ds.skipped) == ["broken.png", "empty.jpg"] and ds.missing == ["gone.png"]


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    from bitdance.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"junk")
    cases = [
        ["train-tokenizer", "--data", f"folder:root={bad}", "--out", str(tmp_path / "o")],  # no usable images
        ["train-tokenizer", "--data", "nosuchset", "--out", str(tmp_path / "o")],
        ["train-tokenizer", "--data", "shapes", "--out", str(tmp_path / "o"), "--lr", "-1"],
        ["train-tokenizer", "--data", "shapes", "--out", str(tmp_path / "o"), "--batch-size", "0"],
        [
            "train-tokenizer",
            "--data",
            "shapes",
            "--preset",
            "tiny",
            "--size",
            "18",
            "--out",
            str(tmp_path / "o"),
        ],
        ["train-tokenizer", "--out", str(tmp_path / "o")],
        [
            "train-tokenizer",
            "--data",
            "shapes",
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(tmp_path / "no.yaml"),
        ],
    ]
    for argv in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, argv
        assert err[-1].startswith("error: ") and "Traceback" not in "\n".join(err), (argv, err)
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_stop_at_keeps_the_schedule_and_resumes(tmp_path):
    """--stop-at N checkpoints + exports at N of a longer cosine schedule; resuming finishes it exactly."""
    tr = _trainer("shapes:length=64", steps=6)
    out = tmp_path / "run"
    s = fit(tr, LoopConfig(steps=6, out=out, ckpt_every=100, stop_at=3, progress=False), DistContext())
    assert s["step"] == 3 and (out / "export" / "model.safetensors").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["state-000003.pt"]
    state = torch.load(out / "checkpoints" / "state-000003.pt", weights_only=False)
    assert state["optim_config"]["steps"] == 6  # the LR schedule is still the 6-step one
    tr2 = _trainer("shapes:length=64", steps=6)
    s2 = fit(tr2, LoopConfig(steps=6, out=out, ckpt_every=100, resume=True, progress=False), DistContext())
    assert s2["step"] == 6
    uninterrupted = _trainer("shapes:length=64", steps=6)
    fit(
        uninterrupted,
        LoopConfig(steps=6, out=tmp_path / "ref", ckpt_every=100, progress=False),
        DistContext(),
    )
    a = torch.load(out / "checkpoints" / "state-000006.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "ref" / "checkpoints" / "state-000006.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="--stop-at"):
        LoopConfig(steps=6, out=out, stop_at=0).check()


def test_freeze_encoder_keeps_the_bits(tmp_path):
    """Decoder-only fine-tune: the exported encoder is bit-identical, the decoder changes."""
    from bitdance.checkpoint import from_pretrained, save_pretrained
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    cfg = get_preset("tokenizer", "tiny")
    cfg.image_size = 16
    torch.manual_seed(0)
    save_pretrained(BinaryAutoencoder(cfg), tmp_path / "init")
    train = build_mixture("shapes:length=64", "train", 16)
    oc = OptimConfig(steps=4, batch_size=8, lr=3e-3, warmup=1, seed=0, ema_decay=0.5)
    tr = TokenizerTrainer(
        cfg,
        train,
        train,
        oc,
        TokenizerLossConfig(perceptual="none"),
        DistContext(),
        eval_samples=8,
        init=str(tmp_path / "init"),
        freeze_encoder=True,
    )
    fit(tr, LoopConfig(steps=4, out=tmp_path / "ft", ckpt_every=100, progress=False), DistContext())
    before = from_pretrained(tmp_path / "init").state_dict()
    after = from_pretrained(tmp_path / "ft" / "export").state_dict()
    enc = [k for k in before if k.startswith("encoder.")]
    dec = [k for k in before if k.startswith("decoder.")]
    assert enc and all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in dec)
    with pytest.raises(ValueError, match="needs --init"):
        TokenizerTrainer(
            cfg, train, train, oc, TokenizerLossConfig(perceptual="none"), DistContext(), freeze_encoder=True
        )


def test_decoder_res_blocks_deepens_the_init(tmp_path):
    """--decoder-res-blocks: the fine-tune starts from the init's exact reconstructions, deeper."""
    from bitdance.checkpoint import from_pretrained, save_pretrained
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    cfg = get_preset("tokenizer", "tiny")
    cfg.image_size = 16
    torch.manual_seed(0)
    init = BinaryAutoencoder(cfg).eval()
    save_pretrained(init, tmp_path / "init")
    train = build_mixture("shapes:length=64", "train", 16)
    oc = OptimConfig(steps=3, batch_size=8, lr=3e-3, warmup=1, seed=0, ema_decay=0.5)
    kw = dict(eval_samples=8, init=str(tmp_path / "init"), freeze_encoder=True, decoder_res_blocks=2)
    tr = TokenizerTrainer(cfg, train, train, oc, TokenizerLossConfig(perceptual="none"), DistContext(), **kw)
    bits = torch.sign(torch.randn(2, cfg.z_channels, 4, 4))
    with torch.no_grad():
        assert torch.equal(tr.model.eval().decode(bits), init.decode(bits))
    tr.model.train()
    fit(tr, LoopConfig(steps=3, out=tmp_path / "ft", ckpt_every=100, progress=False), DistContext())
    out = from_pretrained(tmp_path / "ft" / "export")
    assert out.config.decoder_res_blocks == 2 and len(out.decoder.mid_block) == 2
    assert torch.count_nonzero(out.decoder.mid_block[1].conv2.weight) > 0  # the new blocks were trained
    with pytest.raises(ValueError, match="--decoder-res-blocks needs --init"):
        TokenizerTrainer(
            cfg, train, train, oc, TokenizerLossConfig(perceptual="none"), DistContext(), decoder_res_blocks=2
        )
