"""The `webuiapi` client (AUTOMATIC1111 API) against a live server: txt2img, img2img (+ mask), png-info."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
webuiapi = pytest.importorskip("webuiapi")
httpx = pytest.importorskip("httpx")
from PIL import Image  # noqa: E402
from test_server_support import live_server, one_thread, tiny_pipe  # noqa: E402, F401

from bitdance.server import ServerConfig, create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = {"width": 16, "height": 16, "steps": 2}


@pytest.fixture(scope="module")
def server():
    app = create_app(tiny_pipe(), ServerConfig(max_queue=16))
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def api(server):
    host, port = server.removeprefix("http://").split(":")
    return webuiapi.WebUIApi(host=host, port=int(port))


def test_basic_calls(api):
    models = api.util_get_model_names()
    assert models == [api.get_options()["sd_model_checkpoint"]]
    assert "Euler a" in api.util_get_sampler_names()
    api.util_set_model(models[0])  # set_options with the served model is accepted
    assert api.get_progress()["progress"] == 0.0


def test_txt2img_maps_seed_batch_and_cfg(api):
    r = api.txt2img(prompt="a red square", seed=11, batch_size=2, n_iter=2, cfg_scale=3.0, **SIZE)
    assert len(r.images) == 4 and r.images[0].size == (16, 16)
    assert r.info["all_seeds"] == [11, 12, 13, 14] and r.info["cfg_scale"] == 3.0
    assert r.info["sampler_name"] == "Euler a" and r.info["ignored_fields"] == []
    again = api.txt2img(prompt="a red square", seed=11, **SIZE)
    assert np.array_equal(np.asarray(again.image), np.asarray(r.images[0]))  # same seed, same image
    euler = api.txt2img(prompt="a red square", seed=11, sampler_name="Euler", **SIZE)
    assert euler.info["sampler_name"] == "Euler"
    assert "Sampler: euler" in euler.info["infotexts"][0]


def test_txt2img_reports_ignored_and_refuses_unsupported(api, server):
    r = api.txt2img(prompt="a cat", restore_faces=True, s_churn=0.5, **SIZE)
    assert r.info["ignored_fields"] == ["restore_faces", "s_churn"]
    for body, param in (
        ({"enable_hr": True}, "enable_hr"),
        ({"sampler_name": "DPM++ 2M"}, "sampler_name"),
        ({"width": 512, "height": 512}, "size"),
        ({"styles": ["mine"]}, "styles"),
        ({"script_name": "x/y/z plot"}, "script_name"),
        ({"subseed_strength": 0.3}, "subseed_strength"),
        ({"no_such_field": 1}, "no_such_field"),
    ):
        got = httpx.post(server + "/sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 2, **body})
        assert got.status_code == 400, (body, got.text)
        assert got.json()["error"]["param"] == param, (body, got.json())


def test_img2img_with_white_mask_inpaints(api):
    src = api.txt2img(prompt="a red square", seed=5, **SIZE).image
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (0, 0, 16, 8))  # white top half = repaint
    r = api.img2img(images=[src], mask_image=mask, prompt="a blue square", seed=1, **SIZE)
    assert r.image.size == (16, 16)
    assert "denoising_strength" in r.info["ignored_fields"]
    recipe = json.loads(r.image.info["bitdance"])
    assert recipe["edit"]["mode"] == "inpaint" and recipe["edit"]["regenerated_tokens"] > 0


def test_img2img_without_mask_rerolls_by_denoising_strength(api):
    src = api.txt2img(prompt="a red square", seed=5, **SIZE).image
    r = api.img2img(images=[src], prompt="a red square", denoising_strength=0.5, seed=2, **SIZE)
    recipe = json.loads(r.image.info["bitdance"])
    assert recipe["edit"]["mode"] == "vary" and recipe["edit"]["denoising_strength"] == 0.5
    assert recipe["edit"]["from_step"] >= 1


def test_png_info_reads_our_parameters(api):
    img = api.txt2img(prompt="a red square", seed=9, **SIZE).image
    r = api.png_info(img)
    assert r.info.startswith("a red square") and "Seed: 9" in r.info
    assert r.json["parameters"]["Seed"] == "9" and r.json["items"]["bitdance"]["seed"] == 9
