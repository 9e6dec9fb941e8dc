"""Training CLI surface: every flag documented in --help, config files with CLI overrides, bad configs."""

import argparse

import pytest

from bitdance.training.cli import load_config_file, parse_with_config, tokenizer_parser
from bitdance.training.finetune import finetune_parser
from bitdance.training.generator_trainer import train_parser
from bitdance.training.tokens import extract_parser

PARSERS = {
    "train-tokenizer": tokenizer_parser,
    "extract-tokens": extract_parser,
    "train": train_parser,
    "finetune": finetune_parser,
}


@pytest.mark.parametrize("verb", list(PARSERS))
def test_every_flag_has_help_text(verb, capsys):
    from bitdance.cli import main

    parser = PARSERS[verb]()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 8, (verb, action.option_strings)
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        assert action.option_strings[-1] in text
    assert "example:" in text


def test_config_file_then_cli_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: shapes\nsteps: 7\nlr: 3e-4\nperceptual: gradient\nresume: true\n")
    args = parse_with_config(tokenizer_parser(), ["--config", str(cfg), "--steps", "9"])
    assert args.data == "shapes" and args.steps == 9 and args.lr == pytest.approx(3e-4)
    assert args.perceptual == "gradient" and args.resume is True
    js = tmp_path / "c.json"
    js.write_text('{"batch-size": 12, "data": "digits"}')
    args = parse_with_config(tokenizer_parser(), ["--config", str(js)])
    assert args.batch_size == 12 and args.data == "digits"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("stepz: 3\n", "unknown option 'stepz'"),
        ("steps: many\n", "bad value"),
        ("perceptual: lpips\n", "must be one of"),
        ("resume: 3\n", "true or false"),
        ("- a\n- b\n", "mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path, text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=needle):
        parse_with_config(tokenizer_parser(), ["--config", str(cfg)])


def test_config_file_kinds(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config_file(str(tmp_path / "missing.yaml"))
    (tmp_path / "c.toml").write_text("x = 1")
    with pytest.raises(ValueError, match=r"\.yaml, \.yml or \.json"):
        load_config_file(str(tmp_path / "c.toml"))
    (tmp_path / "e.yaml").write_text("")
    assert load_config_file(str(tmp_path / "e.yaml")) == {}


def test_shipped_example_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    tok = parse_with_config(tokenizer_parser(), ["--config", str(root / "mini_tokenizer.yaml")])
    assert tok.preset == "mini" and tok.size == 32
    gen = parse_with_config(train_parser(), ["--config", str(root / "mini_generator.yaml")])
    assert gen.preset == "mini" and gen.parallel == "1,4,16"
    smoke = parse_with_config(tokenizer_parser(), ["--config", str(root / "tiny_smoke.json")])
    assert smoke.preset == "tiny"
