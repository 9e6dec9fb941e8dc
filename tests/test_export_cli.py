"""`bitdance export` through the dispatcher: bad input exits 2 with one line; --check and --run."""

import pytest

from bitdance.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err  # one line, no traceback
    return err[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "random:tiny"], "give an export folder"),
        (["--model", "random:tiny", "-o", "e", "--size", "big"], "--size must look like"),
        (["--model", "random:tiny", "-o", "e", "--opset", "3"], "--opset must be in"),
        (["--run", "missing-dir", "-o", "a.png", "--class", "1"], "manifest.json not found"),
        (["--model", "random:tiny", "-o", "e", "--steps", "0"], "--steps must be"),
        (["a prompt", "--model", "random:tiny", "-o", "e"], "only used with --run"),
    ],
)
def test_export_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    pytest.importorskip("onnxscript")
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 2
    assert message in _err(capsys)
    assert not (tmp_path / "e").exists() and not (tmp_path / "a.png").exists()


@pytest.mark.slow
def test_export_check_and_run_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "onnx"
    assert main(["export", "--model", "random:tiny", "-o", str(folder), "--check", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "check: bits equal 100.0%" in out and "(ok;" in out
    png = tmp_path / "img.png"
    assert (
        main(["export", "--run", str(folder), "--class", "2", "--seed", "1", "--steps", "3", "-o", str(png)])
        == 0
    )
    from PIL import Image

    assert Image.open(png).size == (16, 16)
    assert main(["export", "--run", str(folder), "a prompt", "-o", str(png)]) == 2
    assert "class-conditional" in capsys.readouterr().err
