"""Fuzz the REST API against its own OpenAPI document with schemathesis, in process (ASGI).

Every operation in /api/v1/openapi.json gets schema-valid (positive) and schema-breaking
(negative) requests with a live token: none may answer with a 5xx. Then every operation, called
without a token, must answer 401: a new endpoint that forgets the auth dependency fails here.
Examples per operation are bounded so the file runs in seconds.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.factories import make_campaign, make_subscriber
from tests.web.api_helpers import API, bearer, new_token
from web.app import create_app

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}


@pytest.fixture
def app(runtime, clock):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=2, every=timedelta(days=1))
        make_campaign(s, "draft-series", n_items=1, publish=False)
        for i in range(3):
            make_subscriber(s, f"p{i}@example.org", name=f"Patient {i}")
    return create_app(runtime, clock=clock)


def operations(app):
    schema = schemathesis.openapi.from_asgi(f"{API}/openapi.json", app)
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) == 9, [op.label for op in ops]  # the document lists every endpoint
    return ops


def test_no_input_makes_a_server_error(runtime, app):
    headers = bearer(new_token(runtime))
    for op in operations(app):
        for mode, n in EXAMPLES.items():

            @settings(max_examples=n, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case):
                # Positive cases must get past auth with our token (else they test nothing but the 401);
                # negative ones may drop or break the Authorization header on purpose.
                case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
                response = case.call(headers=headers)
                case.validate_response(response, checks=[not_a_server_error])
                if mode is GenerationMode.POSITIVE:
                    assert response.status_code != 401, f"{op.label}: the valid token was refused"

            check()


def test_every_operation_in_the_document_requires_a_token(runtime, app):
    for op in operations(app):

        @settings(max_examples=3, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            response = case.call()
            assert response.status_code == 401, f"{op.label} answered {response.status_code} without a token"
            assert response.headers["www-authenticate"][0].startswith("Bearer")

        check()
