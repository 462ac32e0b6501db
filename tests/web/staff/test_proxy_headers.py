"""X-Forwarded-For is believed only from a configured proxy (DRIP_TRUSTED_PROXIES, default none)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from drip.commands.serve import build_server
from drip.config import load_settings
from drip.errors import ConfigurationError
from tests.web.staff.conftest import login
from web.app import create_app


def _client(runtime, clock, **changes) -> TestClient:
    rt = type(runtime)(settings=runtime.settings.with_(**changes), engine=runtime.engine, sessions=runtime.sessions)
    # The connection comes from loopback, as from anything else running on the clinic's server.
    return TestClient(create_app(rt, clock=clock), base_url="https://clinic.test", client=("127.0.0.1", 40001))


def _spoofed_failures(client, n: int) -> list[int]:
    codes = []
    for i in range(n):
        client.headers["X-Forwarded-For"] = f"203.0.113.{i + 1}"  # a new "address" for every guess
        codes.append(login(client, password="wrong password!").status_code)
    return codes


@contextlib.contextmanager
def _real_server(runtime, **changes) -> Iterator[httpx.Client]:
    """`drip serve`'s own uvicorn server on 127.0.0.1, port 0: the connection really is from loopback."""
    rt = type(runtime)(settings=runtime.settings.with_(base_url="http://127.0.0.1", **changes), engine=runtime.engine,
                       sessions=runtime.sessions)
    server = build_server(rt, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded wait for start-up (at most ~10 s)
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_spoofed_header_from_loopback_does_not_bypass_the_login_limit(runtime, staff_user):
    with _real_server(runtime) as client:
        assert _spoofed_failures(client, 6) == [200] * 5 + [429]


def test_real_server_honours_a_configured_proxy(runtime, staff_user):
    with _real_server(runtime, trusted_proxies="127.0.0.1") as client:
        assert _spoofed_failures(client, 6) == [200] * 6


def test_header_from_a_configured_proxy_is_the_client_address(runtime, staff_user, clock):
    with _client(runtime, clock, trusted_proxies="127.0.0.1, 10.0.0.0/8") as client:
        # Behind the proxy these really are six people: none is held back by the others' failures...
        assert _spoofed_failures(client, 6) == [200] * 6
        # ...and one address is still limited on its own.
        client.headers["X-Forwarded-For"] = "198.51.100.7"
        assert [login(client, password="wrong password!").status_code for _ in range(6)] == [200] * 5 + [429]
        client.headers["X-Forwarded-For"] = "198.51.100.8"
        assert login(client).status_code == 303


def test_uvicorn_itself_does_not_trust_forwarded_headers(sqlite_runtime):
    config = build_server(sqlite_runtime, "127.0.0.1", 0, log_level="warning").config
    assert config.proxy_headers is False


def test_a_bad_proxy_setting_fails_at_start_up(tmp_path):
    env = {"DRIP_TRUSTED_PROXIES": "127.0.0.1, localhost", "DRIP_CONFIG": str(tmp_path / "none.toml")}
    with pytest.raises(ConfigurationError, match="'localhost' is not an IP address"):
        load_settings(env)
    assert load_settings({**env, "DRIP_TRUSTED_PROXIES": "::1, 10.0.0.0/8"}).trusted_proxies == "::1, 10.0.0.0/8"


def test_the_audit_log_records_the_address_the_action_came_from(runtime, staff_user, clock):
    """#14 item 3: who, when, what and the IP. Behind a configured proxy, the patient-facing
    proxy's client; otherwise the connection's own address, whatever X-Forwarded-For claims."""
    from sqlalchemy import select

    from drip.models import AuditEntry

    def last_ip() -> str:
        with runtime.sessions() as s:
            return s.scalar(select(AuditEntry.ip).order_by(AuditEntry.id.desc()).limit(1))

    with _client(runtime, clock, trusted_proxies="127.0.0.1") as client:
        client.headers["X-Forwarded-For"] = "198.51.100.23"
        assert login(client, password="wrong password!").status_code == 200
        assert last_ip() == "198.51.100.23"  # the failed login
        assert login(client).status_code == 303
        assert last_ip() == "198.51.100.23"
    with _client(runtime, clock) as client:  # no proxy configured: the header is not believed
        client.headers["X-Forwarded-For"] = "198.51.100.99"
        assert login(client).status_code == 303
        assert last_ip() == "127.0.0.1"
