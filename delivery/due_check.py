""""Is there anything for a worker to do?" asked straight through the database driver.

`drip run --once` from cron or a systemd timer usually finds nothing due. Answering that through
the full worker (SQLAlchemy's ORM, Alembic, the renderer and a backend: ~1 s) made a no-op run
cost as much as a busy one; sqlite3 (or psycopg) and three indexed queries answer it in
milliseconds. The questions mirror what `Dispatcher.tick` would act on:

- a delivery `scheduled` and due (`due_at <= now`);
- a delivery `sending` whose worker's lease ran out (`reclaim_expired` makes it due again);
- a newsletter `scheduled` whose `send_at` has come (a cron occurrence to fire, or a one-off to
  close);
- a webhook delivery `pending` and due for an enabled endpoint, or `sending` with its lease run
  out (what `WebhookSender.drain` would post): `drip run --once` from cron delivers webhook
  events too, also on a run with no email due;
- a sent delivery whose `email.sent` / `enrollment.completed` is still to be written (its
  `hooks_until` mark, webhooks/derived.py): the webhook job writes and posts them.

`None` means "cannot tell cheaply" (no database file yet, a schema not at every migration head, a
URL this does not parse, any driver error): the caller then runs the full tick, which is always
right. A row that becomes due a moment after the answer is what the next run is for, as it would
be after a full tick.
"""

from __future__ import annotations

from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from drip.schema import at_heads

_QUERIES = (
    "SELECT 1 FROM deliveries WHERE status = 'scheduled' AND due_at <= {p} LIMIT 1",
    "SELECT 1 FROM deliveries WHERE status = 'sending' AND lease_until < {p} LIMIT 1",
    "SELECT 1 FROM broadcasts WHERE status = 'scheduled' AND send_at <= {p} LIMIT 1",
    "SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= {p} AND e.active = TRUE LIMIT 1",
    "SELECT 1 FROM webhook_deliveries WHERE status = 'sending' AND lease_until < {p} LIMIT 1",
    # a send recorded whose email.sent / enrollment.completed the webhook job has still to write
    "SELECT 1 FROM deliveries WHERE hooks_until IS NOT NULL LIMIT 1",
)


def _sqlite(url: str, now: datetime) -> tuple[Any, Any] | None:
    import sqlite3

    path = url.split("///", 1)[-1]
    if not path or path == ":memory:" or "?" in path or not Path(path).is_file():
        return None
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA query_only=ON")  # a question, never a write
    # SQLAlchemy keeps UTC as naive 'YYYY-MM-DD HH:MM:SS.ffffff' text on SQLite (drip.models.UTCDateTime),
    # so the same text compares in the same order.
    return conn, now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _postgres(url: str, now: datetime) -> tuple[Any, Any] | None:
    import psycopg

    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgresql+psycopg"):
        return None
    return psycopg.connect(f"postgresql://{rest}", connect_timeout=10), now


def anything_due(url: str, now: datetime) -> bool | None:
    """True if a tick at `now` has work, False if it has none, None if this cannot tell."""
    if now.tzinfo is None:
        raise ValueError("anything_due needs an aware datetime")
    try:
        opened = _sqlite(url, now) if url.startswith("sqlite") else _postgres(url, now)
        if opened is None:
            return None
        conn, param = opened
        mark = "?" if url.startswith("sqlite") else "%s"
        with closing(conn):
            cur = conn.cursor()
            cur.execute("SELECT version_num FROM alembic_version")
            if not at_heads({row[0] for row in cur.fetchall()}):
                return None  # the full path migrates first
            for sql in _QUERIES:
                cur.execute(sql.format(p=mark), (param,) if "{p}" in sql else ())
                if cur.fetchone() is not None:
                    return True
            return False
    except Exception:  # noqa: BLE001 - any doubt means "run the full tick", never "skip"
        return None


_IDLE_BEAT = (
    "INSERT INTO worker_heartbeats (worker_id, host, pid, mode, started_at, last_beat_at, last_sent, sent_total, "
    "stopped_at) VALUES ({p}, {p}, {p}, 'once', {p}, {p}, 0, 0, NULL) ON CONFLICT (worker_id) DO UPDATE SET "
    "pid = excluded.pid, started_at = excluded.started_at, last_beat_at = excluded.last_beat_at, last_sent = 0, "
    "stopped_at = NULL"
)


def idle_beat(url: str, now: datetime) -> bool:
    """The heartbeat of an idle `drip run --once` (the row `drip.worker.beat_once` keeps), written
    through the driver too, so a cron worker with nothing to send still shows as running. False
    when it could not be written: the caller then takes the full path, which beats as usual."""
    import os
    import socket

    host = socket.gethostname()
    try:
        if url.startswith("sqlite"):
            import sqlite3

            path = url.split("///", 1)[-1]
            if not Path(path).is_file():
                return False
            conn: Any = sqlite3.connect(path, timeout=30)
            stamp: Any = now.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            mark = "?"
        else:
            opened = _postgres(url, now)
            if opened is None:
                return False
            conn, stamp = opened
            mark = "%s"
        with closing(conn):
            conn.execute(_IDLE_BEAT.format(p=mark), (f"{host}:once"[:64], host[:255], os.getpid(), stamp, stamp))
            conn.commit()
        return True
    except Exception:  # noqa: BLE001 - the full path beats instead
        return False
