"""The worker's webhook job: claim due deliveries, sign, POST, record; retry with backoff.

It runs as its own job beside the sending ticks (scheduler.Worker chore), never inside them:
a slow or dead receiver costs the job's own threads, bounded by short timeouts and a bounded
claim, and sending goes on. Claims work like the email ledger's: `pending -> sending` with a
lease in one committed transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several workers
never post the same delivery at once; a worker that died leaves rows that become due again when
the lease runs out (at least once: receivers de-duplicate on `webhook-id`, as the spec says).
Each claim first writes the email.sent / enrollment.completed of the sends recorded since the
last one (webhooks/derived.py), so those go out in the same pass.

Retries (any answer but 2xx, a timeout, a refused connection): after 5 s, 5 min, 30 min, 2 h,
5 h, 10 h and 10 h (the spec's suggested schedule, 27.6 hours in all), then `failed`, shown in
the delivery log with the last answer, from where staff can replay it. A target refused as
private is failed at once (the address will not become public by waiting).
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from drip.models import UTCDateTime, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks import signing
from webhooks.derived import prepare, publish
from webhooks.http import Poster
from webhooks.targets import Target, TargetRefused, resolve

log = logging.getLogger("drip.webhooks")

BACKOFF = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
MAX_ATTEMPTS = len(BACKOFF) + 1


def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failed tries, or None: give up (failed)."""
    return now + BACKOFF[attempts - 1] if attempts <= len(BACKOFF) else None


@dataclass
class Job:
    id: int
    attempts: int
    event_id: str
    payload: str
    url: str
    secrets: tuple[str, ...]


@dataclass
class Outcome:
    id: int
    ok: bool
    code: int | None = None
    error: str = ""
    final: bool = False  # no retry (refused target)


@dataclass
class RunReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _clean(text_: str, limit: int = 300) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text_).split())[:limit]


def lower_priority(nice: int) -> None:
    """This thread's nice value made at least `nice` (Linux: per thread; elsewhere nothing).

    The webhook POST threads run beside the sending ticks on the same cores; when the CPU is
    short (two cores, a busy host), the kernel then gives it to sending first. Measured in
    `drip bench webhooks`: the deliverer and the receiver took CPU the sender needed, SQLite
    locks were not what slowed it. A thread can lower its own priority, never raise it back
    (without privileges), so only threads that do nothing else are lowered."""
    if nice <= 0 or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, nice))
    except OSError:  # not allowed here: normal priority
        pass


def lower_process_priority(nice: int) -> bool:
    """For a process of its own (`drip webhooks run`): lower this thread (the threads it starts
    inherit it) and, when this process leads its own session (systemd starts services so; the
    bench does too), that session's autogroup as well. With Linux's autogroup scheduling the
    kernel shares the CPU between sessions first and applies nice values only inside one, so a
    niced deliverer in a session of its own still took an equal share from the sender (measured
    in `drip bench webhooks`: the sending thread runnable but waiting in the run queue). The
    autogroup's nice is only written for a session this process leads: never a shell's.
    True when the autogroup was lowered."""
    lower_priority(nice)
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        if os.getsid(0) != os.getpid():
            return False
        with open("/proc/self/autogroup", "w") as fh:
            fh.write(str(min(19, nice)))
        return True
    except OSError:  # no autogroup (or not allowed): the thread priority is what there is
        return False


class WebhookSender:
    """One worker's webhook deliverer (`worker_id` = its `claimed_by`)."""

    def __init__(self, sessions: sessionmaker[Session], worker_id: str, *, allow_private: bool = False,
                 batch: int = 200, concurrency: int = 8, timeout: float = 5.0, lease: timedelta = timedelta(seconds=60),
                 clock: Callable[[], datetime] | None = None, nice: int = 0,
                 read_sessions: sessionmaker[Session] | None = None) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions  # for reading marked sends (Runtime.read_sessions)
        self.worker_id = worker_id
        self.allow_private = allow_private
        self.batch = max(1, batch)
        self.concurrency = max(1, concurrency)
        self.lease = lease
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.dialect = sessions.kw["bind"].dialect.name
        self.client = Poster(timeout)  # no redirects followed, no proxy from the environment
        self.nice = nice
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook", initializer=lower_priority,
                                       initargs=(nice,))
        self._targets: dict[str, Target | Exception] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    # -- the ledger side
    def reclaim_expired(self, now: datetime) -> int:
        with self.sessions.begin() as s:
            t = WebhookDelivery.__table__
            return s.execute(update(t).where(t.c.status == "sending", t.c.lease_until < now)
                             .values(status="pending", claimed_by=None, lease_until=None)).rowcount or 0

    def claim(self, now: datetime) -> list[Job]:
        """Write the events of sends recorded since the last claim, then claim a batch of due deliveries."""
        lock = "FOR UPDATE OF d SKIP LOCKED" if self.dialect == "postgresql" else ""
        sql = text(
            f"""
            UPDATE webhook_deliveries SET status = 'sending', lease_until = :lease, claimed_by = :worker,
                   attempts = attempts + 1
            WHERE id IN (
                SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                WHERE d.status = 'pending' AND d.next_attempt_at <= :now AND e.active = :yes
                ORDER BY d.next_attempt_at, d.id LIMIT :limit {lock}
            )
            RETURNING id
            """
        ).bindparams(bindparam("now", type_=UTCDateTime), bindparam("lease", type_=UTCDateTime))
        # email.sent / enrollment.completed of the sends recorded since the last claim
        # (webhooks/derived.py): read and made first (a read transaction: on SQLite no write lock),
        # written in this claim's transaction, so they go out in this pass.
        ready = None
        if self.read_sessions is not None:
            with self.read_sessions() as r:
                ready = prepare(r)
        with self.sessions.begin() as s:
            publish(s, ready=ready)
            ids = [r[0] for r in s.execute(sql, {"now": now, "lease": now + self.lease, "worker": self.worker_id,
                                                  "limit": self.batch, "yes": True})]
            if not ids:
                return []
            rows = s.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookEvent.id, WebhookEvent.payload,
                       WebhookEndpoint.url, WebhookEndpoint.secret, WebhookEndpoint.previous_secret,
                       WebhookEndpoint.previous_until, WebhookEndpoint.active)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)
            ).all()
        jobs = []
        for did, attempts, eid, payload, url, secret, prev, prev_until, active in rows:
            keys = (secret,) + ((prev,) if prev and prev_until and prev_until > now else ())
            jobs.append(Job(did, attempts, eid, payload, url if active else "", keys))
        return jobs

    def record(self, now: datetime, jobs: list[Job], outcomes: list[Outcome]) -> RunReport:
        report = RunReport(claimed=len(jobs))
        by_id = {j.id: j for j in jobs}
        done, retry, failed = [], [], []
        for o in outcomes:
            job = by_id[o.id]
            err = o.error or (f"HTTP {o.code}" if o.code else "")
            if o.ok:
                done.append({"did": o.id, "code": o.code})
                continue
            when = None if o.final else next_attempt(job.attempts, now)
            if when is None:
                failed.append({"did": o.id, "code": o.code, "err": f"gave up after {job.attempts} attempts: {err}"
                               if not o.final else err})
            else:
                retry.append({"did": o.id, "code": o.code, "err": err, "due": when})
            report.errors.append(err)
        t = WebhookDelivery.__table__
        held = (t.c.id == bindparam("did")) & (t.c.claimed_by == self.worker_id) & (t.c.status == "sending")
        with self.sessions.begin() as s:
            if done:
                s.execute(update(t).where(held).values(status="delivered", delivered_at=now, lease_until=None,
                                                       last_code=bindparam("code"), last_error=""), done)
            if retry:
                s.execute(update(t).where(held).values(status="pending", lease_until=None, claimed_by=None,
                                                       next_attempt_at=bindparam("due"), last_code=bindparam("code"),
                                                       last_error=bindparam("err")), retry)
            if failed:
                s.execute(update(t).where(held).values(status="failed", lease_until=None,
                                                       last_code=bindparam("code"), last_error=bindparam("err")), failed)
        report.delivered, report.retried, report.failed = len(done), len(retry), len(failed)
        for item in failed:
            log.warning("webhook delivery %s failed: %s", item["did"], item["err"])
        return report

    # -- the HTTP side
    def _target(self, url: str) -> Target:
        with self._lock:
            found = self._targets.get(url)
        if found is None:
            try:
                found = resolve(url, allow_private=self.allow_private)
            except (TargetRefused, LookupError) as exc:
                found = exc
            with self._lock:
                self._targets[url] = found
        if isinstance(found, Exception):
            raise found
        return found

    def post(self, job: Job) -> Outcome:
        if not job.url:
            return Outcome(job.id, False, error="endpoint disabled", final=True)
        try:
            target = self._target(job.url)
        except TargetRefused as exc:
            return Outcome(job.id, False, error=f"refused: {exc}", final=True)
        except LookupError as exc:
            return Outcome(job.id, False, error=_clean(str(exc)))
        body = job.payload.encode("utf-8")
        headers = signing.headers(job.secrets, job.event_id, datetime.now(timezone.utc), body)
        headers["user-agent"] = "drip-webhooks/1"
        try:
            status, answer = self.client.post(target, body, headers)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, TLS, bad answer
            return Outcome(job.id, False, error=_clean(f"{type(exc).__name__}: {exc}"))
        if 200 <= status < 300:
            return Outcome(job.id, True, status)
        return Outcome(job.id, False, status, _clean(f"HTTP {status} {answer}"))

    def run_once(self, now: datetime | None = None) -> RunReport:
        """Claim one batch, post it (`concurrency` at a time), record it."""
        given, now = now, now or self.clock()
        self._targets = {}  # resolve again each batch: an address can change (DNS rebinding)
        jobs = self.claim(now)
        if not jobs:
            return RunReport()
        outcomes = list(self.pool.map(self.post, jobs)) if len(jobs) > 1 else [self.post(jobs[0])]
        return self.record(given or self.clock(), jobs, outcomes)

    def drain(self, budget_seconds: float = 5.0, stop: threading.Event | None = None) -> RunReport:
        """Batches until nothing is due or the time budget is spent (the chore runs again soon)."""
        import time

        total = RunReport()
        self.reclaim_expired(self.clock())
        deadline = time.monotonic() + budget_seconds
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            r = self.run_once()
            total.claimed += r.claimed
            total.delivered += r.delivered
            total.retried += r.retried
            total.failed += r.failed
            if r.claimed < self.batch:
                break
        return total
