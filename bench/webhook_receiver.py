"""A webhook receiver for `drip bench webhooks`, run as its own process (as the clinic's booking
system would be): HTTP/1.1 keep-alive on 127.0.0.1, every request's Standard Webhooks signature
verified with the `standardwebhooks` library; `GET /stats` answers the counts as JSON.

    python -m bench.webhook_receiver SECRET [NICE]   (prints the port on the first line)

NICE (the bench gives 19): the receiver stands for the clinic's booking system, which runs on
its own machine, not on the worker's CPU. On this bench's one machine it would otherwise take a
share of the cores from the sender it is measured beside (~230 us of CPU an event, measured);
at the lowest priority it runs on what sending leaves idle, as a remote receiver's CPU would not
count at all.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main(secret: str) -> None:
    hook = Webhook(secret)
    lock = threading.Lock()
    stats = {"verified": 0, "bad": 0, "ids": set()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms delayed-ACK stall

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {"webhook-id": self.headers.get("webhook-id", ""),
                       "webhook-timestamp": self.headers.get("webhook-timestamp", ""),
                       "webhook-signature": self.headers.get("webhook-signature", "")}
            try:
                hook.verify(body, headers, json_parse=False)
                ok = True
            except WebhookVerificationError:
                ok = False
            with lock:
                stats["verified" if ok else "bad"] += 1
                if ok:
                    stats["ids"].add(headers["webhook-id"])
            self._answer(200 if ok else 400, b"ok")

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                out = {"verified": stats["verified"], "bad": stats["bad"], "unique": len(stats["ids"])}
            self._answer(200, json.dumps(out).encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        import os

        os.nice(int(sys.argv[2]))
        try:  # the bench starts it in a session of its own: its autogroup too (see webhooks.sender)
            if os.getsid(0) == os.getpid():
                with open("/proc/self/autogroup", "w") as fh:
                    fh.write(sys.argv[2])
        except OSError:
            pass
    main(sys.argv[1])
