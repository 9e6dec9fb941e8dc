"""The web page in headless Chromium (Playwright + Debian's /usr/bin/chromium): prompt -> progress -> gallery.

Run: pytest -m browser tests/test_server_browser.py   (needs `pip install playwright` and `apt-get install
chromium`; never `playwright install`).
"""

from __future__ import annotations

import io
import os
import time

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
from test_server_support import GatedPipe, live_server, one_thread, tiny_pipe  # noqa: E402, F401

from bitdance.server import ServerConfig, create_app  # noqa: E402

CHROMIUM = os.environ.get("BITDANCE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
]


def wait_js(page, expr: str, timeout: float = 60.0) -> None:
    """Poll a JS expression from Python (the page's CSP forbids the in-page eval of wait_for_function)."""
    end = time.monotonic() + timeout
    while not page.evaluate(expr):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {expr}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.mark.browser_smoke  # the default test run (and CI) includes this one
def test_type_prompt_generate_and_see_the_image(browser):
    app = create_app(tiny_pipe(), ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:")) else None)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        assert "random:tiny-text" in page.text_content("#model-info")
        page.fill("#prompt", "a red sneaker")
        page.fill("#seed", "42")
        page.fill("#steps", "2")
        page.fill("#n", "2")
        page.click("#generate")
        page.wait_for_selector("#gallery .card img", timeout=60_000)
        wait_js(
            page,
            "[...document.querySelectorAll('#gallery .card img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
        )
        cards = page.query_selector_all("#gallery .card")
        assert len(cards) == 2
        widths = page.eval_on_selector_all("#gallery .card img", "imgs => imgs.map(i => i.naturalWidth)")
        assert widths == [16, 16]
        metas = [c.query_selector(".meta").text_content() for c in cards]
        assert "seed 42" in metas[0] and "seed 43" in metas[1] and "2 steps" in metas[0]
        assert cards[0].query_selector(".prompt").text_content() == "a red sneaker"
        link = cards[0].query_selector("a[download]")
        assert link.get_attribute("download") == "bitdance-42.png" and "/v1/files/" in link.get_attribute(
            "href"
        )
        assert "done" in page.text_content("#status")
        assert '"prompt": "a red sneaker"' in cards[0].query_selector("pre").text_content()
        assert cards[0].query_selector(".cut") is None
        # a prompt past the model's 8 text tokens: the unused words are shown under the image
        page.fill("#prompt", "a red sneaker on a white table next to a blue hat")
        page.fill("#n", "1")
        page.click("#generate")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 3")
        cut = page.query_selector("#gallery .card .cut")
        assert cut is not None and '"to a blue hat"' in cut.text_content()
        assert not errors and not outside


def test_template_form_and_error_message(browser):
    app = create_app(tiny_pipe(), ServerConfig(max_n=2))
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#template').options.length > 1")
        page.select_option("#template", "garment")
        assert page.is_hidden("#prompt-row") and page.is_visible("#vars")
        page.fill("#vars input[data-var=colour]", "blue")
        page.fill("#vars input[data-var=item]", "coat")
        page.fill("#steps", "2")
        page.click("#generate")
        page.wait_for_selector("#gallery .card img", timeout=60_000)
        assert page.text_content("#gallery .card .prompt") == "a blue coat"
        page.fill("#vars input[data-var=item]", "")  # the page shows the API's error naming the field
        page.click("#generate")
        page.wait_for_selector("#status.error")
        assert page.text_content("#status").startswith("variables:") and "item" in page.text_content(
            "#status"
        )


def test_cancel_from_the_page(browser):
    gated = GatedPipe(tiny_pipe(), hold=30)
    app = create_app(gated, ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        page.fill("#prompt", "a slow cat")
        page.fill("#steps", "2")
        page.click("#generate")
        gated.reached.wait(30)
        page.wait_for_selector("#cancel:not([disabled])")
        page.click("#cancel")
        wait_js(page, "document.querySelector('#status').textContent === 'cancelled'")
        gated.gate.set()
        assert app.state.bd.metrics.jobs.value(status="cancelled") == 1
        assert page.query_selector("#gallery .card") is None


# ----------------------------------------------------------------------------- recipes, editing, defects
def _fetch(base: str, href: str) -> bytes:
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(urllib.parse.urljoin(base + "/", href), timeout=30) as r:
        return r.read()


def _drop_file(page, data: bytes, name: str) -> None:
    """Drop a file on the page the way a user's drag and drop does (a DataTransfer with one File)."""
    import base64

    dt = page.evaluate_handle(
        """([b64, name]) => {
            const bin = atob(b64);
            const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "image/png" }));
            return dt;
        }""",
        [base64.b64encode(data).decode("ascii"), name],
    )
    page.dispatch_event("main", "drop", {"dataTransfer": dt})


def _cards(page) -> int:
    return page.evaluate("document.querySelectorAll('#gallery .card').length")


def test_drop_a_png_refills_the_form_and_replays_it_byte_identical(browser):
    app = create_app(tiny_pipe(), ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        page.fill("#prompt", "a green hat")
        page.fill("#negative", "blurry")
        page.fill("#seed", "7")
        page.fill("#steps", "2")
        page.fill("#cfg", "2.5")
        page.click("#generate")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 1")
        first = _fetch(url, page.get_attribute("#gallery .card a[download]", "href"))
        page.fill("#prompt", "something else")  # the drop must overwrite the form
        page.fill("#seed", "")
        page.fill("#steps", "5")
        _drop_file(page, first, "hat.png")
        wait_js(page, "!document.querySelector('#recipe-note').hidden")
        assert page.input_value("#prompt") == "a green hat"
        assert page.input_value("#negative") == "blurry"
        assert page.input_value("#seed") == "7" and page.input_value("#steps") == "2"
        assert float(page.input_value("#cfg")) == 2.5 and page.input_value("#size") == "16x16"
        assert "Replay makes the same image again" in page.text_content("#recipe-note")
        assert page.is_visible("#editor")  # a dropped image can also be edited
        page.click("#replay")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 2")
        again = _fetch(url, page.get_attribute("#gallery .card a[download]", "href"))
        assert again == first  # same recipe, same model -> the same PNG bytes
        # a PNG without a recipe is opened for editing only, and says so
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (10, 200, 10)).save(buf, format="PNG")
        _drop_file(page, buf.getvalue(), "plain.png")
        wait_js(page, "document.querySelector('#recipe-note').textContent.includes('plain.png')")
        assert "no BitDance recipe" in page.text_content("#recipe-note") and page.is_hidden("#replay")
        assert not errors


def _wide_pipe():
    """A tiny text model with sin-cos head positions: 16x16 ... 32x32, so it can outpaint."""
    import dataclasses

    import torch

    from bitdance.core.configs import get_preset
    from bitdance.generator.text_encoder import HashTextEncoder
    from bitdance.generator.transformer import BitDanceTransformer
    from bitdance.pipeline import BitDancePipeline
    from bitdance.tokenizer.autoencoder import BinaryAutoencoder

    torch.manual_seed(0)
    gcfg = dataclasses.replace(get_preset("generator", "tiny-text"), head_pos="sincos")
    return BitDancePipeline(
        BinaryAutoencoder(get_preset("tokenizer", "tiny")),
        BitDanceTransformer(gcfg),
        HashTextEncoder(32, 8),
        name="wide",
    )


def _paint(page, points) -> None:
    box = page.query_selector("#edit-mask").bounding_box()
    page.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=6)
    page.mouse.up()


def test_inpaint_and_outpaint_with_the_mask_brush(browser, tmp_path):
    app = create_app(_wide_pipe(), ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        page.select_option("#size", "16x16")
        page.fill("#prompt", "a red circle")
        page.fill("#seed", "3")
        page.fill("#steps", "1")
        page.click("#generate")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 1")
        page.click("#gallery .card button.edit")
        wait_js(page, "!document.querySelector('#editor').hidden")
        assert "16x16" in page.text_content("#edit-source")
        page.click("#edit-go")  # nothing painted yet: a clear message, no request
        assert "paint the area" in page.text_content("#status.error")
        assert _cards(page) == 1
        _paint(page, [(0.1, 0.1), (0.45, 0.1), (0.45, 0.45), (0.1, 0.45)])
        painted = page.evaluate(
            "(() => { const c = document.querySelector('#edit-mask');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()"
        )
        assert 10 < painted < 16 * 16 / 2, painted  # the stroke covers part of the top-left quarter
        assert page.query_selector("#status.error") is None  # painting cleared the stale message
        shots = os.environ.get("BITDANCE_SCREENSHOTS")  # a folder to keep the screenshots in
        page.screenshot(path=os.path.join(shots or str(tmp_path), "mask.png"), full_page=True)
        page.fill("#prompt", "a blue square")
        page.click("#edit-go")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 2")
        meta = page.text_content("#gallery .card pre")
        assert '"mode": "inpaint"' in meta and '"prompt": "a blue square"' in meta
        assert "done: 1 edited image" in page.text_content("#status")
        href = page.get_attribute("#gallery .card a[download]", "href")
        assert href.startswith("data:image/png;base64,")
        # outpaint onto a wider canvas (WIDTHxHEIGHT)
        page.select_option("#edit-mode", "outpaint")
        page.click("#clear-mask")
        page.select_option("#edit-size", "32x16")
        page.click("#edit-go")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 3")
        wait_js(page, "document.querySelector('#gallery .card img').naturalWidth > 0")
        dims = page.evaluate(
            "(() => { const i = document.querySelector('#gallery .card img');"
            " return [i.naturalWidth, i.naturalHeight]; })()"
        )
        assert dims == [32, 16]
        assert '"mode": "outpaint"' in page.text_content("#gallery .card pre")
        page.screenshot(
            path=os.environ.get("BITDANCE_SCREENSHOT", str(tmp_path / "edit.png")), full_page=True
        )
        assert not errors


def test_errors_name_the_field_once_and_do_not_go_stale(browser):
    app = create_app(tiny_pipe(), ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        page.fill("#prompt", "")
        page.fill("#steps", "2")
        page.click("#generate")
        page.wait_for_selector("#status.error")
        text = page.text_content("#status")
        assert "prompt" in text and not text.startswith("prompt: prompt"), text
        page.fill("#prompt", "a cat")
        page.click("#generate")
        wait_js(page, "document.querySelectorAll('#gallery .card').length === 1")
        assert (
            page.text_content("#status").startswith("done") and page.query_selector("#status.error") is None
        )
        r = page.request.get(url + "/favicon.ico")
        assert r.status == 200 and r.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in r.body()


def test_cancel_clears_the_previews(browser):
    gated = GatedPipe(tiny_pipe(), hold=30)
    app = create_app(gated, ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        page.fill("#prompt", "a slow cat")
        page.fill("#steps", "2")
        page.evaluate("document.querySelector('#previews').append(new Image())")  # as a preview event would
        page.click("#generate")
        gated.reached.wait(30)
        page.wait_for_selector("#cancel:not([disabled])")
        page.click("#cancel")
        wait_js(page, "document.querySelector('#status').textContent === 'cancelled'")
        gated.gate.set()
        assert page.evaluate("document.querySelectorAll('#previews img').length") == 0
        assert page.evaluate("document.querySelector('#progress').value") == 0


def test_open_an_image_from_disk_for_editing(browser):
    from PIL import Image

    app = create_app(tiny_pipe(), ServerConfig())
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        wait_js(page, "document.querySelector('#size').options.length > 0")
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 20, 20)).save(buf, format="JPEG")
        page.set_input_files(
            "#upload", files=[{"name": "red.jpg", "mimeType": "image/jpeg", "buffer": buf.getvalue()}]
        )
        wait_js(page, "!document.querySelector('#editor').hidden")
        assert "red.jpg" in page.text_content("#edit-source") and "opened for editing" in page.text_content(
            "#recipe-note"
        )
        # outpainting needs a larger supported size; this model has only 16x16, so it is not offered
        assert page.evaluate("document.querySelector('#edit-mode option[value=outpaint]').disabled")
