"""A stand-in for SendGrid's Mail Send endpoint for benchmarks, in a process of its own.

It reads each body, counts personalizations and answers 202 with an `X-Message-Id`; `GET /stats`
returns the counts. A separate process, like the real remote API, so its work does not take the
measured process's interpreter lock (only the client's side is measured).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


def serve() -> None:
    """Run the sink; print its port on the first line of stdout."""
    counts = {"requests": 0, "personalizations": 0, "bytes": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            counts["requests"] += 1
            counts["bytes"] += len(body)
            counts["personalizations"] += body.count(b'"delivery_id"')
            self.send_response(202)
            self.send_header("X-Message-Id", f"bench-{counts['requests']}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            data = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class LoopbackSink:
    """`with LoopbackSink() as sink:` -> `sink.url`, `sink.stats()`; the process ends on exit."""

    def __enter__(self) -> "LoopbackSink":
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.loopback_sink"], stdout=subprocess.PIPE, text=True,
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        ready, _, _ = select.select([self._process.stdout], [], [], 30)
        port = self._process.stdout.readline().strip() if ready else ""
        if not port.isdigit():
            self.__exit__()
            raise RuntimeError("benchmark sink did not start within 30 s")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as response:
            return json.loads(response.read())

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()  # our own child, by its handle
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process.stdout.close()


if __name__ == "__main__":
    serve()
