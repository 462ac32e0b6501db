"""`drip serve`: a real uvicorn server on loopback, started and stopped within the test."""

from __future__ import annotations

import threading
import time

import httpx
from typer.testing import CliRunner

from drip.cli import app as cli_app
from drip.commands.serve import build_server


def test_server_answers_on_loopback(sqlite_runtime):
    server = build_server(sqlite_runtime, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded wait for start-up (at most ~10 s)
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert r.headers["x-frame-options"] == "DENY" and "server" not in r.headers
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_serve_rejects_a_bad_port():
    result = CliRunner().invoke(cli_app, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "65535" in result.output
