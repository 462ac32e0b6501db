"""Parsing real-looking reports from several MTAs (tests/fixtures/bounces/): address, kind, code,
and the returned message's identifiers. No database."""

from __future__ import annotations

import pytest

from delivery.bounces.dsn import COMPLAINT, HARD, SOFT, kind_of_status, parse_report
from tests.delivery.bounces.seed import DELIVERIES, EXPECTED, FIXTURES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_mta_format_is_read_to_address_kind_and_code(name):
    address, kind, status, delivery_id, _ = EXPECTED[name]
    report = parse_report((FIXTURES / name).read_bytes())
    assert [(f.recipient, f.kind, f.status) for f in report.failures] == [(address, kind, status)]
    message_id = DELIVERIES[delivery_id][1]
    assert message_id in report.message_ids  # the returned message (or its references) names ours
    if name != "o365_hard.eml":  # Exchange returns the headers without our X- header
        assert report.delivery_ids == [delivery_id]
    assert "drip." not in report.report_id  # the report's own id, never the returned message's


def test_a_report_without_message_id_gets_a_stable_id():
    raw = (FIXTURES / "qmail_hard.eml").read_bytes()
    assert parse_report(raw).report_id.startswith("sha256:")
    assert parse_report(raw).report_id == parse_report(raw).report_id


@pytest.mark.parametrize("status,action,kind", [
    ("5.1.1", "failed", HARD), ("5.1.10", "failed", HARD), ("5.2.1", "failed", HARD), ("5.4.4", "failed", HARD),
    ("4.4.1", "failed", SOFT),  # Postfix: queue lifetime expired on a temporary error
    ("4.2.2", "delayed", SOFT), ("5.7.1", "failed", SOFT),  # a spam block blames us, not the address
    ("5.3.0", "failed", SOFT), ("", "failed", HARD), ("", "delayed", SOFT),
    ("2.0.0", "delivered", None), ("5.1.1", "relayed", None),
])
def test_rfc3464_status_codes_decide_hard_or_soft(status, action, kind):
    assert kind_of_status(status, action) == kind


def test_not_a_report_has_no_failures():
    raw = b"From: patient@example.org\r\nTo: care@riverside-clinic.example\r\nSubject: Re: thanks\r\n" \
          b"Message-ID: <x1@example.org>\r\n\r\nSee you Tuesday!\r\n"
    assert parse_report(raw).failures == []


def test_not_spam_feedback_is_not_a_complaint():
    raw = (FIXTURES / "arf_complaint.eml").read_bytes().replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert parse_report(raw).failures == []
    assert COMPLAINT == "complaint"
