"""AI-generated marking read back by third-party readers: exiftool (XMP) and c2pa-python (C2PA)."""

import io
import json
import shutil
import subprocess

import pytest
import torch
from PIL import Image

from bitdance.cli import main as cli
from bitdance.pipeline import BitDancePipeline, marking
from bitdance.pipeline.provenance import image_bytes, read_recipe

SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
needs_exiftool = pytest.mark.skipif(
    shutil.which("exiftool") is None, reason="exiftool (Debian libimage-exiftool-perl) not installed"
)


@pytest.fixture(autouse=True)
def no_signing_env(monkeypatch):
    for k in ("BITDANCE_C2PA", "BITDANCE_C2PA_CERT", "BITDANCE_C2PA_KEY"):
        monkeypatch.delenv(k, raising=False)
    marking._env_credentials.cache_clear()
    yield
    marking._env_credentials.cache_clear()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    torch.set_num_threads(1)
    pipe = BitDancePipeline.from_preset("tiny-text")
    out = pipe('a red <sneaker> & "box"', seed=3, num_sampling_steps=1)
    return pipe, out


def exiftool(path) -> dict:
    res = subprocess.run(
        ["exiftool", "-j", "-G1", "-XMP:all", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout)[0]


@needs_exiftool
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_exiftool_reads_the_digital_source_type(made, tmp_path, fmt):
    _, out = made
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(image_bytes(out.images[0], out.recipes[0], fmt, quality=90))
    tags = exiftool(path)
    assert tags["XMP-iptcExt:DigitalSourceType"] == SOURCE
    assert tags["XMP-xmp:CreatorTool"].startswith("bitdance ")
    with Image.open(path) as im:
        assert im.format == fmt.upper() and im.size == out.images[0].size


@needs_exiftool
def test_cli_generate_output_is_marked_and_still_replays_byte_identical(tmp_path):
    first, again = tmp_path / "a.png", tmp_path / "b.png"
    assert cli(["generate", "a cat", "--model", "random:tiny-text", "--steps", "1", "-o", str(first)]) == 0
    assert exiftool(first)["XMP-iptcExt:DigitalSourceType"] == SOURCE
    assert cli(["generate", "--replay", str(first), "-o", str(again)]) == 0
    assert again.read_bytes() == first.read_bytes()


def test_marking_is_deterministic_and_escaped(made):
    _, out = made
    recipe = dict(out.recipes[0], model='m"<x>&')
    packet = marking.xmp_packet(recipe).decode()
    assert packet == marking.xmp_packet(recipe).decode()
    assert 'CreatorTool="bitdance ' in packet and "m&quot;&lt;x&gt;&amp;" in packet
    assert image_bytes(out.images[0], out.recipes[0]) == image_bytes(out.images[0], out.recipes[0])


def test_bad_format_and_bad_env_are_refused(made, monkeypatch):
    _, out = made
    with pytest.raises(ValueError, match="one of png, jpeg, webp"):
        image_bytes(out.images[0], out.recipes[0], "gif")
    monkeypatch.setenv("BITDANCE_C2PA", "yes")
    with pytest.raises(ValueError, match="BITDANCE_C2PA must be 'test' or 'off'"):
        marking.configured_credentials()
    monkeypatch.delenv("BITDANCE_C2PA")
    monkeypatch.setenv("BITDANCE_C2PA_CERT", "/nonexistent/chain.pem")
    with pytest.raises(ValueError, match="set both"):
        marking.configured_credentials()
    monkeypatch.setenv("BITDANCE_C2PA_KEY", "/nonexistent/key.pem")
    with pytest.raises(ValueError, match="cannot read the C2PA certificate chain /nonexistent/chain.pem"):
        marking.configured_credentials()


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_c2pa_manifest_read_back_by_c2pa_reader(made, monkeypatch, tmp_path, fmt):
    c2pa = pytest.importorskip("c2pa")
    _, out = made
    monkeypatch.setenv("BITDANCE_C2PA", "test")
    data = image_bytes(out.images[0], out.recipes[0], fmt)
    store = json.loads(c2pa.Reader(marking.MIME[fmt], io.BytesIO(data)).json())
    manifest = store["manifests"][store["active_manifest"]]
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))
    created = actions["data"]["actions"][0]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == SOURCE
    assert manifest["signature_info"]["issuer"] == marking.TEST_SIGNER_ORG  # labelled as a test signer
    codes = {s["code"] for s in store.get("validation_status", [])}
    assert codes <= {"signingCredential.untrusted"}, codes  # signature and hashes valid; only trust fails
    if fmt == "png":  # the recipe and the XMP marking survive signing
        path = tmp_path / "signed.png"
        path.write_bytes(data)
        assert read_recipe(path) == out.recipes[0]
        with Image.open(path) as im:
            assert SOURCE in im.info[marking.XMP_KEY]


def test_c2pa_tampered_pixels_fail_validation(made, monkeypatch):
    c2pa = pytest.importorskip("c2pa")
    _, out = made
    monkeypatch.setenv("BITDANCE_C2PA", "test")
    data = bytearray(image_bytes(out.images[0], out.recipes[0], "png"))
    idat = data.index(b"IDAT")
    data[idat + 8] ^= 0xFF  # flip one byte of the compressed pixel data
    store = json.loads(c2pa.Reader("image/png", io.BytesIO(bytes(data))).json())
    codes = {s["code"] for s in store.get("validation_status", [])}
    assert "assertion.dataHash.mismatch" in codes, codes


@needs_exiftool
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_server_responses_are_marked(tmp_path, fmt):
    """The official openai client against a live server: every output format carries the marking."""
    pytest.importorskip("fastapi")
    openai = pytest.importorskip("openai")
    import base64

    from test_server_support import live_server, tiny_pipe

    from bitdance.server import ServerConfig, create_app

    with live_server(create_app(tiny_pipe(), ServerConfig())) as url:
        with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
            r = client.images.generate(prompt="a red square", output_format=fmt, extra_body={"steps": 1})
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(base64.b64decode(r.data[0].b64_json))
    assert exiftool(path)["XMP-iptcExt:DigitalSourceType"] == SOURCE


def test_cli_checks_the_signing_setting_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import bitdance.commands.generate as gen

    monkeypatch.setattr(gen, "load_pipeline", lambda *a, **k: pytest.fail("model loaded first"))
    monkeypatch.setenv("BITDANCE_C2PA_KEY", str(tmp_path / "key.pem"))
    assert cli(["generate", "a cat", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: set both BITDANCE_C2PA_CERT and BITDANCE_C2PA_KEY") and "\n" not in err
    assert not (tmp_path / "x.png").exists()


def test_cli_signed_output_with_the_test_signer(tmp_path, monkeypatch):
    c2pa = pytest.importorskip("c2pa")
    monkeypatch.setenv("BITDANCE_C2PA", "test")
    out = tmp_path / "signed.png"
    assert cli(["generate", "a cat", "--model", "random:tiny-text", "--steps", "1", "-o", str(out)]) == 0
    with open(out, "rb") as f:
        store = json.loads(c2pa.Reader("image/png", f).json())
    assert store["manifests"][store["active_manifest"]]["signature_info"]["issuer"] == marking.TEST_SIGNER_ORG
    assert read_recipe(out)["prompt"] == "a cat"


@needs_exiftool
def test_a1111_txt2img_images_are_marked(tmp_path):
    """An AUTOMATIC1111 txt2img response (as webuiapi reads it) carries the marking too."""
    pytest.importorskip("fastapi")
    import base64

    import httpx
    from test_server_support import live_server, tiny_pipe

    from bitdance.server import ServerConfig, create_app

    with live_server(create_app(tiny_pipe(), ServerConfig())) as url:
        r = httpx.post(url + "/sdapi/v1/txt2img", json={"prompt": "a red square", "steps": 1}, timeout=60)
    assert r.status_code == 200, r.text
    path = tmp_path / "a1111.png"
    path.write_bytes(base64.b64decode(r.json()["images"][0]))
    assert exiftool(path)["XMP-iptcExt:DigitalSourceType"] == SOURCE
