"""The official `openai` client against a live server: generations, edits (mask), variations, streaming."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
from PIL import Image  # noqa: E402
from test_server_support import live_server, one_thread, tiny_pipe  # noqa: E402, F401

from bitdance.server import ServerConfig, create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"steps": 2}


@pytest.fixture(scope="module")
def server():
    app = create_app(tiny_pipe(), ServerConfig(max_queue=16, moderation_low_mode="warn"))
    with live_server(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def decode(b64: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    im.load()
    return im


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def first_png(client, **kw) -> bytes:
    r = client.images.generate(prompt="a red square", extra_body={**FAST, "seed": 3}, **kw)
    return base64.b64decode(r.data[0].b64_json)


def test_generate_with_every_default_field_front_ends_send(client):
    r = client.images.generate(
        model="random:tiny-text",
        prompt="a red square",
        n=2,
        size="16x16",
        quality="high",
        style="vivid",
        background="auto",
        moderation="auto",
        output_format="png",
        output_compression=100,
        user="u-1",
        extra_body=FAST,
    )
    assert len(r.data) == 2 and r.output_format == "png" and r.size == "16x16"
    assert decode(r.data[0].b64_json).size == (16, 16)
    extra = r.model_extra or {}
    assert extra["ignored_fields"] == ["output_compression", "quality", "style", "user"]


@pytest.mark.parametrize("fmt,pil", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_format_and_compression(client, fmt, pil):
    small = client.images.generate(prompt="a cat", output_format=fmt, output_compression=5, extra_body=FAST)
    big = client.images.generate(prompt="a cat", output_format=fmt, output_compression=100, extra_body=FAST)
    im = decode(small.data[0].b64_json)
    assert im.format == pil and small.output_format == fmt
    assert len(base64.b64decode(small.data[0].b64_json)) < len(base64.b64decode(big.data[0].b64_json))


def test_url_response_keeps_the_format(client, server):
    import httpx

    r = client.images.generate(prompt="a cat", response_format="url", output_format="jpeg", extra_body=FAST)
    url = r.data[0].url
    assert url.endswith(".jpeg")
    got = httpx.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert httpx.get(url[: -len(".jpeg")] + ".png").status_code == 404  # the extension must match


@pytest.mark.parametrize(
    "kw,param",
    [
        ({"output_format": "gif"}, "output_format"),
        ({"output_format": "bmp"}, "output_format"),
        ({"quality": "ultra"}, "quality"),
        ({"moderation": "none"}, "moderation"),
        ({"partial_images": 4, "stream": True}, "partial_images"),
        ({"output_compression": 101}, "output_compression"),
        ({"n": 0}, "n"),
    ],
)
def test_values_outside_the_spec_are_refused_by_name(client, kw, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(prompt="a cat", **kw)
    err = e.value.body
    assert err["param"] == param and err["type"] == "invalid_request_error", err


def test_frame_count_is_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(prompt="a cat", extra_body={"frame_count": 4})
    assert e.value.body["param"] == "frame_count" and "GIF" in e.value.body["message"]


def test_moderation_low_maps_to_the_servers_relaxed_mode(server, client):
    # the recipe records the filter mode that ran
    auto = client.images.generate(prompt="a cat", extra_body=FAST)
    low = client.images.generate(prompt="a cat", moderation="low", extra_body=FAST)
    mode = (auto.data[0].model_extra or {})["metadata"]["filter"]["mode"]
    low_mode = (low.data[0].model_extra or {})["metadata"]["filter"]["mode"]
    assert (mode, low_mode) == ("block", "warn")


def test_streaming_partial_images_then_completed(client):
    events = list(
        client.images.generate(
            prompt="a red square", stream=True, partial_images=2, extra_body={"steps": 2, "parallel_num": 1}
        )
    )
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"], kinds
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    done = events[-1]
    assert decode(done.b64_json).size == (16, 16) and done.output_format == "png"
    assert done.usage.output_tokens > 0 and done.size == "16x16"
    assert decode(events[0].b64_json).size == (16, 16)


def test_streaming_without_partials_sends_only_completed(client):
    events = list(client.images.generate(prompt="a cat", stream=True, extra_body=FAST))
    assert [e.type for e in events] == ["image_generation.completed"]


def test_edit_with_mask_keeps_the_unmasked_tokens(client):
    src = first_png(client)
    mask = Image.new("RGBA", (16, 16), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 16, 8))  # transparent top half = edit
    r = client.images.edit(
        image=("in.png", src, "image/png"),
        mask=("mask.png", png_bytes(mask), "image/png"),
        prompt="a blue square",
        n=2,
        size="16x16",
        extra_body=FAST,
    )
    assert len(r.data) == 2
    meta = r.data[0].model_extra["metadata"]
    assert meta["edit"]["mode"] == "inpaint" and meta["edit"]["regenerated_tokens"] > 0
    keep = meta["known"]
    assert keep  # the kept tokens are recorded in the recipe (replayable)
    out = np.asarray(decode(r.data[0].b64_json).convert("RGB")).astype(int)
    assert out.shape == (16, 16, 3)


def test_edit_without_mask_uses_transparency_or_rerolls(client):
    src = Image.open(io.BytesIO(first_png(client))).convert("RGBA")
    plain = client.images.edit(image=("in.png", png_bytes(src), "image/png"), prompt="a cat", extra_body=FAST)
    assert plain.data[0].model_extra["metadata"]["edit"]["mode"] == "reroll"
    a = np.asarray(src).copy()
    a[8:, :, 3] = 0
    holed = client.images.edit(
        image=[("a.png", png_bytes(Image.fromarray(a)), "image/png"), ("b.png", png_bytes(src), "image/png")],
        prompt="a cat",
        extra_body=FAST,
    )
    assert holed.data[0].model_extra["metadata"]["edit"]["mode"] == "inpaint"
    assert "image[1:]" in holed.model_extra["ignored_fields"]


def test_edit_streams_image_edit_events(client):
    src = first_png(client)
    mask = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    events = list(
        client.images.edit(
            image=("in.png", src, "image/png"),
            mask=("m.png", png_bytes(mask), "image/png"),
            prompt="a cat",
            stream=True,
            partial_images=1,
            extra_body={"parallel_num": 1, "steps": 2},
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


@pytest.mark.parametrize(
    "mask,param",
    [
        (Image.new("RGB", (16, 16)), "mask"),  # no alpha channel
        (Image.new("RGBA", (16, 16), (0, 0, 0, 255)), "mask"),  # nothing transparent
        (Image.new("RGBA", (8, 8)), "mask"),  # wrong size
    ],
)
def test_bad_masks_are_refused_by_name(client, mask, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(
            image=("in.png", first_png(client), "image/png"),
            mask=("m.png", png_bytes(mask), "image/png"),
            prompt="a cat",
        )
    assert e.value.body["param"] == param


def test_edit_refuses_non_images_and_unsupported_sizes(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(image=("x.png", b"not an image", "image/png"), prompt="a cat")
    assert e.value.body["param"] == "image"
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(
            image=("x.png", png_bytes(Image.new("RGB", (20, 20))), "image/png"), prompt="a cat"
        )
    assert e.value.body["param"] == "image" and "16x16" in e.value.body["message"]


def test_variations_of_a_bitdance_png(client):
    src = first_png(client)
    r = client.images.create_variation(image=("in.png", src, "image/png"), n=2)
    assert len(r.data) == 2
    meta = r.data[0].model_extra["metadata"]
    assert meta["edit"]["mode"] == "vary" and meta["prompt"] == "a red square"
    with pytest.raises(openai.BadRequestError) as e:  # no recipe: no prompt to vary with
        client.images.create_variation(image=("x.png", png_bytes(Image.new("RGB", (16, 16))), "image/png"))
    assert e.value.body["code"] == "no_recipe"
