"""A recording stand-in for SendGrid's Mail Send endpoint on 127.0.0.1, plus test data.

The real `sendgrid` library talks to it over real HTTP. Each request is recorded (headers, body);
answers are scripted in order (`script(Reply(429, ...), Reply(500), ...)`), or computed by a
handler, and default to 202 with an `X-Message-Id`. A stalled reply holds the connection open
longer than the client's timeout; `closed_port()` gives a port where connections are refused.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from delivery.types import OutgoingMessage, SharedContent

API_KEY = "SG.test-key.0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Reply:
    status: int = 202
    body: Any = None  # dict -> JSON, str/bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds to hold the connection before answering


def sendgrid_error(message: str, field: str | None = None) -> Reply:
    """A 400 shaped like SendGrid's own."""
    return Reply(400, {"errors": [{"message": message, "field": field, "help": None}]})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def recipients(self) -> list[str]:
        return [to["email"] for p in self.json.get("personalizations", []) for to in p.get("to", [])]


class SendGridMock:
    def __init__(self, handler: Callable[[Recorded], Reply | None] | None = None) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def accepted(self) -> list[Recorded]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def accepted_recipients(self) -> list[str]:
        return [email for r in self.accepted() for email in r.recipients]

    def __enter__(self) -> "SendGridMock":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()  # let stalled handlers finish now
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        if self.handler is not None:
            reply = self.handler(recorded)
            if reply is not None:
                return reply
        return Reply(202, headers={"X-Message-Id": f"msg-{len(self.requests)}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded("POST", self.path, dict(self.headers.items()), self.rfile.read(length))
                reply = mock._next_reply(recorded)
                recorded.status = reply.status
                with mock._lock:
                    mock.requests.append(recorded)
                if reply.stall:
                    mock._release.wait(reply.stall)
                body = reply.body
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                elif isinstance(body, str):
                    body = body.encode()
                body = body or b""
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if body:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a stall longer than its timeout)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeTime:
    """Injected sleep + clocks: retries are exercised without real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now


SHARED = SharedContent(
    key="step:7:v2",
    subject="How acupuncture eases muscle spasm",
    html="<p>Hello -name-,</p><p>Needles relax the muscle.</p><a href=\"-unsubscribe-\">Unsubscribe</a>",
    text="Hello -name-,\n\nNeedles relax the muscle.\n\nUnsubscribe: -unsubscribe-",
)


def message(
    i: int,
    shared: SharedContent | None = SHARED,
    *,
    name: str | None = None,
    email: str | None = None,
    categories: tuple[str, ...] = ("c3", "c3:s8"),
    substitutions: dict[str, str] | None = None,
    **changes: Any,
) -> OutgoingMessage:
    """Recipient number `i` of a step (shared content) or, with shared=None, a one-off email."""
    name = f"Patient {i}" if name is None else name
    url = f"https://clinic.test/u/token-{i}"
    subs = {"-name-": name, "-unsubscribe-": url} if substitutions is None else substitutions
    values: dict[str, Any] = dict(
        delivery_id=1000 + i,
        to_email=email or f"patient{i}@example.com",
        to_name=name,
        subject=shared.subject if shared else f"One-off {i}",
        html="" if shared else f"<p>Hello {name}</p>",
        text="" if shared else f"Hello {name}",
        from_email="care@riverside-clinic.example",
        from_name="Riverside Acupuncture",
        reply_to="frontdesk@riverside-clinic.example",
        unsubscribe_url=url,
        categories=categories,
        shared=shared,
        substitutions=subs if shared else {},
    )
    values.update(changes)
    return OutgoingMessage(**values)
