"""HTTP API: OpenAI-compatible generation, batches, templates, errors, security, metrics (tiny model)."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from test_server_support import one_thread, tiny_pipe  # noqa: E402, F401

from bitdance.core.blank import NON_BLANK_PATTERN  # noqa: E402
from bitdance.server import ServerConfig, create_app  # noqa: E402

FAST = {"steps": 2}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def client():
    app = create_app(tiny_pipe(), ServerConfig(max_queue=8))
    with TestClient(app) as c:
        yield c


def png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_models_health_openapi(client):
    card = client.get("/v1/models").json()["data"][0]
    assert card["id"] == "random:tiny-text" and card["object"] == "model"
    assert card["sizes"] == ["16x16"] and card["parallel_nums"] == [1, 4, 16]
    assert card["limits"]["max_n"] == 4 and card["text_tokens"] == 8
    assert client.get(f"/v1/models/{card['id']}").json()["model_hash"] == card["model_hash"]
    assert client.get("/v1/models/other").status_code == 404
    h = client.get("/health")
    assert h.status_code == 200 and h.json()["ready"] and h.json()["live"]
    assert client.get("/health/live").status_code == 200
    schema = client.get("/openapi.json").json()
    for path in (
        "/v1/images/generations",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/models",
        "/metrics",
        "/health",
    ):
        assert path in schema["paths"], path
    props = schema["components"]["schemas"]["ImageRequest"]["properties"]
    assert {
        "model",
        "prompt",
        "n",
        "size",
        "response_format",
        "seed",
        "steps",
        "guidance_scale",
        "negative_prompt",
        "template",
        "parallel_num",
    } <= set(props)
    assert client.get("/docs").status_code == 404  # Swagger UI would load a CDN: off


def test_prompt_past_the_text_length_is_reported(client):
    long = "a red sneaker on a white table next to a blue hat and a green scarf"  # 8 words fit
    r = client.post("/v1/images/generations", json={"prompt": [long, "a red sneaker"], **FAST})
    assert r.status_code == 200, r.text
    first, second = r.json()["data"]
    assert first["metadata"]["prompt_ignored_text"] == "to a blue hat and a green scarf"
    assert "prompt_ignored_text" not in second["metadata"]


def test_generate_b64_with_seeds_and_metadata(client):
    r = client.post("/v1/images/generations", json={"prompt": "a red sneaker", "n": 2, "seed": 7, **FAST})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["seed"] for d in body["data"]] == [7, 8] and [d["index"] for d in body["data"]] == [0, 1]
    for d in body["data"]:
        img = png(d["b64_json"])
        assert img.size == (16, 16) and img.format == "PNG"
        recipe = json.loads(img.text["bitdance"])  # provenance chunk travels with the image
        assert recipe["prompt"] == "a red sneaker" and recipe["seed"] == d["seed"]
        assert d["metadata"]["num_sampling_steps"] == 2 and d["metadata"]["model_hash"]
        assert d["revised_prompt"] == "a red sneaker"
    again = client.post("/v1/images/generations", json={"prompt": "a red sneaker", "n": 2, "seed": 7, **FAST})
    assert [d["b64_json"] for d in again.json()["data"]] == [d["b64_json"] for d in body["data"]]
    other = client.post("/v1/images/generations", json={"prompt": "a red sneaker", "seed": 9, **FAST}).json()
    assert other["data"][0]["b64_json"] != body["data"][0]["b64_json"]


def test_random_seed_is_reported(client):
    d = client.post("/v1/images/generations", json={"prompt": "a cat", **FAST}).json()["data"][0]
    assert isinstance(d["seed"], int) and d["metadata"]["seed"] == d["seed"]


def test_url_response_and_files(client):
    r = client.post("/v1/images/generations", json={"prompt": "a cat", "response_format": "url", **FAST})
    url = r.json()["data"][0]["url"]
    assert url.startswith("http://testserver/v1/files/") and url.endswith(".png")
    f = client.get(url)
    assert f.status_code == 200 and f.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(f.content)).size == (16, 16)
    for bad in (
        "/v1/files/nope.png",
        "/v1/files/..%2F..%2Fetc%2Fpasswd",
        "/v1/files/%2Fetc%2Fpasswd.png",
        "/v1/files/" + "A" * 32 + ".png",
    ):
        r = client.get(bad)
        assert r.status_code == 404 and "error" in r.json(), bad


def test_batch_prompts_in_order(client):
    prompts = ["a red sneaker", "a blue shirt", "a green bag"]
    r = client.post("/v1/images/generations", json={"prompt": prompts, "n": 2, "seed": 100, **FAST})
    data = r.json()["data"]
    assert [d["revised_prompt"] for d in data] == [p for p in prompts for _ in range(2)]
    assert [d["seed"] for d in data] == list(range(100, 106))
    solo = client.post("/v1/images/generations", json={"prompt": "a blue shirt", "seed": 102, **FAST}).json()
    assert solo["data"][0]["b64_json"] == data[2]["b64_json"]  # batch position does not change the image


def test_template_with_variable_sets(client):
    templates = {t["name"]: t for t in client.get("/v1/templates").json()["data"]}
    assert templates["garment"]["variables"] == ["colour", "item"]
    assert templates["product"]["defaults"]["style"]  # defaults are published (the page shows them)
    sets = [{"colour": "red", "item": "sneaker"}, {"colour": "blue", "item": "coat"}]
    r = client.post(
        "/v1/images/generations", json={"template": "garment", "variables": sets, "seed": 1, **FAST}
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["revised_prompt"] for d in data] == ["a red sneaker", "a blue coat"]
    assert data[1]["metadata"]["template"] == "garment" and data[1]["metadata"]["variables"] == sets[1]
    bad = client.post(
        "/v1/images/generations", json={"template": "garment", "variables": [sets[0], {"colour": "x"}]}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "variables[1]"
    assert "item" in bad.json()["error"]["message"]


MB_PROMPT = "a" * 1_000_000


@pytest.mark.parametrize(
    "body,param,status",
    [
        (b'{"prompt": "a cat"', "body", 400),  # malformed JSON
        (b'["a cat"]', "body", 400),  # not an object
        (b'{"prompt": "a cat", "n": "2"}', "n", 400),  # no silent coercion
        (b'{"prompt": 5}', "prompt", 400),
        (b'{"prompt": "a cat", "n": 1000}', "n", 400),
        (b'{"prompt": "a cat", "n": 5}', "n", 400),  # over the server's max_n
        (b'{"prompt": "a cat", "n": 0}', "n", 400),
        (b'{"prompt": "a cat", "size": "4096x4096"}', "size", 400),
        (b'{"prompt": "a cat", "size": "32x32"}', "size", 400),  # not supported by this model
        (b'{"prompt": "a cat", "size": "big"}', "size", 400),
        (b'{"prompt": "a cat", "steps": 100000}', "steps", 400),
        (b'{"prompt": "a cat", "steps": 51}', "steps", 400),  # over the server's max_steps
        (b'{"prompt": "a cat", "steps": -3}', "steps", 400),
        (b'{"prompt": "a cat", "seed": -1}', "seed", 400),
        (b'{"prompt": "a cat", "guidance_scale": NaN}', "guidance_scale", 400),
        (b'{"prompt": "a cat", "guidance_scale": -1}', "guidance_scale", 400),
        (b'{"prompt": "a cat", "parallel_num": 3}', "parallel_num", 400),
        (b'{"prompt": "' + MB_PROMPT.encode() + b'"}', "prompt", 400),
        (b'{"prompt": "\xff\xfe bad utf8"}', "body", 400),
        (b'{"prompt": "a cat", "model": "dall-e-3"}', "model", 400),
        (b'{"template": "nope", "variables": {"a": "b"}}', "template", 400),
        (b'{"prompt": "a cat", "quality": "ultra"}', "quality", 400),  # outside the spec: named
        (b'{"prompt": "   "}', "prompt", 400),
        (b'{"prompt": []}', "prompt", 400),
        (b'{"prompt": ["ok", ""]}', "prompt[1]", 400),
        (b'{"n": 1}', "prompt", 400),
        (b'{"prompt": "a cat", "response_format": "png"}', "response_format", 400),
        (b'{"prompt": "a cat", "variables": {"a": "b"}}', "variables", 400),
        (b'{"prompt": "a cat", "negative_prompt": ""}', "negative_prompt", 400),
    ],
)
def test_bad_input_names_the_field(client, body, param, status):
    r = client.post("/v1/images/generations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text[:300]
    err = r.json()["error"]
    assert err["param"] == param, err
    assert err["type"] == "invalid_request_error" and err["message"]


def test_body_size_limit():
    app = create_app(tiny_pipe(), ServerConfig(max_body_bytes=1000))
    with TestClient(app) as c:
        r = c.post("/v1/images/generations", json={"prompt": "x" * 2000})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_content_filter_blocks_with_category_and_rule(client):
    before = client.get("/metrics").text
    r = client.post("/v1/images/generations", json={"prompt": ["a cat", "heil hitler"]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "content_policy_violation" and err["param"] == "prompt[1]"
    assert "hate" in err["message"] and "hate.nazi" in err["message"]
    assert r.headers["x-filter-rule"] == "hate.nazi"
    after = client.get("/metrics").text
    assert 'bitdance_filter_blocks_total{category="hate"}' in after
    assert after.count("filter_blocks_total{") >= before.count("filter_blocks_total{")


def test_filter_warn_mode_records_verdict():
    with TestClient(create_app(tiny_pipe(), ServerConfig(filter_mode="warn"))) as c:
        r = c.post("/v1/images/generations", json={"prompt": "heil hitler", **FAST})
        assert r.status_code == 200
        verdict = r.json()["data"][0]["metadata"]["filter"]
        assert verdict["allowed"] and verdict["rule"] == "hate.nazi"


def test_api_keys():
    key = "sk-test-0123456789"
    with TestClient(create_app(tiny_pipe(), ServerConfig(api_keys=[key]))) as c:
        assert c.get("/v1/models").status_code == 401
        r = c.get("/v1/models", headers={"Authorization": "Bearer wrong-key-123"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        assert c.post("/v1/jobs", json={"prompt": "a cat"}).status_code == 401
        ok = {"Authorization": f"Bearer {key}"}
        assert c.get("/v1/models", headers=ok).status_code == 200
        r = c.post(
            "/v1/images/generations", json={"prompt": "a cat", "response_format": "url", **FAST}, headers=ok
        )
        assert c.get(r.json()["data"][0]["url"]).status_code == 200  # capability URL: no key needed
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200
        assert "bearer" in json.dumps(c.get("/openapi.json").json()["components"]).lower()


def test_cors_off_by_default_and_configurable(client):
    pre = {"Origin": "https://example.com", "Access-Control-Request-Method": "POST"}
    r = client.options("/v1/images/generations", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    assert (
        "access-control-allow-origin"
        not in client.get("/v1/models", headers={"Origin": "https://x.org"}).headers
    )
    with TestClient(create_app(tiny_pipe(), ServerConfig(cors_origins=["https://example.com"]))) as c:
        r = c.options("/v1/images/generations", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://example.com"


def test_unknown_route_and_method_are_json(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = client.put("/v1/images/generations", json={})
    assert r.status_code == 405 and "error" in r.json()


def test_class_conditional_model():
    with TestClient(create_app(tiny_pipe("tiny"), ServerConfig())) as c:
        r = c.post("/v1/images/generations", json={"prompt": ["3", "0"], "seed": 0, **FAST})
        assert r.status_code == 200, r.text
        assert [d["metadata"]["class_label"] for d in r.json()["data"]] == [3, 0]
        r = c.post("/v1/images/generations", json={"prompt": "a cat"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
        r = c.post("/v1/images/generations", json={"prompt": "1", "negative_prompt": "x"})
        assert r.json()["error"]["param"] == "negative_prompt"


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text  # no CDN, nothing external
    assert "https://" not in r.text and "http://" not in r.text


def test_metrics_exposition(client):
    client.post("/v1/images/generations", json={"prompt": "a cat", "n": 3, **FAST})
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples["bitdance_images_generated_total"] >= 3
    assert samples["bitdance_queue_depth"] == 0
    assert samples['bitdance_jobs_total{status="succeeded"}'] >= 1
    buckets = [v for k, v in samples.items() if k.startswith("bitdance_job_latency_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == samples["bitdance_job_latency_seconds_count"]
    assert 'bitdance_http_requests_total{route="/v1/images/generations",status="200"}' in samples
    for kind in (
        "# TYPE bitdance_queue_depth gauge",
        "# TYPE bitdance_http_request_duration_seconds histogram",
        "# TYPE bitdance_filter_blocks_total counter",
    ):
        assert kind in text


def test_structured_json_logs(client):
    from bitdance.server.logs import JSONFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("bitdance.server")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.post("/v1/images/generations", json={"prompt": "a secret prompt", **FAST})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    req = [x for x in lines if x.get("event") == "request"]
    assert req and req[-1]["status"] == 200 and req[-1]["route"] == "/v1/images/generations"
    assert req[-1]["request_id"] and req[-1]["ts"].endswith("Z") and req[-1]["level"] == "info"
    queued = [x for x in lines if x.get("event") == "job_queued"]
    assert queued and queued[0]["prompt_chars"] == [15]
    assert "a secret prompt" not in stream.getvalue()  # prompts are not logged unless log_prompts is set


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}/{i}")


def test_openapi_is_a_json_schema_contract(client):
    schema = client.get("/openapi.json").json()
    bad = [p for p, k, _ in _walk(schema) if k in ("ge", "le", "gt", "lt") and not p.endswith("properties")]
    assert not bad, bad[:5]
    codes = {c for ops in schema["paths"].values() for op in ops.values() for c in op["responses"]}
    assert "422" not in codes and "401" not in codes  # no API keys here: a 401 cannot happen
    assert "400" not in schema["paths"]["/v1/models"]["get"]["responses"]  # nothing to get wrong
    body = schema["components"]["schemas"]["ImageRequest"]
    assert body["dependentRequired"] == {"variables": ["template"]}
    assert {"anyOf": [{"required": ["prompt"]}, {"required": ["template"]}]} in body["allOf"]
    assert body["properties"]["prompt"]["anyOf"][0]["pattern"] == NON_BLANK_PATTERN
    assert body["properties"]["n"]["maximum"] == 4 and isinstance(body["properties"]["n"]["maximum"], int)


def test_unsupported_method_lists_every_allowed_one(client):
    r = client.options("/v1/jobs/job_x")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_template_variable_longer_than_its_share_is_refused(client):
    r = client.post(
        "/v1/images/generations",
        json={"template": "garment", "variables": {"colour": "r" * 495, "item": "x"}},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "variables.colour"
