"""Three workers on one PostgreSQL, each sending over SMTP to a real server (aiosmtpd on
loopback), while the booking system exits patients whose rows the workers have already claimed
and loaded: none of those emails reaches the server (the chunk re-check cancels them), and the
server is the judge of what was sent."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns.enrollment import enroll
from campaigns.exits import add_exit, record_event
from delivery.dispatcher import Dispatcher
from drip.db import make_engine, session_factory
from drip.models import Delivery, Enrollment, Subscriber
from drip.runtime import Runtime
from delivery.backends.smtp import SMTPBackend
from tests.delivery.conftest import run_smtp_server
from tests.factories import make_campaign

N = 120


@pytest.fixture
def smtp_sink():
    yield from run_smtp_server()


@pytest.mark.postgres
def test_three_workers_never_send_an_exited_patients_email(pg_schema_url, settings, smtp_sink):
    from tests.conftest import _truncate_pg

    engine = make_engine(pg_schema_url)
    _truncate_pg(engine)
    s0 = settings.with_(database_url=pg_schema_url, batch_size=20, record_every=5, frequency_cap=5, backend="smtp",
                        smtp_host="127.0.0.1", smtp_port=smtp_sink.port, smtp_timeout=5.0)
    rt = Runtime(s0, engine, session_factory(engine))
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    with rt.sessions.begin() as s:
        c = make_campaign(s, n_items=0)  # one email per patient
        add_exit(s, c, "event", "appointment_booked", past)
        subs = [Subscriber(email=f"x{i}@example.org", email_key=f"x{i}@example.org", status="active") for i in range(N)]
        s.add_all(subs)
        s.flush()
        for sub in subs:
            enroll(s, sub, c, past, clinic_tz="UTC")
        by_email = {sub.email: sub.id for sub in subs}

    # The exit and a chunk's re-check are serialised by `lock`, so each picked patient is exited
    # either before the re-check of the chunk holding their row (then it must not be sent) or, by
    # construction, never while their row is already past its re-check ("in flight").
    lock = threading.Lock()
    loaded: dict[int, int] = {}  # delivery id -> subscriber id, claimed and loaded by some worker
    in_flight: set[int] = set()  # delivery ids past their re-check
    exited: set[int] = set()
    done = threading.Event()
    errors: list[BaseException] = []

    def work(name):
        eng = make_engine(pg_schema_url)
        backend = SMTPBackend(s0).__enter__()
        try:
            d = Dispatcher(Runtime(s0, eng, session_factory(eng)), backend, worker_id=name)
            load, recheck = d.store.load, d.store.recheck

            def loading(ids):
                rows = load(ids)
                with lock:
                    loaded.update({r.id: r.subscriber_id for r in rows})
                return rows

            def rechecking(ids, now):
                with lock:
                    gone = recheck(ids, now)
                    in_flight.update(set(ids) - set(gone))
                    return gone

            d.store.load, d.store.recheck = loading, rechecking
            while d.tick().claimed:
                pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            backend.__exit__(None, None, None)
            eng.dispose()

    def booking_system():
        eng = make_engine(pg_schema_url)
        sessions = session_factory(eng)
        try:
            while not done.is_set():
                with lock:
                    picked = sorted({sid for did, sid in loaded.items() if did not in in_flight} - exited)[:3]
                    for sid in picked:
                        with sessions.begin() as s:
                            record_event(s, sid, "appointment_booked", datetime.now(timezone.utc))
                        exited.add(sid)
                time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)
        finally:
            eng.dispose()

    workers = [threading.Thread(target=work, args=(f"worker-{i}",)) for i in range(3)]
    booking = threading.Thread(target=booking_system)
    for t in workers + [booking]:
        t.start()
    for t in workers:
        t.join(120)
    done.set()
    booking.join(30)
    assert not errors, errors
    sent = [by_email[rcpt] for env in smtp_sink.envelopes for rcpt in env.rcpt_tos]  # what reached the server
    assert len(exited) >= 5, "the booking system exited patients while the workers ran"
    assert sorted(set(sent) & exited) == [], "an exited patient's claimed email was sent"
    assert len(sent) == len(set(sent)), "no doubles"
    with rt.sessions() as s:
        states = dict(s.execute(select(Enrollment.state, func.count()).group_by(Enrollment.state)).all())
        by_status = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    assert states.get("exited") == len(exited)
    assert by_status == {"sent": len(sent), "cancelled": N - len(sent)}
    assert N - len(sent) == len(exited)
    engine.dispose()
