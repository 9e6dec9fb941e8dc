"""`bitdance eval` / `bitdance bench` end to end on the tiny random preset, and their input errors."""

import json
import subprocess
import sys
import time

import pytest
import torch

from bitdance.cli import main
from bitdance.evaluation.classifier import classifier_paths


def _fashion_available() -> bool:
    try:
        from bitdance.data.fashion_mnist import load_fashion_arrays

        load_fashion_arrays("test")
        return True
    except FileNotFoundError:
        return False


needs_fashion = pytest.mark.skipif(not _fashion_available(), reason="needs apt dataset-fashion-mnist")


def _report(folder):
    data = json.loads((folder / "report.json").read_text())
    assert (folder / "report.md").read_text().startswith("# ")
    assert data["files"]["plots"] and all((folder / p).stat().st_size > 0 for p in data["files"]["plots"])
    assert not list(folder.glob(".*tmp"))  # atomic writes leave no temp files
    rec = data["recipe"]
    assert rec["machine"]["cpu"] and rec["versions"]["torch"] and rec["command"].startswith("bitdance")
    return data


def _fid_args(tmp_path, feats):
    return [
        "eval",
        "fid",
        "--model",
        "random:tiny-text",
        "--n",
        "8",
        "--features",
        feats,
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "fid"),
    ]


@needs_fashion
def test_eval_tokenizer_and_fid_on_tiny_preset(tmp_path, capsys):
    start = time.perf_counter()
    assert (
        main(
            ["eval", "tokenizer", "--model", "random:tiny-text", "--n", "24", "--out", str(tmp_path / "tok")]
        )
        == 0
    )
    tok = _report(tmp_path / "tok")["results"]
    assert tok["images"] == 24 and tok["bits_per_pixel"] == 1.0 and len(tok["groups"]) == 2
    assert 0 < tok["psnr_db"] < 100 and -1 <= tok["ssim"] <= 1
    feats = "cls" if classifier_paths("fashion")[0].is_file() else "effnet"
    assert main(_fid_args(tmp_path, feats)) == 0
    fid = _report(tmp_path / "fid")
    res = fid["results"]
    assert (
        set(res["features"]) == {feats} and res["features"][feats]["fid"] > 0
    )  # random weights: far from data
    assert fid["recipe"]["model_hash"] and fid["recipe"]["sampling"]["num_sampling_steps"] == 1
    if feats == "cls":
        assert res["classifier"]["is_fake"] >= 1 and 0 <= res["classifier"]["class_accuracy_fake"] <= 1
    assert time.perf_counter() - start < 120
    assert "FID" in capsys.readouterr().out


@needs_fashion
@pytest.mark.slow
def test_eval_fid_effnet_and_reference_cache(tmp_path):
    args = _fid_args(tmp_path, "effnet")
    assert main(args) == 0
    res = _report(tmp_path / "fid")["results"]
    assert not res["features"]["effnet"]["reference_cache"]["hit"]
    assert main(args) == 0  # second run: reference statistics come from the cache
    again = json.loads((tmp_path / "fid" / "report.json").read_text())["results"]
    assert again["features"]["effnet"]["reference_cache"]["hit"]
    assert again["features"]["effnet"]["fid"] == pytest.approx(res["features"]["effnet"]["fid"], rel=1e-5)


def test_eval_adherence_on_tiny_preset(tmp_path):
    suite = tmp_path / "s.jsonl"
    suite.write_text(
        '{"prompt": "three yellow squares", "category": "counting", "expect": {"domain": "shapes", '
        '"objects": '
        '[{"shape": "square", "colour": "yellow", "count": 3}]}}\n'
        '{"prompt": "a red circle above a blue square", "category": "position", "expect": '
        '{"domain": "shapes", '
        '"objects": [{"shape": "circle", "colour": "red"}, {"shape": "square", "colour": "blue"}], '
        '"relation": "above"}}\n'
    )
    out = tmp_path / "adh"
    assert (
        main(
            [
                "eval",
                "adherence",
                "--model",
                "random:tiny-text",
                "--prompts",
                str(suite),
                "--seeds",
                "0,1",
                "--steps",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = _report(out)
    assert data["results"]["summary"]["images"] == 4 and data["recipe"]["seeds"] == [0, 1]
    assert {"adherence.png", "samples.png"} <= set(data["files"]["plots"])


def test_bench_speed_on_tiny_preset(tmp_path):
    out = tmp_path / "bench"
    assert (
        main(
            [
                "bench",
                "--model",
                "random:tiny-text",
                "--batch-sizes",
                "1,2",
                "--parallel",
                "1,16",
                "--steps",
                "1",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--peak-size",
                "256",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = _report(out)["results"]
    rows = {(r["parallel_num"], r["batch_size"]): r for r in res["rows"]}
    assert set(rows) == {(1, 1), (1, 2), (16, 1), (16, 2)}
    assert rows[(1, 1)]["ar_steps_per_image"] == 16 and rows[(16, 1)]["ar_steps_per_image"] == 1
    assert rows[(1, 1)]["head_evaluations_per_image"] == 16 * 2  # AR steps x (1 head step + final Euler)
    assert res["peak_gflops"] > 0 and all(
        r["gflop_per_image"] > 0 and r["peak_rss_mib"] > 0 for r in rows.values()
    )
    # FLOPs per image hardly depend on P (same tokens, same network); steps do not
    assert rows[(16, 1)]["gflop_per_image"] == pytest.approx(rows[(1, 1)]["gflop_per_image"], rel=0.5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "fid", "--model", "random:tiny-text", "--n", "1"], "--n must be >= 2"),
        (["eval", "fid", "--model", "random:tiny-text", "--features", "clip"], "unknown feature network"),
        (["eval", "fid", "--model", "random:tiny-text", "--features", "inception"], "--inception-weights"),
        (["eval", "fid", "--model", "random:tiny-text", "--data", "mnist"], "unknown dataset 'mnist'"),
        (["eval", "fid", "--model", "random:tiny-text", "--data-option", "tint"], "KEY=VALUE"),
        (["eval", "tokenizer"], "exactly one of --tokenizer"),
        (["eval", "adherence", "--model", "random:tiny-text", "--prompts", "missing.jsonl"], "not found"),
        (["bench", "--model", "random:tiny-text", "--parallel", "3"], "not supported"),
        (["bench", "--model", "random:tiny-text", "--vs-diffusion"], "--baseline"),
        (
            ["bench", "--model", "random:tiny-text", "--vs-diffusion", "--baseline", "nowhere"],
            "not a trained baseline",
        ),
        (["eval", "fid", "--model", "no-such-model"], "neither a local folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    if "--baseline" in argv and "nowhere" in argv:
        pytest.importorskip("diffusers")
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "o" / "report.json").exists()


def test_malformed_prompt_file_names_line_and_field(tmp_path, capsys):
    suite = tmp_path / "bad.jsonl"
    suite.write_text(
        '{"prompt": "a red sneaker", "category": "colour", "expect": {"domain": "fashion", '
        '"class": "sneaker", "colour": "red"}}\n\n'
        '{"prompt": "a teal sneaker", "category": "colour", "expect": {"domain": "fashion", '
        '"class": "sneaker", "colour": "teal"}}\n'
    )
    assert main(["eval", "adherence", "--model", "random:tiny-text", "--prompts", str(suite)]) == 2
    err = capsys.readouterr().err
    assert f"{suite}:3: field 'expect.colour': unknown colour 'teal'" in err


def test_real_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bitdance.cli",
            "eval",
            "fid",
            "--model",
            "random:tiny-text",
            "--features",
            "nope",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: unknown feature network")


def test_tokenizer_folder_option(tmp_path):
    pytest.importorskip("sklearn")
    from bitdance.checkpoint import save_pretrained
    from bitdance.core.configs import get_preset
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    torch.manual_seed(0)
    save_pretrained(BinaryAutoencoder(get_preset("tokenizer", "tiny")), tmp_path / "tok")
    assert (
        main(
            [
                "eval",
                "tokenizer",
                "--tokenizer",
                str(tmp_path / "tok"),
                "--data",
                "digits",
                "--n",
                "8",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    data = _report(tmp_path / "r")
    assert data["recipe"]["data"]["dataset"] == "digits" and data["results"]["image_size"] == [16, 16]


def test_eval_adherence_scores_a_prompt_the_filter_would_refuse(tmp_path, capsys):
    suite = tmp_path / "s.jsonl"
    suite.write_text(
        '{"prompt": "a red circle, gore", "category": "colour", "expect": {"domain": "shapes", '
        '"objects": [{"shape": "circle", "colour": "red"}]}}\n'
    )
    base = ["eval", "adherence", "--model", "random:tiny-text", "--prompts", str(suite), "--seeds", "0"]
    base += ["--steps", "1"]
    assert main([*base, "--out", str(tmp_path / "warn")]) == 0  # default: warn, drawn and scored
    data = _report(tmp_path / "warn")
    assert data["recipe"]["filter_mode"] == "warn" and data["results"]["summary"]["images"] == 1
    capsys.readouterr()
    assert main([*base, "--filter-mode", "block", "--out", str(tmp_path / "block")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "content filter" in err[0]
