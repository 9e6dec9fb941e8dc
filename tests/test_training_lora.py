"""LoRA fine-tuning through peft on 20 captioned images: small adapter, changed outputs, loadable."""

import json

import pytest
import torch

peft = pytest.importorskip("peft")

from bitdance.pipeline import BitDancePipeline  # noqa: E402
from bitdance.training.lora import adapter_parameters, add_lora, load_lora, read_adapter_meta  # noqa: E402

COLOURS = {"red": (230, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 230), "yellow": (240, 220, 20)}


@pytest.fixture(scope="module")
def base_and_images(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("lora")
    pipe = BitDancePipeline.from_preset("tiny-text", seed=0)
    with torch.no_grad():  # a random init has zero-initialised head gates (no gradient to the backbone)
        g = torch.Generator().manual_seed(1)
        for p in pipe.generator.head.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    pipe.save_pretrained(root / "base")
    imgs = root / "imgs"
    imgs.mkdir()
    rows = []
    for i in range(20):
        name = list(COLOURS)[i % 4]
        Image.new("RGB", (16, 16), COLOURS[name]).save(imgs / f"{i:02d}.png")
        rows.append({"file": f"{i:02d}.png", "caption": f"a zorblax swatch, {name}"})
    (imgs / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_lora_finetune_changes_outputs_and_adapter_is_small(base_and_images, capsys):
    from bitdance.cli import main

    root = base_and_images
    out = root / "ft"
    rc = main(
        [
            "finetune",
            "--model",
            str(root / "base"),
            "--data",
            f"folder:root={root / 'imgs'}:manifest={root / 'imgs' / 'captions.jsonl'}",
            "--lora-rank",
            "2",
            "--steps",
            "40",
            "--batch-size",
            "10",
            "--lr",
            "1e-2",
            "--warmup",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--sample-steps",
            "2",
            "--ckpt-every",
            "40",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    base_bytes = (root / "base" / "generator" / "model.safetensors").stat().st_size
    assert (adapter / "adapter_model.safetensors").stat().st_size < 0.05 * base_bytes
    meta = read_adapter_meta(adapter)
    base = BitDancePipeline.from_pretrained(root / "base")
    n_base = sum(p.numel() for p in base.generator.parameters())
    assert meta["adapter_parameters"] < 0.05 * n_base

    prompts = ["a zorblax swatch, red", "a zorblax swatch, blue"]
    kw = {"num_sampling_steps": 4, "seed": 0, "output_type": "pt", "parallel_num": 4}
    before = base(prompts, **kw).images
    tuned = load_lora(BitDancePipeline.from_pretrained(root / "base"), adapter)
    after = tuned(prompts, **kw).images
    assert (after - before).abs().mean() > 1e-3  # the adapter changes what the new captions produce
    assert tuned.model_hash != base.model_hash
    wrapped = load_lora(BitDancePipeline.from_pretrained(root / "base"), adapter, merge=False)
    assert torch.allclose(wrapped(prompts, **kw).images, after, atol=1e-4)
    losses = [
        json.loads(x)["loss"]
        for x in (out / "metrics.jsonl").read_text().splitlines()
        if '"kind": "train"' in x
    ]
    assert losses[-1] < losses[0]


def test_add_lora_trains_only_adapter_and_rejects_bad_rank():
    from bitdance.core.configs import get_preset
    from bitdance.generator.transformer import BitDanceTransformer

    model = add_lora(BitDanceTransformer(get_preset("generator", "mini")), rank=8)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.get_base_model().parameters()) - trainable
    assert trainable == adapter_parameters(model) and trainable < 0.05 * total
    with pytest.raises(ValueError, match="lora-rank"):
        add_lora(BitDanceTransformer(get_preset("generator", "tiny-text")), rank=0)
    with pytest.raises(ValueError, match="matched no layer"):
        add_lora(BitDanceTransformer(get_preset("generator", "tiny-text")), rank=2, targets=r"nothing\.here")


def test_load_lora_rejects_other_architectures(base_and_images, tmp_path):
    adapter = base_and_images / "ft" / "adapter"
    if not adapter.is_dir():
        pytest.skip("needs the fine-tune test's adapter")
    other = BitDancePipeline.from_preset("tiny", seed=0)
    with pytest.raises(ValueError, match="different generator architecture"):
        load_lora(other, adapter)
    with pytest.raises(FileNotFoundError):
        load_lora(other, tmp_path)
