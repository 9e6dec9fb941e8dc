"""Start-up of `bitdance generate`: weights loaded without random init, one MiniLM per process."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from bitdance.checkpoint import from_pretrained, load_weights
from bitdance.core.init_free import adopt_state, build_on_meta, meta_tensors
from bitdance.generator.text_encoder import MiniLMTextEncoder
from bitdance.pipeline import resolve_model
from bitdance.pipeline.shared_encoder import FilterEncoder, is_stock_minilm, share_with_filter
from bitdance.safety import semantic

PROMPTS = [
    "a red sneaker",
    "a photo of a cat sitting on a mat, highly detailed, soft light, many words to pass twenty tokens",
    "word " * 60,
]


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder(max_len=20)


def test_build_on_meta_allocates_nothing_and_adopt_state_takes_the_tensors():
    m = build_on_meta(lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Embedding(5, 4)))
    assert all(p.is_meta for p in m.parameters())
    state = {k: torch.randn(v.shape) for k, v in m.state_dict().items()}
    adopt_state(m, state)
    assert meta_tensors(m) == []
    assert m[0].weight.data_ptr() == state["0.weight"].data_ptr()  # the loaded tensor itself: no copy
    assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(RuntimeError, match="Missing key"):
        adopt_state(build_on_meta(lambda: nn.Linear(3, 4)), {"weight": torch.zeros(4, 3)})


def test_adopt_state_refuses_a_module_that_keeps_a_tensor_of_its_own():
    class WithTable(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.table = torch.arange(4)  # made in __init__, not in the state dict

    m = build_on_meta(WithTable)
    with pytest.raises(RuntimeError, match=r"meta device after loading: \['table'\]"):
        adopt_state(m, {"lin.weight": torch.zeros(2, 2), "lin.bias": torch.zeros(2)})


def test_adopt_state_casts_to_the_module_dtype_like_a_copying_load():
    m = build_on_meta(lambda: nn.Linear(2, 2))
    adopt_state(m, {"weight": torch.ones(2, 2, dtype=torch.float64), "bias": torch.zeros(2)})
    assert m.weight.dtype == torch.float32


def test_adopt_state_copies_unaligned_tensors_so_kernels_match_a_copying_load():
    # safetensors packs tensors back to back: a tensor can start at any byte of the file's buffer, and
    # vectorised CPU kernels then give results that differ in the last bits from the same weights in fresh
    # (64-byte aligned) memory
    buf = torch.randn(1 + 64 * 64 + 64)
    unaligned = buf[1 : 1 + 64 * 64].view(64, 64)  # 4 bytes past an aligned start
    assert unaligned.data_ptr() % 64 != 0
    m = build_on_meta(lambda: nn.Linear(64, 64))
    adopt_state(m, {"weight": unaligned, "bias": buf[-64:]})
    assert m.weight.data_ptr() % 64 == 0 and torch.equal(m.weight, unaligned)
    assert m.weight.data_ptr() != unaligned.data_ptr()
    root = resolve_model("bitdance-mini")
    for comp in ("tokenizer", "generator"):
        assert all(p.data_ptr() % 64 == 0 for p in from_pretrained(root / comp).parameters()), comp


def test_shipped_components_load_exactly_the_file_weights():
    root = resolve_model("bitdance-mini")
    for comp in ("tokenizer", "generator"):
        module = from_pretrained(root / comp)
        file = load_weights(root / comp / "model.safetensors")
        own = module.state_dict()
        assert sorted(own) == sorted(file)
        assert all(torch.equal(own[k], file[k]) for k in file), comp
        assert meta_tensors(module) == [] and not module.training


def test_minilm_view_shares_weights_and_matches_a_fresh_copy(minilm):
    view = minilm.with_max_len(semantic.MAX_TOKENS)
    assert view.word.weight is minilm.word.weight and view.max_len == semantic.MAX_TOKENS
    assert minilm.max_len == 20 and minilm.tokenizer.truncation["max_length"] == 20  # original untouched
    fresh = MiniLMTextEncoder(max_len=semantic.MAX_TOKENS)
    assert torch.equal(view.sentence_embedding(PROMPTS), fresh.sentence_embedding(PROMPTS))
    assert torch.equal(minilm(PROMPTS).states, MiniLMTextEncoder(max_len=20)(PROMPTS).states)
    assert minilm.with_max_len(20) is minilm
    with pytest.raises(ValueError, match="max_len must be an integer >= 2"):
        minilm.with_max_len(1)


def test_filter_verdicts_are_the_same_with_the_shared_encoder(minilm, monkeypatch):
    """The semantic layer judges with the pipeline's MiniLM exactly as with its own copy."""
    own = semantic.SemanticIndex.load(semantic.assets_dir(), embedder=semantic.Embedder())
    shared = semantic.Embedder(FilterEncoder(minilm, semantic.MAX_TOKENS))
    shared_index = semantic.SemanticIndex.load(semantic.assets_dir(), embedder=shared)
    probes = [*PROMPTS, "how to make a pipe bomb at home", "a gory photo of a corpse"]
    for a, b in zip(own.judge_many(probes), shared_index.judge_many(probes)):
        assert a == b


def test_share_with_filter_fills_the_empty_slot_only(minilm, monkeypatch):
    fresh = semantic.Embedder()
    monkeypatch.setattr(semantic, "shared_embedder", lambda: fresh)
    assert is_stock_minilm(minilm)
    assert share_with_filter(minilm) is True
    assert isinstance(fresh._encoder, FilterEncoder) and fresh._encoder.encoder is minilm
    assert share_with_filter(minilm) is False  # already has an encoder: left alone
    from bitdance.generator.text_encoder import HashTextEncoder

    assert share_with_filter(HashTextEncoder()) is False


def test_readme_command_loads_one_minilm_and_no_compiler(tmp_path):
    """A cold `bitdance generate "a red sneaker"`: MiniLM built once, torch._dynamo never imported."""
    script = f"""
import json, sys
from bitdance.generator import text_encoder
built = []
orig = text_encoder.MiniLMTextEncoder.__init__
def counting(self, *a, **k):
    built.append(k.get("max_len"))
    orig(self, *a, **k)
text_encoder.MiniLMTextEncoder.__init__ = counting
from bitdance.cli import main
rc = main(["generate", "a red sneaker", "-o", {str(tmp_path / "s.png")!r}, "-q"])
print(json.dumps({{"rc": rc, "built": built, "dynamo": "torch._dynamo" in sys.modules}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "built": [20], "dynamo": False}
    assert (tmp_path / "s.png").is_file()


def test_command_exits_without_teardown_and_loses_no_output(tmp_path):
    """`python -m bitdance.cli generate` ends by os._exit: the PNG, stdout and stderr are complete."""
    from bitdance.pipeline.provenance import read_recipe

    png = tmp_path / "s.png"
    cmd = [sys.executable, "-m", "bitdance.cli", "generate", "a red sneaker", "--model", "random:tiny-text"]
    ok = subprocess.run([*cmd, "-o", str(png), "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == str(png)
    assert read_recipe(png)["prompt"] == "a red sneaker"
    bad = subprocess.run(
        [*cmd, "--sampler", "turbo", "-o", str(tmp_path / "x.png")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown --sampler 'turbo'")
