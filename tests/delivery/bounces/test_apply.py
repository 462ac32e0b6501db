"""Reports from a maildir matched to their deliveries and acted on through the normalised event
path: hard -> suppressed + bounced, complaint -> suppressed + complained (enrollments cancelled),
soft -> counted, N in a row suppress. The same report read twice counts once; forgeries do nothing."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from delivery.bounces.mailbox import MaildirSource
from delivery.bounces.poll import poll
from delivery.bounces.verp import verp_address
from drip.models import Delivery, Event, SoftBounceStreak, Subscriber, Suppression
from tests.delivery.bounces.seed import EXPECTED, FIXTURES, T0, make_maildir, seed_deliveries
from tests.factories import make_subscriber

BOUNCE_DOMAIN = "bounce.riverside-clinic.example"


def run_poll(rt, maildir, **changes):
    return poll(rt.sessions, rt.settings.with_(**changes), [MaildirSource(maildir)], lambda: T0)


def test_every_fixture_is_matched_and_acted_on_once(runtime, tmp_path):
    with runtime.sessions.begin() as s:
        subs = seed_deliveries(s)
    box = make_maildir(tmp_path / "bounces")
    result = run_poll(runtime, box)
    assert result.messages == len(EXPECTED) and result.not_reports == 0
    got = {(f.address, f.kind, f.status, f.delivery_id, f.via) for f in result.findings}
    assert got == set(EXPECTED.values())
    with runtime.sessions() as s:
        supp = {r.email_key: (r.reason, r.source) for r in s.scalars(select(Suppression))}
        status = {sub.email_key: sub.status for sub in s.scalars(select(Subscriber))}
        outcome = {d.id: d.outcome for d in s.scalars(select(Delivery))}
        assert s.get(SoftBounceStreak, "bob@example.net").count == 1
        assert s.scalar(select(func.count()).select_from(Event)) == len(EXPECTED)
    for address, kind, _, did, _ in EXPECTED.values():
        if kind == "hard":
            assert supp[address] == ("bounce", "dsn:bounce") and status[address] == "bounced"
            assert outcome[did] == "bounced"
        elif kind == "complaint":
            assert supp[address] == ("complaint", "arf:spamreport") and status[address] == "complained"
            assert outcome[did] == "complained"
        else:  # one soft bounce: counted, not suppressed
            assert address not in supp and status[address] == "active" and outcome[did] == "deferred"
    # processed: moved to cur/ with the Seen flag; a second poll reads nothing
    assert os.listdir(box / "new") == [] and all(n.endswith(":2,S") for n in os.listdir(box / "cur"))
    assert run_poll(runtime, box).messages == 0
    # the same reports delivered again (a second copy in the mailbox) count once
    make_maildir(box)
    again = run_poll(runtime, box)
    assert again.messages == len(EXPECTED)
    assert all(f.outcome.startswith("duplicate") for f in again.findings)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == len(EXPECTED)
        assert s.get(SoftBounceStreak, "bob@example.net").count == 1
    assert subs  # seeded


def _soft_report(delivery_id: int, n: int, secret: str) -> bytes:
    raw = (FIXTURES / "postfix_delayed.eml").read_bytes()
    raw = raw.replace(b"bounces+d102-0f86b6d40506@bounce.riverside-clinic.example",
                      verp_address(delivery_id, BOUNCE_DOMAIN, secret).encode())
    return raw.replace(b"<20261201061540.7CdE9f1Zq2z3Xw@mail.example.net>", f"<soft{n}@mail.example.net>".encode())


def _deliver(box, name, raw):
    (box / "new" / name).write_bytes(raw)


def test_soft_bounces_in_a_row_suppress_and_a_delivery_between_restarts_the_count(sqlite_runtime, tmp_path):
    rt = sqlite_runtime
    secret = rt.settings.secret_key
    with rt.sessions.begin() as s:
        sub = make_subscriber(s, "bob@example.net")
        for did in (1, 2, 3, 4, 5, 6):
            s.add(Delivery(id=did, subscriber_id=sub.id, due_at=T0, status="sent", sent_at=T0))
    box = make_maildir(tmp_path / "box", names=[])
    # deliveries 1 and 2 soft-bounce, 3 goes through (no report), then 4, 5 and 6 soft-bounce
    for did in (1, 2, 4, 5):
        _deliver(box, f"m{did}", _soft_report(did, did, secret))
    _deliver(box, "m4b", _soft_report(4, 40, secret))  # a second warning about delivery 4: counts once
    result = run_poll(rt, box)
    assert [f.outcome for f in result.findings] == [
        "soft bounce 1 of 3 in a row", "soft bounce 2 of 3 in a row",
        "soft bounce 1 of 3 in a row",  # delivery 3 went through between 2 and 4
        "soft bounce 1 of 3 in a row",  # the repeated warning about 4
        "soft bounce 2 of 3 in a row",
    ]
    with rt.sessions() as s:
        assert s.get(Suppression, "bob@example.net") is None
    _deliver(box, "m6", _soft_report(6, 6, secret))
    (finding,) = run_poll(rt, box).findings
    assert finding.outcome == "soft bounce 3 of 3 in a row: suppressed"
    with rt.sessions() as s:
        assert (s.get(Suppression, "bob@example.net").source, s.get(Subscriber, sub.id).status) == (
            "dsn:soft-streak", "bounced")


@pytest.mark.parametrize("tamper", ["mac", "recipient"])
def test_forged_reports_change_nothing(sqlite_runtime, tmp_path, tamper):
    rt = sqlite_runtime
    with rt.sessions.begin() as s:
        seed_deliveries(s)
    if tamper == "mac":  # a VERP address with a MAC we did not make, nothing else to go by
        raw = (FIXTURES / "qmail_hard.eml").read_bytes().replace(b"6ceae5fb5507", b"6ceae5fb5508")
        raw = raw.replace(b"X-Drip-Delivery-Id: 106", b"").replace(b"<drip.106.aabbccddeeff0011@", b"<drip.106.0@")
    else:  # our delivery id in the header, but another address failed
        raw = (FIXTURES / "exim_hard.eml").read_bytes().replace(b"carol@example.com", b"mallory@example.com")
    box = make_maildir(tmp_path / "box", names=[])
    _deliver(box, "forged", raw)
    (finding,) = run_poll(rt, box).findings
    assert finding.delivery_id is None and finding.outcome == "unmatched"
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_a_message_that_is_not_a_report_is_marked_processed(sqlite_runtime, tmp_path):
    box = make_maildir(tmp_path / "box", names=[])
    _deliver(box, "reply", b"From: a@example.org\r\nSubject: Re: hello\r\n\r\nThanks!\r\n")
    result = run_poll(sqlite_runtime, box)
    assert (result.messages, result.not_reports, result.findings) == (1, 1, [])
    assert os.listdir(box / "new") == [] and os.listdir(box / "cur") == ["reply:2,S"]


def test_an_unreadable_message_does_not_block_the_mailbox(sqlite_runtime, tmp_path, monkeypatch):
    import delivery.bounces.poll as poll_module

    real = poll_module.parse_report
    monkeypatch.setattr(poll_module, "parse_report",
                        lambda raw: (_ for _ in ()).throw(ValueError("odd")) if b"ODD" in raw else real(raw))
    with sqlite_runtime.sessions.begin() as s:
        seed_deliveries(s)
    box = make_maildir(tmp_path / "box", names=["postfix_hard.eml"])
    _deliver(box, "0odd", b"Subject: ODD\r\n\r\n")  # sorted first
    result = run_poll(sqlite_runtime, box)
    assert (result.messages, result.not_reports) == (2, 1)
    assert [f.delivery_id for f in result.findings] == [101]
    assert os.listdir(box / "new") == []
