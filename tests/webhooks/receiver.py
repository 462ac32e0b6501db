"""A real HTTP receiver on 127.0.0.1 (a thread) that verifies every Standard Webhooks signature.

Each request is checked with the `standardwebhooks` library against every secret in
`receiver.secrets`; `verified` counts requests one of them verified, `bad` those none did. The
first `fail_first` requests (per webhook-id) are answered 500, then 200.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0
    verify: bool = True
    received: list[Received] = field(default_factory=list)
    tries: Counter = field(default_factory=Counter)
    verified: int = 0
    bad: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drip?x=1"

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        by = []
        if self.verify:
            for secret in list(self.secrets):
                try:
                    Webhook(secret).verify(body, headers)
                    by.append(secret)
                except WebhookVerificationError:
                    pass
        msg = headers.get("webhook-id", "")
        with self.lock:
            self.received.append(Received(headers, body, by))
            if by:
                self.verified += 1
            elif self.verify:
                self.bad += 1
            self.tries[msg] += 1
            n = self.tries[msg]
        return 500 if n <= self.fail_first else 200

    def ok(self) -> list[Received]:
        return [r for r in self.received if r.verified_by]


def start_receiver(**kw) -> Receiver:
    rec = Receiver(**kw)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            code = rec.handle({k.lower(): v for k, v in self.headers.items()}, body)
            out = b"ok" if code == 200 else b"try later"
            self.send_response(code)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.server = server
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return rec


def stop_receiver(rec: Receiver) -> None:
    if rec.server is not None:
        rec.server.shutdown()
        rec.server.server_close()
