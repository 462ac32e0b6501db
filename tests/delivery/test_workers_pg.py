"""Two workers on one PostgreSQL at once: FOR UPDATE SKIP LOCKED keeps them apart. Zero doubles."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from drip.db import make_engine, session_factory
from drip.models import Delivery, Subscriber
from drip.runtime import Runtime
from tests.delivery.test_dispatcher import ScriptedBackend
from tests.factories import make_campaign

N = 600


@pytest.mark.postgres
def test_two_workers_share_postgres_without_doubles(pg_schema_url, settings):
    from tests.conftest import _truncate_pg

    engine = make_engine(pg_schema_url)
    _truncate_pg(engine)
    s0 = settings.with_(database_url=pg_schema_url, batch_size=25, frequency_cap=5)
    rt = Runtime(s0, engine, session_factory(engine))
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    with rt.sessions.begin() as s:
        c = make_campaign(s, n_items=0)
        subs = [Subscriber(email=f"w{i}@example.org", email_key=f"w{i}@example.org", status="active") for i in range(N)]
        s.add_all(subs)
        s.flush()
        for sub in subs:
            enroll(s, sub, c, past, clinic_tz="UTC")

    backends = []
    errors = []

    def work(name):
        eng = make_engine(pg_schema_url)  # each worker its own pool, as separate processes would have
        wrt = Runtime(s0, eng, session_factory(eng))
        backend = ScriptedBackend(s0)
        backends.append(backend)
        try:
            d = Dispatcher(wrt, backend, worker_id=name)
            while d.tick().claimed:
                pass
        except Exception as exc:  # surface in the main thread
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=work, args=(f"worker-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    ids = [m.delivery_id for b in backends for m in b.sent]
    assert len(ids) == N and len(set(ids)) == N, "all delivered, zero duplicates"
    assert all(b.sent for b in backends), "both workers took a share"
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == N
    engine.dispose()
