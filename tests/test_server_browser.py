"""The web page in headless Chromium (Playwright + Debian's /usr/bin/chromium): prompt -> progress -> gallery.

Run: pytest -m browser tests/test_server_browser.py   (needs `pip install playwright` and `apt-get install
chromium`; never `playwright install`).
"""

from __future__ import annotations

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
