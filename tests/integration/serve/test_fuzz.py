"""Property-based API fuzz: schemathesis generates requests from /openapi.json; none may get a 500.

It runs against the real app (real LooperClient, real redis-server) in process through
ASGI, with a valid token; every response must also match the document (status code,
content type, headers, body schema), and schema-invalid requests (the negative mode)
must be refused (schemathesis's negative_data_rejection check).
Examples are bounded so the run stays short.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from looper_common.sdk import LooperClient
from looper_common.serve.app import create_app
from looper_common.serve.tokens import parse_tokens
from tests.integration.serve.conftest import ALL, TOKENS, blueprints

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(redis_url):
    return create_app(LooperClient(redis_url, blueprints=blueprints(), pointer_ttl_s=0.0), blueprints(),
                      parse_tokens(TOKENS))


POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# A GET without parameters has no invalid request to generate: the probes are fuzzed positively only.
CASES = [(path, mode) for path in ("/v1/decisions", "/v1/decisions:batch", "/v1/observations")
         for mode in (POSITIVE, NEGATIVE)] + [("/healthz", POSITIVE), ("/readyz", POSITIVE)]


@pytest.mark.parametrize(("path", "mode"), CASES)
def test_no_500_and_responses_match_the_document(app, path, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    [operation] = [op for op in (r.ok() for r in schema.get_all_operations()) if op.path == path]
    seen: list[int] = []
    # An observation's decision id must be one this server issued (or name its blueprint):
    # a rule no schema can state, so a schema-valid observation may rightly get 422.
    excluded = [checks.positive_data_acceptance] if path == "/v1/observations" else []

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case) -> None:
        response = case.call_and_validate(headers=ALL, excluded_checks=excluded)
        seen.append(response.status_code)

    fuzz()
    assert seen and 500 not in seen
