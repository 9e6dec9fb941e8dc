"""`bitdance generate --sampler NAME` and `pipe(..., sampler=NAME)`: named settings, recorded, replayable."""

import json

import pytest
import torch

from bitdance.cli import main
from bitdance.pipeline import BitDancePipeline
from bitdance.pipeline.provenance import read_recipe
from bitdance.sampling.presets import DEFAULT_SAMPLER, SAMPLER_PRESETS, sampler_settings

NAMES = "allowed: reference, fast-exact, fast, fast4"


@pytest.fixture(scope="module")
def pipe():
    p = BitDancePipeline.from_preset("tiny-text")
    with torch.no_grad():  # a non-zero head: samples depend on the solver, steps and noise
        for prm in p.generator.head.parameters():
            prm.add_(torch.randn_like(prm) * 0.05)
    return p


@pytest.mark.parametrize("name", list(SAMPLER_PRESETS))
def test_sampler_argument_is_its_solver_and_steps(pipe, name):
    kw = sampler_settings(name, pipe.defaults["num_sampling_steps"])
    a = pipe("a red sneaker", seed=4, guidance_scale=2.0, sampler=name, output_type="bits")
    b = pipe("a red sneaker", seed=4, guidance_scale=2.0, output_type="bits", **kw)
    again = pipe("a red sneaker", seed=4, guidance_scale=2.0, sampler=name, output_type="bits")
    assert torch.equal(a.bits, b.bits) and torch.equal(a.bits, again.bits)  # deterministic
    assert {k: a.recipes[0][k] for k in kw} == kw


def test_default_is_the_reference_setting(pipe):
    assert DEFAULT_SAMPLER == "reference"
    plain = pipe("a red sneaker", seed=1, guidance_scale=2.0, output_type="bits")
    ref = pipe("a red sneaker", seed=1, guidance_scale=2.0, sampler="reference", output_type="bits")
    assert torch.equal(plain.bits, ref.bits) and plain.recipes == ref.recipes
    assert plain.recipes[0]["solver"] == "euler_maruyama"
    assert plain.recipes[0]["num_sampling_steps"] == pipe.defaults["num_sampling_steps"]
    fast = pipe("a red sneaker", seed=1, guidance_scale=2.0, sampler="fast", output_type="bits")
    assert fast.recipes[0]["num_sampling_steps"] < plain.recipes[0]["num_sampling_steps"]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"sampler": "turbo"}, f"unknown sampler setting 'turbo'; {NAMES}"),
        ({"sampler": 3}, "unknown sampler setting 3; allowed: "),
        ({"sampler": "fast", "num_sampling_steps": 4}, "give either sampler=NAME or solver"),
        ({"sampler": "fast", "solver": "euler"}, "give either sampler=NAME or solver"),
    ],
)
def test_bad_sampler_arguments(pipe, kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        pipe("a red sneaker", **kw)


def test_cli_sampler_is_recorded_and_replays_byte_identically(tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    base = ["generate", "a red sneaker", "--model", "random:tiny-text", "--seed", "2", "-q"]
    assert main([*base, "--sampler", "fast", "-o", str(a)]) == 0
    rec = read_recipe(a)
    steps = BitDancePipeline.from_preset("tiny-text").defaults["num_sampling_steps"]
    assert (rec["solver"], rec["num_sampling_steps"]) == ("em_fast", (steps + 1) // 2)
    assert main(["generate", "--replay", str(a), "--model", "random:tiny-text", "-o", str(b), "-q"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert main([*base, "-o", str(tmp_path / "ref.png")]) == 0  # no --sampler: the reference setting
    assert read_recipe(tmp_path / "ref.png")["solver"] == "euler_maruyama"
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "turbo"], f"error: unknown --sampler 'turbo'; {NAMES}"),
        (["--sampler", "fast", "--steps", "4"], "give either --sampler or --steps, not both"),
    ],
)
def test_cli_bad_sampler(extra, message, tmp_path, capsys):
    argv = ["generate", "a red sneaker", "--model", "random:tiny-text", "-o", str(tmp_path / "x.png"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (tmp_path / "x.png").exists()


def test_cli_replay_refuses_sampler(tmp_path, capsys):
    a = tmp_path / "a.png"
    assert main(["generate", "a red sneaker", "--model", "random:tiny-text", "-o", str(a), "-q"]) == 0
    argv = ["generate", "--replay", str(a), "--model", "random:tiny-text", "--sampler", "fast"]
    assert main(argv) == 2
    assert "remove --sampler" in capsys.readouterr().err


def test_help_lists_the_settings(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in SAMPLER_PRESETS) and json.dumps(DEFAULT_SAMPLER)[1:-1] in out
