"""Token extraction and generator training: packed bits, cached text states, P per step, exact resume,
accumulation == bigger batch, exported pipeline loads and generates."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bitdance.checkpoint import save_pretrained
from bitdance.core.configs import get_preset
from bitdance.tokenizer.autoencoder import BinaryAutoencoder
from bitdance.training.dist import DistContext
from bitdance.training.generator_trainer import GeneratorTrainer, generator_config
from bitdance.training.loop import LoopConfig, fit
from bitdance.training.optim import OptimConfig
from bitdance.training.tokens import TokenStore, extract_tokens, pack_bits, unpack_bits


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    torch.manual_seed(0)
    save_pretrained(BinaryAutoencoder(get_preset("tokenizer", "tiny")), root / "tok")
    text = extract_tokens(
        root / "tok",
        "shapes:length=40",
        root / "text",
        text_encoder="hash",
        text_len=8,
        text_dim=32,
        progress=False,
    )
    cls = extract_tokens(root / "tok", "digits", root / "cls", text_encoder="none", limit=40, progress=False)
    return root, text, cls


def test_pack_unpack_round_trip():
    bits = torch.where(torch.rand(3, 16, 4, 4) > 0.5, 1.0, -1.0)
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8 and packed.shape == (3, 32)
    assert torch.equal(unpack_bits(packed, (16, 4, 4)), bits)


def test_extracted_folder_matches_the_tokenizer(folders):
    root, text, cls = folders
    store = TokenStore(text)
    hdr = store.header
    assert hdr["count"] == 40 and hdr["bits_shape"] == [16, 4, 4] and hdr["text_encoder"]["dim"] == 32
    assert json.loads((text / "captions.json").read_text()) == store.captions
    from bitdance.checkpoint import from_pretrained
    from bitdance.data import build_dataset
    from bitdance.generator.text_encoder import HashTextEncoder

    tok = from_pretrained(root / "tok")
    ds = build_dataset("shapes", "train", 16, length=40)
    img = torch.stack([ds[i]["image"] for i in (0, 7)])
    assert torch.equal(store.batch_bits([0, 7]), tok.encode(img))
    cond = store.batch_text([0, 7], 8)
    ref = HashTextEncoder(32, 8)([ds[0]["caption"], ds[7]["caption"]])
    assert torch.equal(cond.mask, ref.mask)
    assert torch.allclose(cond.states, ref.states, atol=1e-3)  # stored as float16
    assert TokenStore(cls).text is None and TokenStore(cls).labels.max() <= 9
    with pytest.raises(ValueError, match="not empty"):
        extract_tokens(root / "tok", "shapes:length=4", text, text_encoder="none", progress=False)


def test_config_checks_against_tokens(folders):
    _, text, cls = folders
    with pytest.raises(ValueError, match="4x4 tokens of 16 bits but generator preset .mini. expects"):
        generator_config("mini", TokenStore(text), None)
    with pytest.raises(ValueError, match="no cached text states"):
        generator_config("tiny-text", TokenStore(cls), None)
    with pytest.raises(ValueError, match="perfect square"):
        generator_config("tiny-text", TokenStore(text), [1, 3])
    cfg = generator_config("tiny-text", TokenStore(text), [4, 16])
    assert cfg.supported_parallel == (4, 16) and cfg.parallel_num == 4


def _trainer(
    store_path: Path,
    preset: str,
    steps: int,
    batch: int = 8,
    accum: int = 1,
    lr: float = 2e-3,
    parallel=(1, 4, 16),
):
    store = TokenStore(store_path)
    cfg = generator_config(preset, store, list(parallel))
    oc = OptimConfig(steps=steps, batch_size=batch, lr=lr, grad_accum=accum, warmup=2, seed=0)
    return GeneratorTrainer(cfg, store, oc, DistContext(), eval_store=store, sample_steps=2, sample_cfg=2.0)


def test_loss_falls_and_every_p_is_trained(folders):
    _, _, cls = folders
    tr = _trainer(cls, "tiny", 30, lr=3e-3)
    out = [tr.train_step(s) for s in range(30)]
    assert {int(m["parallel"]) for m in out} == {1, 4, 16}
    loss = [m["loss"] for m in out]
    assert all(math.isfinite(v) for v in loss)
    assert sum(loss[-6:]) / 6 < 0.85 * sum(loss[:6]) / 6, loss


def _weights(tr) -> dict:
    return {k: v.detach().clone() for k, v in tr.model.state_dict().items()}


def test_grad_accumulation_equals_the_same_global_batch(folders):
    _, text, _ = folders
    a, b = _trainer(text, "tiny-text", 3, batch=8), _trainer(text, "tiny-text", 3, batch=8, accum=4)
    for s in range(3):
        a.train_step(s)
        b.train_step(s)
    wa, wb = _weights(a), _weights(b)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_resume_is_exact_and_export_is_a_pipeline(folders, tmp_path):
    _, text, _ = folders

    def run(steps, resume):
        tr = _trainer(text, "tiny-text", 6)
        fit(
            tr,
            LoopConfig(steps=steps, out=tmp_path / "r", ckpt_every=3, progress=False, resume=resume),
            DistContext(),
        )
        return tr

    full = _trainer(text, "tiny-text", 6)
    fit(full, LoopConfig(steps=6, out=tmp_path / "full", ckpt_every=3, progress=False), DistContext())
    run(3, False)
    resumed = run(6, True)
    wa, wb = _weights(full), _weights(resumed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert torch.equal(full.ema.shadow["norm.weight"], resumed.ema.shadow["norm.weight"])
    with pytest.raises(ValueError, match="--resume"):
        fit(
            _trainer(text, "tiny-text", 6),
            LoopConfig(steps=6, out=tmp_path / "r", progress=False),
            DistContext(),
        )

    from bitdance.pipeline import BitDancePipeline

    pipe = BitDancePipeline.from_pretrained(tmp_path / "full" / "export")
    assert pipe.defaults["num_sampling_steps"] == 2 and pipe.defaults["guidance_scale"] == 2.0
    assert pipe.generator.config.supported_parallel == (1, 4, 16)
    out = pipe("a red circle", num_sampling_steps=2, parallel_num=16, output_type="np")
    assert out.images.shape == (1, 16, 16, 3)
    for k, v in pipe.generator.state_dict().items():
        assert torch.allclose(v, full.ema.full_state()[k]), k
    assert sorted(p.name for p in (tmp_path / "full" / "samples").glob("*.png")) == [
        "samples-000003.png",
        "samples-000006.png",
    ]
    ev = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_loss_p16" in r for r in ev)


def test_train_cli_end_to_end_with_config_file(folders, tmp_path, capsys):
    from bitdance.cli import main

    _, text, _ = folders
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(
        f"tokens: {text}\npreset: tiny-text\nparallel: [4, 16]\nsteps: 50\nbatch_size: 4\n"
        "sample_steps: 3\ncfg: 1.5\n"
    )
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--steps",
            "2",
            "--out",
            str(tmp_path / "g"),
            "--no-progress",
            "--ckpt-every",
            "2",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    state = torch.load(tmp_path / "g" / "checkpoints" / "state-000002.pt", weights_only=True)
    assert state["step"] == 2 and state["config"]["parallel_nums"] == [4, 16]
    index = json.loads((tmp_path / "g" / "export" / "model_index.json").read_text())
    assert index["defaults"]["num_sampling_steps"] == 3 and index["defaults"]["guidance_scale"] == 1.5
    cfg.write_text("tokens: x\nlearning_rate: 1\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "h")]) == 2
    assert "unknown option 'learning_rate'" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--tokens",
                str(text),
                "--preset",
                "tiny-text",
                "--parallel",
                "2",
                "--out",
                str(tmp_path / "h"),
            ]
        )
        == 2
    )


def test_extract_from_webdataset_shards_and_mixture_order(folders, tmp_path):
    from bitdance.data import build_dataset, write_shards

    root, _, _ = folders
    items = [build_dataset("shapes", "train", 16, length=6)[i] for i in range(6)]
    shards = write_shards(items, tmp_path / "shards", samples_per_shard=4)
    out = extract_tokens(
        root / "tok",
        f"digits,webdataset:urls={tmp_path / 'shards'}/shard-{{000000..000001}}.tar",
        tmp_path / "wds",
        text_encoder="none",
        limit=1437 + 5,
        progress=False,
    )
    store = TokenStore(out)
    assert len(shards) == 2 and len(store) == 1437 + 5
    assert store.header["sources"] == ["digits", "webdataset"]
    src = np.load(out / "source_ids.npy")
    assert (src[:1437] == 0).all() and (src[1437:] == 1).all()
    assert store.captions[store.caption_ids[1437]] == items[0]["caption"]


def test_retext_reuses_bits_and_re_encodes_captions(folders, tmp_path, capsys):
    from bitdance.cli import main
    from bitdance.generator.text_encoder import HashTextEncoder

    _, text, _ = folders
    out = tmp_path / "text12"
    rc = main(
        ["extract-tokens", "--from-tokens", str(text), "--text-encoder", "hash", "--text-len", "12"]
        + ["--text-dim", "32", "--out", str(out), "--no-progress"]
    )
    assert rc == 0, capsys.readouterr().err
    old, new = TokenStore(text), TokenStore(out)
    assert np.array_equal(old.bits, new.bits) and old.captions == new.captions
    assert np.array_equal(old.caption_ids, new.caption_ids)
    assert new.header["text_encoder"] == {"name": "hash", "max_len": 12, "dim": 32}
    assert old.header["text_encoder"]["max_len"] == 8  # the source folder is untouched
    cond = new.batch_text([0, 5], 12)
    ref = HashTextEncoder(32, 12)([new.captions[new.caption_ids[i]] for i in (0, 5)])
    assert torch.equal(cond.mask, ref.mask) and torch.allclose(cond.states, ref.states, atol=1e-3)
    # a generator preset with another text_len is refused with the fix named; --text-len matches it
    with pytest.raises(ValueError, match="train with --text-len 12"):
        generator_config("tiny-text", new, None)
    assert generator_config("tiny-text", new, None, {"text_len": 12}).text_len == 12
    argv = ["train", "--tokens", str(out), "--preset", "tiny-text", "--steps", "2", "--batch-size", "4"]
    argv += [
        "--text-len",
        "12",
        "--source-weights",
        "shapes=1.5",
        "--out",
        str(tmp_path / "g"),
        "--no-progress",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "60 items per epoch with --source-weights" in capsys.readouterr().err
    index = json.loads((tmp_path / "g" / "export" / "model_index.json").read_text())
    assert index["text_encoder"]["max_len"] == 12
    # bad uses are errors, and nothing is written
    assert (
        main(["extract-tokens", "--from-tokens", str(text), "--data", "shapes", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "drop --data" in capsys.readouterr().err
    assert main(["extract-tokens", "--from-tokens", str(text), "--out", str(text)]) == 2
    assert "must differ" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_source_weights_set_the_epoch_mixture(folders, tmp_path):
    from bitdance.training.generator_trainer import parse_source_weights, source_layout
    from bitdance.training.mixture import StepSampler

    root, _, _ = folders
    out = extract_tokens(
        root / "tok",
        "shapes:length=10,digits",
        tmp_path / "mix",
        text_encoder="none",
        limit=30,
        progress=False,
    )
    store = TokenStore(out)
    assert store.header["sources"] == ["shapes", "digits"]
    sizes, weights = source_layout(store, parse_source_weights("digits=0.5, shapes=2"))
    assert sizes == [10, 20] and weights == [2.0, 0.5]
    epoch = StepSampler(sizes, weights, 4, 0).epoch_indices(0)
    assert len(epoch) == 2 * 10 + 10 and (epoch < 10).sum() == 20  # shapes twice, half of the digits
    only_shapes = StepSampler(*source_layout(store, {"digits": 0.0}), 4, 0).epoch_indices(0)
    assert sorted(only_shapes.tolist()) == list(range(10))
    assert source_layout(store, {}) == ([30], None)
    for bad in ("digits", "digits=-1", "digits=x", "digits=nan", "=2"):
        with pytest.raises(ValueError, match="name=weight"):
            parse_source_weights(bad)
    with pytest.raises(ValueError, match="holds sources"):
        source_layout(store, {"emoji": 2.0})
    with pytest.raises(ValueError, match="select no items"):
        source_layout(store, {"digits": 0.0, "shapes": 0.0})


def test_rich_captions_and_any_order_are_seeded_per_step(folders):
    _, text, cls = folders
    store = TokenStore(text)
    assert store.meta is not None and len(store.meta) == len(store)
    cfg = generator_config("tiny-text", store, [1, 4, 16])
    oc = OptimConfig(steps=4, batch_size=8, lr=1e-3, warmup=1, seed=0)

    def make():
        return GeneratorTrainer(cfg, store, oc, DistContext(), any_order=0.5, rich_captions=0.75)

    a, b = make(), make()
    caps = [a.captions_for(list(range(8)), s, 0) for s in range(6)]
    assert caps == [b.captions_for(list(range(8)), s, 0) for s in range(6)]  # same step, same captions
    assert caps[0] != caps[1]  # fresh per step
    stored = {store.captions[int(c)] for c in store.caption_ids}
    assert any(c not in stored for row in caps for c in row)
    perms = [a.patch_perm_for(s, 1) for s in range(40)]
    shuffled = [p for p in perms if p is not None]
    assert 5 < len(shuffled) < 35 and all(sorted(p.tolist()) == list(range(16)) for p in shuffled)
    assert a.patch_perm_for(0, 16) is None  # one patch: nothing to permute
    for s in range(2):
        assert math.isfinite(a.train_step(s)["loss"])
    with pytest.raises(ValueError, match="meta.json"):
        cstore = TokenStore(cls)  # a class-conditioned folder: no text states
        GeneratorTrainer(generator_config("tiny", cstore, [1]), cstore, oc, DistContext(), rich_captions=0.5)
