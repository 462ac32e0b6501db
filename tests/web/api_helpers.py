"""Shared by the REST API tests: a live token in the test database and its header."""

from __future__ import annotations

from web.api_tokens import create_token

API = "/api/v1"

# Every operation of the API, with a path that exists once `seed_api` ran (ids 1).
OPERATIONS = [
    ("POST", "/subscribers", {"email": "x@example.org"}),
    ("GET", "/subscribers", None),
    ("GET", "/subscribers/1", None),
    ("PATCH", "/subscribers/1", {"name": "X"}),
    ("DELETE", "/subscribers/1", None),
    ("POST", "/subscribers/1/enrollments", {"campaign": "onboarding"}),
    ("POST", "/subscribers/1/enrollments/onboarding/stop", {"reason": "booked"}),
    ("POST", "/subscribers/1/events", {"name": "appointment_booked"}),
    ("GET", "/campaigns", None),
    ("GET", "/attributes", None),
    ("POST", "/campaigns/onboarding/enrollments", {"subscriber_ids": [1]}),
    ("GET", "/deliveries", None),
]


def new_token(runtime, name: str = "booking-system") -> str:
    with runtime.sessions.begin() as s:
        return create_token(s, name)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
