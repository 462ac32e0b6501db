"""`drip bench webhooks`: signed events delivered per second to a loopback receiver while the
worker sends, and the send rate beside the same run without webhooks.

Each round is a fresh SQLite database with N emails due (the `dispatch` bench's setup, outbox
backend). With webhooks, one endpoint takes every event type, so each email sent is marked by
its record and the webhook job writes its `email.sent` (and `enrollment.completed`) from the
ledger (webhooks/derived.py), and a backlog of B events is waiting. The headline figures deliver with `drip webhooks run` (a process of its own, at
DRIP_WEBHOOK_NICE); `in_process_*` with the webhook job in a thread of the sending process, as
`drip run` does by default. The receiver is its own process on 127.0.0.1 verifying every
signature with the `standardwebhooks` library, at nice 19 (it stands for a remote system: see
bench/webhook_receiver.py). Figures: events delivered per second (all B + N, verified, none
bad, none twice), the email send rate with webhooks over the send rate without them (rounds
interleaved so the machine's load hits both alike; the median of each), the sending thread's
own CPU per email (time.thread_time: the work webhooks add to the sender, without the waits),
and the load average.

What profiling this bench found (pyinstrument, the sending thread): SQLite lock waits were a
small part; the sender lost its time to (1) its own share of the outbox, ~150 us an email in
SQLAlchemy statement building (now ~50 through the driver's executemany), and (2) CPU taken by
the deliverer and the receiver on the same two cores (the outbox backend's file creation alone
slowed ~2x), which the deliverer's lower priority gives back to sending. Later (cProfile and
per-call thread CPU, BEGIN IMMEDIATE timed): (3) the record's own email.sent/enrollment.completed
outbox work, ~80 us of CPU an email, now written by the webhook job from the ledger's marks
(webhooks/derived.py), whose lock hold the sender then waited on until the job made the
payloads in a read transaction first.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from bench import BenchResult
from bench.dispatch import T0, _setup

WORKER = "bench-worker"


RECEIVER_NICE = int(os.environ.get("DRIP_BENCH_RECEIVER_NICE", "19"))  # see bench/webhook_receiver.py


def _receiver(secret: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.webhook_receiver", secret, str(RECEIVER_NICE)],
                            stdout=subprocess.PIPE, start_new_session=True,
                            text=True, cwd=str(Path(__file__).resolve().parent.parent))
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _runqueue_wait() -> float:
    """Seconds this thread has been runnable but waiting for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as r:
        return json.loads(r.read())


def _nice(settings) -> int:
    """DRIP_WEBHOOK_NICE as `drip run` reads it (the bench's settings are built, not loaded)."""
    return int(os.environ.get("DRIP_WEBHOOK_NICE", settings.webhook_nice))


PG_URL = os.environ.get("DRIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def _pg_schema():
    """A schema of the round's own on PostgreSQL (dropped after): its URL, or None if no server."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"drip_bench_wh_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception:  # noqa: BLE001 - no PostgreSQL here: the SQLite figures only
        yield None
        return
    try:
        yield PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _round(n: int, backlog: int, mode: str, pg: bool = False) -> dict:
    """mode: "off" (no endpoint), "thread" (the webhook job in this process, as `drip run` does),
    "process" (`drip webhooks run` beside the sending process). `pg`: on PostgreSQL (a schema of
    its own) instead of SQLite; {} if no server answers."""
    if pg:
        with _pg_schema() as url:
            return _round_in(n, backlog, mode, url) if url else {}
    return _round_in(n, backlog, mode, None)


def _round_in(n: int, backlog: int, mode: str, url: str | None) -> dict:
    webhooks = mode != "off"
    from delivery.backends.outbox import OutboxBackend
    from delivery.dispatcher import Dispatcher
    from webhooks import signing
    from webhooks.outbox import write
    from webhooks.sender import WebhookSender

    from drip.models import WebhookEndpoint

    with tempfile.TemporaryDirectory(prefix="drip-bench-wh-") as tmp:
        rt = _setup(Path(tmp), n, 500, url)
        out: dict = {}
        proc = port = sender = worker = None
        try:
            if webhooks:
                secret = signing.new_secret()
                proc, port = _receiver(secret)
                with rt.sessions.begin() as s:
                    ep = WebhookEndpoint(url=f"http://127.0.0.1:{port}/hook", secret=secret, events=[], active=True,
                                         description="bench", created_at=T0)
                    s.add(ep)
                    s.flush()
                    for i in range(0, backlog, 1000):
                        write(s, "subscriber.subscribed", [{"subscriber_id": j + 1, "status": "active",
                                                            "source": "bench"} for j in range(i, min(backlog, i + 1000))],
                              [ep.id], T0)
                if mode == "thread":
                    sender = WebhookSender(rt.sessions, WORKER, allow_private=True, batch=200, concurrency=8,
                                           nice=_nice(rt.settings), read_sessions=rt.read_sessions)
                else:
                    env = {**os.environ, "DRIP_DATABASE_URL": rt.settings.db_url, "DRIP_WEBHOOK_ALLOW_PRIVATE": "true",
                           "DRIP_SECRET_KEY": "bench-secret", "DRIP_DATA_DIR": str(Path(tmp) / "data")}
                    # its own session, as a systemd service is (it then lowers its autogroup too)
                    worker = subprocess.Popen([sys.executable, "-m", "drip", "webhooks", "run", "--interval", "0.05"],
                                              env=env, start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent))
            stop = threading.Event()
            delivered = [0]
            wh_done = [0.0]

            def deliver() -> None:
                start = time.perf_counter()
                while not stop.is_set():
                    if sender is None:  # the other process delivers: watch the receiver's count
                        delivered[0] = _stats(port)["verified"]
                        if sending_done.is_set() and delivered[0] >= expected[0]:
                            break
                        # each look is an HTTP request from the sending process: rarely while it sends
                        time.sleep(0.02 if sending_done.is_set() else 0.25)
                        continue
                    r = sender.run_once()
                    delivered[0] += r.delivered
                    if r.claimed == 0 and sending_done.is_set():
                        break
                    if r.claimed == 0:
                        time.sleep(0.05)
                wh_done[0] = time.perf_counter() - start

            expected = [1 << 60]

            sending_done = threading.Event()
            thread = threading.Thread(target=deliver, name="webhooks") if webhooks else None
            with OutboxBackend(rt.settings) as backend:
                d = Dispatcher(rt, backend, clock=lambda: T0)
                if thread:
                    thread.start()
                start, cpu0, rq0 = time.perf_counter(), time.thread_time(), _runqueue_wait()
                report = d.tick()
                send_elapsed, send_cpu = time.perf_counter() - start, time.thread_time() - cpu0
                rq = _runqueue_wait() - rq0
                if webhooks:
                    from sqlalchemy import text

                    with rt.sessions() as s:  # one statement: the events written plus those still marked
                        expected[0] = s.scalar(text(
                            "SELECT (SELECT count(*) FROM webhook_events)"
                            " + (SELECT count(*) FROM deliveries WHERE hooks_until IS NOT NULL)"
                            " + (SELECT count(*) FROM deliveries WHERE hooks_until IS NOT NULL AND hooks_completed = TRUE)"))
                sending_done.set()
                if webhooks:  # how long after the last record its email.sent is written (the job's lag)
                    from sqlalchemy import text

                    marked = text("SELECT 1 FROM deliveries WHERE hooks_until IS NOT NULL LIMIT 1")
                    t_end = time.perf_counter()
                    while time.perf_counter() - t_end < 120:
                        with rt.read_sessions() as s:  # a read transaction: never the deliverer's write lock
                            if s.scalar(marked) is None:
                                break
                        time.sleep(0.05)
                    out["sent_events_lag_s"] = time.perf_counter() - t_end
            if report.sent != n:
                raise RuntimeError(f"bench sent {report.sent} of {n}")
            out["send_rate"] = n / send_elapsed
            out["send_cpu_us"] = send_cpu / n * 1e6  # the sending thread's own CPU an email (no waits)
            out["runqueue_share"] = rq / send_elapsed  # of the send's wall time: runnable, waiting for a CPU
            if thread:
                thread.join(timeout=600)
                stop.set()
                stats = _stats(port)
                events = expected[0]  # the backlog, one email.sent per email, enrollment.completed per patient
                out.update(events=events, delivered=delivered[0], verified=stats["verified"], bad=stats["bad"],
                           unique=stats["unique"], webhook_rate=delivered[0] / wh_done[0])
        finally:
            if sender is not None:
                sender.close()
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
            rt.close()
        return out


def run(quick: bool = False) -> BenchResult:
    n, backlog, rounds = (2_000, 3_000, 1) if quick else (4_000, 6_000, 2)
    plain, hooked, threaded, pg_plain, pg_hooked = [], [], [], [], []
    load_start = os.getloadavg()[0]
    for _ in range(rounds):
        plain.append(_round(n, backlog, "off"))
        hooked.append(_round(n, backlog, "process"))
        threaded.append(_round(n, backlog, "thread"))
        pg_plain.append(_round(n, backlog, "off", pg=True))
        pg_hooked.append(_round(n, backlog, "process", pg=True))
    load1, load5, _ = os.getloadavg()
    pg_ok = all(pg_plain) and all(pg_hooked)
    base = statistics.median(r["send_rate"] for r in plain)
    with_hooks = statistics.median(r["send_rate"] for r in hooked)
    wh_rate = statistics.median(r["webhook_rate"] for r in hooked)
    problems = [r for r in hooked + threaded + (pg_hooked if pg_ok else []) if r["bad"] or r["verified"] != r["events"]
                or r["unique"] != r["events"] or r["delivered"] != r["events"]]
    details = {
        "events_per_s": round(wh_rate, 1),
        "in_process_events_per_s": round(statistics.median(r["webhook_rate"] for r in threaded), 1),
        "in_process_send_ratio": round(statistics.median(r["send_rate"] for r in threaded) / base, 3),
        "events_per_round": hooked[0]["events"], "backlog_events": backlog, "emails_per_round": n, "rounds": rounds,
        "send_rate_with_webhooks": round(with_hooks, 1), "send_rate_without": round(base, 1),
        "send_ratio": round(with_hooks / base, 3),
        "sender_cpu_us_per_email_with": round(statistics.median(r["send_cpu_us"] for r in hooked)),
        "sender_cpu_us_per_email_without": round(statistics.median(r["send_cpu_us"] for r in plain)),
        "sender_runqueue_share_with": round(statistics.median(r["runqueue_share"] for r in hooked), 3),
        "sender_runqueue_share_without": round(statistics.median(r["runqueue_share"] for r in plain), 3),
        # seconds from the send's end until every email.sent was written (the webhook job, busy with the backlog)
        "email_sent_lag_s_max": round(max(r["sent_events_lag_s"] for r in hooked + threaded), 2),
        "webhook_nice": int(os.environ.get("DRIP_WEBHOOK_NICE", 10)), "receiver_nice": RECEIVER_NICE,
        "all_verified_once": not problems,
        "postgres_send_ratio": round(statistics.median(r["send_rate"] for r in pg_hooked)
                                     / statistics.median(r["send_rate"] for r in pg_plain), 3) if pg_ok else None,
        "postgres_events_per_s": round(statistics.median(r["webhook_rate"] for r in pg_hooked), 1) if pg_ok else None,
        "postgres_send_rate_without": round(statistics.median(r["send_rate"] for r in pg_plain), 1) if pg_ok else None,
        "load_avg_1m_at_start": round(load_start, 2),
        "load_avg_1m": round(load1, 2), "load_avg_5m": round(load5, 2), "cpus": os.cpu_count(),
        "target": ">= 1,000 events/s; send rate with webhooks >= 0.9x without",
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return BenchResult(bench="webhooks", unit="emails/s", rate=with_hooks, baseline=base,
                       label=f"sending with webhooks ({wh_rate:,.0f} events/s delivered)",
                       baseline_label="sending without webhooks", details=details)
