"""An app per test on the `runtime` database (SQLite + PostgreSQL), driven by Starlette's TestClient."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from subscribers.tokens import TokenSigner
from tests.web.seed import T0
from web.app import create_app


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock(T0)


def _client_factory(runtime, clock):
    clients = []

    def build(**settings_changes) -> TestClient:
        rt = runtime
        if settings_changes:
            rt = type(runtime)(settings=runtime.settings.with_(**settings_changes), engine=runtime.engine,
                               sessions=runtime.sessions)
        client = TestClient(create_app(rt, clock=clock), base_url="https://clinic.test")
        client.__enter__()
        clients.append(client)
        return client

    def close() -> None:
        for c in clients:
            c.__exit__(None, None, None)

    return build, close


@pytest.fixture
def make_client(runtime, clock):
    """Build a client for this runtime with changed settings (e.g. a webhook key)."""
    build, close = _client_factory(runtime, clock)
    yield build
    close()


@pytest.fixture
def sqlite_client(sqlite_runtime, clock):
    """For checks that do not depend on the database (headers, styles, error pages)."""
    build, close = _client_factory(sqlite_runtime, clock)
    yield build()
    close()


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def signer(runtime):
    return TokenSigner(runtime.settings.secret_key)
