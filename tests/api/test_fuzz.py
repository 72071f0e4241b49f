"""Schema-driven fuzzing: schemathesis makes requests from the OpenAPI
document, valid ones and invalid ones, and the API must never answer with a
server error, and must answer in the documented shape and content type.

Bounded (``EXAMPLES`` per operation and mode, derandomized) so that it
takes well under a minute and finds the same things on every run. The app
runs on a broker no worker reads: a request that does start something only
queues it. (schemathesis' pytest plugin does not run under pytest 9 yet, so
each operation's strategy is driven by hypothesis here.)
"""

from __future__ import annotations

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from webapp.config import celery_config

from ..conftest import QUEUE_KEYS, SPARE_REDIS_URL

EXAMPLES = 25
TOKEN = "fuzz-token-0123456789abcdef0123456789abcdef"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture
def api_schema(app_factory, tmp_path):
    app = app_factory(CELERY=celery_config(SPARE_REDIS_URL, tmp_path), API_SSE_HEARTBEAT=0.2,
                      API_SSE_POLL_INTERVAL=0.1, API_SSE_LOG_DELAY=0.0, API_AUTH="token", API_TOKENS=[TOKEN])
    yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    app.extensions["execlog"].close(timeout=10)
    redis.Redis.from_url(SPARE_REDIS_URL).delete(*QUEUE_KEYS)


def takes_input(operation) -> bool:
    return any(len(parameters) for parameters in (operation.path_parameters, operation.query,
                                                  operation.headers)) or bool(list(operation.body))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_the_api_fail(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 11
    for operation in operations:
        if operation.path == "/readyz":
            continue  # takes no input, and is meant to answer 503 here: no worker reads this broker
        if mode is GenerationMode.NEGATIVE and not takes_input(operation):
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(checks=CHECKS, headers={"Authorization": f"Bearer {TOKEN}"})

        call()
