"""Schemathesis against the published OpenAPI schema, every check, positive and negative data.

Every operation is fuzzed with schema-valid data (which must be accepted: 2xx) and schema-invalid data
(which must be refused: 4xx), with all of schemathesis' checks (no 5xx, documented statuses, content
types, headers and bodies, positive acceptance, negative rejection, unsupported methods, ...). The one
exception: operations whose bodies carry images (multipart edits/variations, A1111 img2img, png-info)
skip positive acceptance, since a schema cannot describe a decodable image of a supported size; their
valid paths are covered by the real-client tests (test_server_openai.py, test_server_a1111.py).
The fast variant runs the fuzzing phase with 3 examples per operation; the slow one adds schemathesis'
coverage phase (boundary values, unexpected methods) and many random examples
(`pytest -m slow tests/test_server_fuzz.py`).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import GenerationMode, checks  # noqa: E402
from test_server_support import one_thread, tiny_pipe  # noqa: E402, F401

from bitdance.pipeline import BitDancePipeline  # noqa: E402
from bitdance.server import ServerConfig, create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# small limits keep every accepted generation cheap; prompts x n never exceeds the per-request image
# limit (the one rule a schema cannot state); the queue is large so fuzzing never sees a 429
_base = tiny_pipe()
PIPE = BitDancePipeline(
    _base.tokenizer, _base.generator, _base.text_encoder, defaults={"num_sampling_steps": 2}, name=_base.name
)
APP = create_app(
    PIPE,
    ServerConfig(
        max_n=2, max_steps=3, max_prompts=3, max_images_per_request=6, max_queue=1000, job_timeout_s=60
    ),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
FAST = schemathesis.openapi.from_asgi("/openapi.json", APP)  # the bounded run: fuzzing phase only
FAST.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
FAST.config.phases.coverage.enabled = False
IMAGE_BODIES = ("/v1/images/edits", "/v1/images/variations", "/sdapi/v1/img2img", "/sdapi/v1/png-info")
SUPPRESS = [
    HealthCheck.too_slow,
    HealthCheck.filter_too_much,
    HealthCheck.data_too_large,
    HealthCheck.function_scoped_fixture,
]


def _filter_refusal(response) -> bool:
    """A schema-valid prompt the content filter refuses (400, code content_policy_violation): the one
    refusal of valid data a schema cannot state. Fuzzed text is random, and the semantic layer may place
    it near a must-block example; the filter's own rates are measured by its red-team suite."""
    if response.status_code != 400:
        return False
    try:
        return response.json()["error"]["code"] == "content_policy_violation"
    except (ValueError, KeyError, TypeError):
        return False


def _validate(case) -> None:
    excluded = [checks.positive_data_acceptance] if case.operation.path in IMAGE_BODIES else []
    response = case.call()
    if _filter_refusal(response):
        excluded = [checks.positive_data_acceptance]
    case.validate_response(response, excluded_checks=excluded)


@FAST.parametrize()
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=SUPPRESS)
def test_fuzz_fast(case):
    _validate(case)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
def test_fuzz_many(case):
    _validate(case)
