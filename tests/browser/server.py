"""A real uvicorn server for browser tests, in a background thread on 127.0.0.1.

The listening socket is bound first (port 0: the kernel picks a free port), so the settings can
carry the server's own URL as `base_url` (links in emails point back at it) before the app is
built; uvicorn then serves on that very socket, leaving no window for another process to take
the port.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import uvicorn

from drip.config import Clinic, Settings
from drip.runtime import Runtime, open_runtime
from web.app import create_app


@dataclass(frozen=True)
class LiveServer:
    url: str  # http://127.0.0.1:PORT, also settings.base_url
    runtime: Runtime
    outbox: Path  # where the outbox backend writes .eml/.html files

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


def live_settings(folder: Path, base_url: str, **changes) -> Settings:
    """Settings on a fresh SQLite file with the outbox backend, all inside `folder`."""
    return Settings(
        clinic=Clinic(),
        data_dir=folder / "data",
        outbox_dir=folder / "outbox",
        database_url=f"sqlite:///{folder / 'data' / 'drip.sqlite3'}",
        secret_key=secrets.token_urlsafe(32),
        base_url=base_url,
        backend="outbox",
    ).with_(**changes)


@contextmanager
def run_server(folder: Path, **settings_changes) -> Iterator[LiveServer]:
    """Start the whole app (public + staff pages) on a free loopback port; stop it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = open_runtime(live_settings(folder, url, **settings_changes))
    config = uvicorn.Config(create_app(runtime), log_level="warning", lifespan="on", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="drip-live-server", daemon=True)
    thread.start()
    try:
        for _ in range(200):  # at most ~10 s for start-up
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield LiveServer(url=url, runtime=runtime, outbox=runtime.settings.outbox_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        runtime.close()


def log_in(page, base: str, email: str, password: str) -> None:
    """Fill and submit the staff login form (the caller waits for the page it expects next)."""
    page.goto(f"{base}/staff/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
