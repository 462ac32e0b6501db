"""`drip bounces poll --maildir DIR` prints what it found; the worker polls a configured mailbox as a chore."""

from __future__ import annotations

import json

from drip.db import make_engine, migrate, session_factory
from tests.delivery.bounces.seed import EXPECTED, SECRET, make_maildir, seed_deliveries
from tests.test_cli_engine import drip, env  # noqa: F401 (fixtures)


def test_poll_by_hand_prints_each_finding(env, drip, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("DRIP_SECRET_KEY", SECRET)  # the fixtures' VERP addresses were signed with it
    engine = make_engine(env["DRIP_DATABASE_URL"])
    migrate(engine)
    with session_factory(engine).begin() as s:
        seed_deliveries(s)
    engine.dispose()
    box = make_maildir(tmp_path / "box")
    r = drip("bounces", "poll", "--maildir", str(box))
    assert r.returncode == 0, r.stderr
    assert "hard 5.1.1 alice@example.org: delivery 101 (by verp): suppressed" in r.stdout
    assert "soft 4.2.2 bob@example.net: delivery 102 (by verp): soft bounce 1 of 3 in a row" in r.stdout
    assert "complaint grace@mailprovider.example: delivery 107 (by verp): suppressed, unsubscribed" in r.stdout
    assert "7 messages: 5 hard bounces, 1 soft, 1 complaints, 0 unmatched, 0 not bounce reports" in r.stdout
    make_maildir(box, names=["postfix_hard.eml"])  # the same report again
    r = drip("bounces", "poll", "--maildir", str(box), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["messages"] == 1 and out["findings"][0]["outcome"] == "duplicate (already counted)"
    assert len(EXPECTED) == 7


def test_bad_input_is_one_line(env, drip, tmp_path):  # noqa: F811
    r = drip("bounces", "poll")
    assert r.returncode == 2 and "no bounce mailbox configured" in r.stderr and "Traceback" not in r.stderr
    r = drip("bounces", "poll", "--maildir", str(tmp_path))
    assert r.returncode == 2 and "--maildir: " in r.stderr and "not a maildir (no new/cur/ folder)" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_the_worker_polls_a_configured_mailbox(sqlite_runtime, tmp_path):
    from delivery.backends.outbox import OutboxBackend
    from delivery.dispatcher import Dispatcher
    from drip.worker import build_worker

    rt = sqlite_runtime
    box = make_maildir(tmp_path / "box", names=[])
    names = lambda r: [name for name, _, _ in build_worker(r, Dispatcher(r, OutboxBackend(r.settings)), 1.0,
                                                           mode="run").chores]  # noqa: E731
    assert "bounces" not in names(rt)
    rt.settings = rt.settings.with_(bounce_maildir=str(box), bounce_poll_seconds=60.0)
    worker = build_worker(rt, Dispatcher(rt, OutboxBackend(rt.settings)), 1.0, mode="run")
    ((_, job, seconds),) = [c for c in worker.chores if c[0] == "bounces"]
    assert seconds == 60.0
    (box / "new" / "m1").write_bytes(b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
    job()
    assert (box / "cur" / "m1:2,S").exists()
