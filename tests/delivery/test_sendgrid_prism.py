"""Contract check: our real request against Prism serving SendGrid's own OpenAPI description.

Prism validates each request against the spec and answers 400 with the reasons in its
`sl-violations` header, or 202 when the shape is right; it also demands the Bearer scheme.
It is a shape check beside the mock-server tests, not a SendGrid: e.g. the spec types top-level
`custom_args` as a string (a spec bug), which is one more reason drip keeps them per
personalization. Prism is installed with npm once into `.drip/prism` (git-ignored; override with
DRIP_PRISM_HOME) and started once per session on a free loopback port.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from delivery.backends.sendgrid import JSON_CONTENT_TYPE, SendGridBackend, encode_body
from delivery.backends.sendgrid_payload import build_payload
from tests.conftest import FIXTURES, need
from tests.delivery.sendgrid_mock import API_KEY, FakeTime, message

pytestmark = pytest.mark.prism

REPO = Path(__file__).resolve().parents[2]
SPEC = FIXTURES / "sendgrid-oai" / "tsg_mail_v3.json"  # vendored with its licence
PRISM_PACKAGE = "@stoplight/prism-cli@5"
PRISM_HOME = Path(os.environ.get("DRIP_PRISM_HOME", REPO / ".drip" / "prism"))


def _prism_binary() -> Path:
    binary = PRISM_HOME / "node_modules" / ".bin" / "prism"
    need(shutil.which("node") is not None, "node not installed (needed for the Prism mock)")
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    need(npm is not None, "npm not installed (needed to install the Prism mock)")
    PRISM_HOME.mkdir(parents=True, exist_ok=True)
    with open(PRISM_HOME / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test sessions running side by side install it once
        if not binary.exists():
            done = subprocess.run(
                [npm, "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error",
                 "--prefix", str(PRISM_HOME), "--cache", str(PRISM_HOME / ".npm-cache"), PRISM_PACKAGE],
                capture_output=True, text=True, timeout=240,
            )
            need(done.returncode == 0 and binary.exists(),
                 f"npm install {PRISM_PACKAGE} failed: {done.stderr.strip()[-300:]}")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prism_url(tmp_path_factory):
    need(SPEC.exists(), f"SendGrid OpenAPI spec not found at {SPEC}")
    binary = _prism_binary()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Prism exited with {proc.returncode}: {log_path.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Prism did not listen on port {port} within 60 s: {log_path.read_text()[-500:]}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own child's process group only
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _backend(settings, url: str, **changes) -> SendGridBackend:
    fake = FakeTime()
    s = settings.with_(sendgrid_api_key=API_KEY, sendgrid_host=url, sendgrid_timeout=10.0, **changes)
    return SendGridBackend(s, sleep=fake.sleep, clock=fake.monotonic, wall_clock=fake.wall, rng=random.Random(1))


def _post(url: str, body: dict, api_key: str | None = API_KEY, *, ready_json: bool = False):
    """The library's client, to see Prism's headers (the backend only reports outcomes).
    `ready_json`: as the backend sends it (orjson text under JSON_CONTENT_TYPE)."""
    client = SendGridAPIClient(api_key=api_key, host=url)
    if api_key is None:
        client.client.request_headers.pop("Authorization")
    try:
        if ready_json:
            return client.client.mail.send.post(
                request_body=encode_body(body), request_headers={"Content-Type": JSON_CONTENT_TYPE}, timeout=10
            )
        return client.client.mail.send.post(request_body=body, timeout=10)
    except HTTPError as exc:
        return exc


def _violations(response) -> list[dict]:
    raw = response.headers.get("sl-violations") if response.headers is not None else None
    return json.loads(raw) if raw else []


def test_our_request_with_three_personalizations_matches_the_spec(settings, prism_url):
    msgs = [message(1), message(2, name="Smith, John"), message(3, name="Zoë \"Zo\" O'Brien")]
    body = build_payload(msgs).body
    for ready_json in (False, True):
        response = _post(prism_url, body, ready_json=ready_json)
        assert response.status_code == 202, _violations(response)
        assert _violations(response) == []

    results = _backend(settings, prism_url, tracking=True).send_batch(msgs)
    assert [(r.delivery_id, r.ok) for r in results] == [(1001, True), (1002, True), (1003, True)]


def test_a_one_off_message_matches_the_spec(settings, prism_url):
    (result,) = _backend(settings, prism_url).send_batch([message(9, shared=None)])
    assert result.ok, result.error


def test_prism_really_checks_shape(settings, prism_url):
    body = build_payload([message(1)]).body
    broken = {k: v for k, v in body.items() if k not in ("from", "personalizations")}
    response = _post(prism_url, broken)
    assert 400 <= response.status_code < 500
    messages = " ".join(v["message"] for v in _violations(response))
    assert "'from'" in messages and "'personalizations'" in messages

    wrong_type = {**body, "personalizations": [{**body["personalizations"][0], "to": "patient1@example.com"}]}
    for ready_json in (False, True):  # a body sent as the backend sends it is checked just the same
        response = _post(prism_url, wrong_type, ready_json=ready_json)
        assert 400 <= response.status_code < 500
        assert any("to" in v["message"] or "/to" in json.dumps(v) for v in _violations(response))


def test_prism_demands_the_bearer_key_our_backend_sends(prism_url):
    body = build_payload([message(1)]).body
    refused = _post(prism_url, body, api_key=None)
    assert refused.status_code == 401
    assert _post(prism_url, body).status_code == 202
