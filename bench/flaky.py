"""`drip bench flaky`: delivered emails/s through the whole dispatcher to an SMTP server that
refuses every third connection, against a healthy one, in the same run.

Both servers are aiosmtpd sinks in a process of their own (like a remote relay, so their work
does not take the measured process's interpreter lock) and both end each connection after
`PER_CONNECTION` messages, as relays cap messages per session: that is what makes a client
reconnect during a run at all. The flaky one answers every third connection with
"421 4.3.2 too busy" and closes it. Rate = flaky, baseline = healthy; rounds alternate between
them so a change in the machine's load hits both alike. Each round is a fresh SQLite database
with the same due emails, sent by `Dispatcher.tick()` with the SMTP backend as `drip run` does;
the sinks count each delivery id, so lost and duplicated emails are counted too.

Goal: >= 0.8x. A refused connection is retried at once (as a mail server tries its next MX)
instead of holding the backend, so the cost of a refusal is one more TCP handshake.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BenchResult

PER_CONNECTION = 10
REFUSE_EVERY = 3


def make_controller(counts: dict[str, Any], refuse_every: int, per_connection: int):
    """An aiosmtpd controller on 127.0.0.1:0 that refuses every `refuse_every`-th connection (0:
    none) with a 421 greeting and closes each connection after `per_connection` messages."""
    import asyncio
    import re

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    delivery_id = re.compile(rb"^X-Drip-Delivery-Id: *(\d+)", re.M | re.I)

    class Refusing(SMTP):
        async def _handle_client(self) -> None:
            await self.push("421 4.3.2 too busy, try again later")
            self.transport.close()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            counts["messages"] += 1
            found = delivery_id.search(envelope.original_content or b"")
            if found:
                did = int(found.group(1))
                counts["ids"][did] = counts["ids"].get(did, 0) + 1
            session.sent = getattr(session, "sent", 0) + 1
            if per_connection and session.sent >= per_connection:
                asyncio.get_running_loop().call_soon(server.transport.close)  # after the 250 is written
            return "250 OK"

    class Sink(Controller):
        def _trigger_server(self) -> None:
            self.port = self.server.sockets[0].getsockname()[1]  # port 0: the OS picks a free one
            super()._trigger_server()

        def factory(self) -> SMTP:
            counts["connections"] += 1
            if refuse_every and counts["connections"] % refuse_every == 0:
                counts["refused"] += 1
                return Refusing(self.handler, hostname="sink")
            return super().factory()

    return Sink(Handler(), hostname="127.0.0.1", port=0)


def _new_counts() -> dict[str, Any]:
    return {"messages": 0, "connections": 0, "refused": 0, "ids": {}}


def _sink(conn: Any, refuse_every: int, per_connection: int) -> None:
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    counts = _new_counts()
    sink = make_controller(counts, refuse_every, per_connection)
    sink.start()
    counts.update(_new_counts())  # forget the controller's readiness probe
    conn.send(sink.port)
    while True:
        command = conn.recv()
        if command == "stats":
            ids = counts["ids"]
            conn.send({"messages": counts["messages"], "connections": counts["connections"],
                       "refused": counts["refused"], "unique": len(ids),
                       "duplicates": sum(n - 1 for n in ids.values())})
        elif command == "reset":
            counts.update(_new_counts())
            conn.send("ok")
        else:
            break
    sink.stop()


class _SinkProcess:
    def __init__(self, refuse_every: int) -> None:
        self.parent, child = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(
            target=_sink, args=(child, refuse_every, PER_CONNECTION), daemon=True)
        self.proc.start()
        if not self.parent.poll(30):
            raise RuntimeError("the aiosmtpd sink did not start (is aiosmtpd installed? `pip install -e .[dev]`)")
        self.port = self.parent.recv()

    def ask(self, command: str) -> Any:
        self.parent.send(command)
        return self.parent.recv()

    def stop(self) -> None:
        self.parent.send("stop")
        self.proc.join(10)


def _round(root: Path, n: int, port: int) -> float:
    """Seconds for the dispatcher to send `n` due emails to the sink on `port`."""
    from bench.dispatch import T0, _setup
    from delivery.backends.smtp import SMTPBackend
    from delivery.dispatcher import Dispatcher

    rt = _setup(root, n, 0)
    rt.settings = rt.settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=10.0)
    try:
        with SMTPBackend(rt.settings) as backend:
            d = Dispatcher(rt, backend, clock=lambda: T0)
            start = time.perf_counter()
            sent = 0
            while sent < n:
                report = d.tick()
                sent += report.sent
                if report.backend_down:  # held by the breaker: wait for its probe, as the worker does
                    time.sleep(max(0.01, report.held_for))
                if time.perf_counter() - start > 600:
                    raise RuntimeError(f"bench flaky: only {sent} of {n} sent in 10 minutes")
            return time.perf_counter() - start
    finally:
        rt.close()


def run(quick: bool = False) -> BenchResult:
    n, rounds = (300, 2) if quick else (1000, 4)
    healthy, flaky = _SinkProcess(0), _SinkProcess(REFUSE_EVERY)
    times = {"healthy": 0.0, "flaky": 0.0}
    problems = {"lost": 0, "duplicated": 0}
    stats: dict[str, dict] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="drip-bench-flaky-") as tmp:
            for r in range(rounds):
                order = [("healthy", healthy), ("flaky", flaky)]
                for name, sink in order if r % 2 == 0 else order[::-1]:
                    sink.ask("reset")
                    times[name] += _round(Path(tmp) / f"{name}-{r}", n, sink.port)
                    got = sink.ask("stats")
                    problems["lost"] += n - got["unique"]
                    problems["duplicated"] += got["duplicates"]
                    totals = stats.setdefault(name, {"connections": 0, "refused": 0})
                    totals["connections"] += got["connections"]
                    totals["refused"] += got["refused"]
    finally:
        healthy.stop()
        flaky.stop()
    total = n * rounds
    rate, baseline = total / times["flaky"], total / times["healthy"]
    load1, load5, _ = os.getloadavg()
    return BenchResult(
        bench="flaky", unit="emails/s", rate=rate, baseline=baseline,
        label=f"SMTP server refusing every {REFUSE_EVERY}rd connection",
        baseline_label="healthy SMTP server",
        details={
            "emails": total,
            "messages_per_connection": PER_CONNECTION,
            "flaky_connections": stats["flaky"]["connections"],
            "flaky_refused": stats["flaky"]["refused"],
            "healthy_connections": stats["healthy"]["connections"],
            "lost": problems["lost"],
            "duplicated": problems["duplicated"],
            "load_avg_1m": round(load1, 2),
            "load_avg_5m": round(load5, 2),
            "target": ">= 0.8x the healthy rate, 0 lost, 0 duplicated",
        },
    )
