"""`bitdance quantize` through the dispatcher: write an int8 pipeline, --report, bad input."""

import json

import pytest

from bitdance.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err  # one line, no traceback
    return err[0]


def test_quantize_writes_a_loadable_int8_pipeline(tmp_path, capsys):
    from bitdance.quantization import load_pipeline

    out = tmp_path / "tiny-int8"
    assert main(["quantize", "--model", "random:tiny", "-o", str(out), "--scheme", "int8-weight-only"]) == 0
    assert str(out) in capsys.readouterr().out
    config = json.loads((out / "generator" / "config.json").read_text())
    assert config["quantization"]["scheme"] == "int8-weight-only"
    assert "torch" in config["quantization"]["library"]
    pipe = load_pipeline(out)
    res = pipe(class_labels=[3], num_sampling_steps=2, output_type="bits", seed=1)
    assert res.bits.shape == (1, 16, 4, 4)
    # a second run refuses to overwrite, --force replaces
    assert main(["quantize", "--model", "random:tiny", "-o", str(out)]) == 2
    assert "not empty" in _err(capsys)
    assert main(["quantize", "--model", "random:tiny", "-o", str(out), "--force"]) == 0
    assert (
        json.loads((out / "generator" / "config.json").read_text())["quantization"]["scheme"]
        == "int8-dynamic"
    )
    # by default the tokenizer's encoder and decoder convolutions are int8 too; fp32 on request
    mods = json.loads((out / "tokenizer" / "config.json").read_text())["quantization"]["modules"]
    assert {m.split(".")[0] for m in mods} == {"encoder", "decoder"}
    gen_only = tmp_path / "gen-only"
    assert main(["quantize", "--model", "random:tiny", "-o", str(gen_only), "--decoder", "fp32",
                 "--encoder", "fp32"]) == 0  # fmt: skip
    assert "quantization" not in json.loads((gen_only / "tokenizer" / "config.json").read_text())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "random:tiny", "--scheme", "int4"], "unknown --scheme 'int4'; supported"),
        (["--model", "random:tiny"], "give an output folder"),
        (["--model", "random:tiny", "-o", "x", "--decoder", "int4"], "--decoder must be fp32 or int8"),
        (["--model", "random:tiny", "-o", "x", "--encoder", "fp16"], "--encoder must be fp32 or int8"),
        (["--model", "random:tiny", "-o", "x", "--modules", "nope.*"], "no Linear layer matches"),
        (["--report", "--model", "random:tiny", "--batch-sizes", "1,x"], "--batch-sizes must look like"),
        (["--report", "--model", "random:tiny", "--samples", "0"], "--samples must be"),
        (["--report", "--model", "random:tiny", "-o", "x"], "--report does not write a model"),
        (["--model", "no-such-model", "-o", "x"], "neither a local folder nor a shipped model"),
    ],
)
def test_quantize_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", *argv]) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "x").exists()


def test_quantize_report_measures_without_faking(tmp_path, capsys):
    path = tmp_path / "report.json"
    argv = [
        "quantize",
        "--report",
        "--model",
        "random:tiny",
        "--no-rss",
        "--batch-sizes",
        "1",
        "--repeats",
        "1",
        "--steps",
        "2",
        "--samples",
        "2",
        "--json",
        str(path),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| generator |" in text and "batch_1" in text
    rep = json.loads(path.read_text())
    assert rep["sizes"]["generator"]["int8_bytes"] < rep["sizes"]["generator"]["fp32_bytes"]
    assert rep["speed"]["batch_1"]["fp32_images_per_s"] > 0 and rep["speed"]["batch_1"]["speedup"] > 0
    assert rep["rss"] == {"status": "skipped (--no-rss)"}
    assert 0.0 <= rep["agreement"]["bits_equal"] <= 1.0
    assert rep["decoder_int8"]["psnr_int8_vs_fp32_db"] > 30
    assert 0.9 <= rep["encoder_int8"]["bits_equal"] <= 1.0
    assert rep["options"]["decoder"] == rep["options"]["encoder"] == "int8"
    # class model: adherence is not measured (text only); FID_cls is measured or says why not
    assert rep["adherence"] == {"status": "not measured: adherence needs a text-to-image model"}
    assert "increase" in rep["fid_cls"] or rep["fid_cls"]["status"].startswith("not measured")
    assert "untrained head" in rep["agreement"]["note"]
    assert set(rep["targets"]) >= {">= 1.5x images/s at batch 1", "adherence drop <= 2 points"}


@pytest.mark.slow
def test_rss_probe_runs_in_a_fresh_process(tmp_path):
    from bitdance.pipeline import BitDancePipeline
    from bitdance.quantization.report import probe_rss

    BitDancePipeline.from_preset("tiny").save_pretrained(tmp_path / "m")
    res = probe_rss(tmp_path / "m", batch=1, steps=2)
    assert res["rss_after_load_mib"] > res["rss_after_import_mib"] > 0
    assert res["peak_generate_mib"] >= res["rss_after_load_mib"] * 0.9
