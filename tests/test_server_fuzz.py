"""Schemathesis against the published OpenAPI schema: no 5xx, documented statuses and bodies, no crash.

The fast variant runs a few deterministic examples per operation; the slow one many random ones
(`pytest -m slow tests/test_server_fuzz.py`).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402
from test_server_support import one_thread, tiny_pipe  # noqa: E402, F401

from bitdance.pipeline import BitDancePipeline  # noqa: E402
from bitdance.server import ServerConfig, create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# small limits keep every accepted generation cheap; the queue is large so fuzzing never sees a 429
_base = tiny_pipe()
PIPE = BitDancePipeline(
    _base.tokenizer, _base.generator, _base.text_encoder, defaults={"num_sampling_steps": 2}, name=_base.name
)
APP = create_app(
    PIPE,
    ServerConfig(
        max_n=2, max_steps=3, max_prompts=3, max_images_per_request=4, max_queue=1000, job_timeout_s=60
    ),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
SUPPRESS = [
    HealthCheck.too_slow,
    HealthCheck.filter_too_much,
    HealthCheck.data_too_large,
    HealthCheck.function_scoped_fixture,
]


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=SUPPRESS)
def test_fuzz_fast(case):
    case.call_and_validate(checks=CHECKS)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=SUPPRESS)
def test_fuzz_many(case):
    case.call_and_validate(checks=CHECKS)
