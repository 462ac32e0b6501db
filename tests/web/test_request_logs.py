"""`DRIP_LOG_FORMAT=json` and the request id, through a real uvicorn server configured as `drip serve`
configures it (uvicorn's own access line included)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import httpx
import pytest
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from drip.commands.serve import build_server
from drip.logs import JsonFormatter, RequestIdFilter, configure_logging
from web.app import ROUTE_MODULES, create_app
from web.request_id import request_id_from


class Probe:
    """A routes module whose handlers log from the thread pool, and fail."""

    @staticmethod
    def routes(ctx):
        log = logging.getLogger("drip.web.probe")

        async def hello(request):
            await run_in_threadpool(lambda: log.info("working on it", extra={"step": 3}))
            return PlainTextResponse("hi")

        async def boom(request):
            raise RuntimeError("kaput")

        return [Route("/probe", hello), Route("/boom", boom)]


@pytest.fixture
def json_server(sqlite_runtime):
    stream = io.StringIO()
    root, sched = logging.getLogger(), logging.getLogger("apscheduler")
    levels = root.level, sched.level
    handler = configure_logging("json", stream=stream, force=True)
    server = build_server(sqlite_runtime, "127.0.0.1", 0, log_level="info")
    server.config.app = create_app(sqlite_runtime, route_modules=[*ROUTE_MODULES, Probe])
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", stream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        root.removeHandler(handler)
        root.setLevel(levels[0])  # no later test sees this one's logging set-up
        sched.setLevel(levels[1])


def _lines(stream) -> list[dict]:
    text = stream.getvalue()
    return [json.loads(line) for line in text.splitlines()]  # every line is one JSON object


def test_json_lines_carry_the_request_id(json_server):
    url, stream = json_server
    r = httpx.get(f"{url}/probe", headers={"X-Request-ID": "lb-7f3a.42"}, timeout=5)
    assert r.status_code == 200 and r.headers["x-request-id"] == "lb-7f3a.42"
    generated = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "x" * 500}, timeout=5).headers["x-request-id"]
    assert len(generated) == 32 and generated != "x" * 500  # too long: a fresh one instead
    failed = httpx.get(f"{url}/boom", timeout=5)
    assert failed.status_code == 500 and len(failed.headers["x-request-id"]) == 32
    time.sleep(0.2)  # the access line of the last request is written as its answer goes out

    lines = _lines(stream)
    work = [x for x in lines if x["logger"] == "drip.web.probe"]
    assert work and work[0]["request_id"] == "lb-7f3a.42" and work[0]["step"] == 3 and work[0]["level"] == "INFO"
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    assert {x["request_id"] for x in access} >= {"lb-7f3a.42", generated, failed.headers["x-request-id"]}
    crash = [x for x in lines if x["logger"] == "drip.web" and x["level"] == "ERROR"]
    assert crash and crash[0]["request_id"] == failed.headers["x-request-id"] and "kaput" in crash[0]["exception"]
    assert all(x.get("request_id") for x in access), "every access line has its request's id"


@pytest.mark.parametrize("given, kept", [
    ("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("two words", False), ("x\r\nSet-Cookie: y", False),
    ("", False), (None, False), ("ünï", False),
])
def test_request_id_from_header_only_when_sane(given, kept):
    rid = request_id_from(given)
    assert (rid == given) is kept
    if not kept:
        assert len(rid) == 32 and rid.isalnum()


def test_json_formatter_outside_a_request():
    record = logging.LogRecord("drip.dispatcher", logging.WARNING, __file__, 1, "sent %d of %d", (3, 4), None)
    RequestIdFilter().filter(record)
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "sent 3 of 4" and out["level"] == "WARNING" and "request_id" not in out
    assert out["time"].endswith("+00:00")


def test_configure_logging_leaves_a_configured_root_alone():
    assert configure_logging("json") is None  # pytest's handlers are on the root logger


def test_unknown_log_format_is_a_configuration_error():
    from drip.config import load_settings
    from drip.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="DRIP_LOG_FORMAT"):
        load_settings({"DRIP_LOG_FORMAT": "xml"})
    assert load_settings({"DRIP_LOG_FORMAT": "json", "DRIP_CONFIG": "/nonexistent.toml"}).log_format == "json"
