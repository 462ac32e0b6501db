"""The deliveries the fixtures in tests/fixtures/bounces/ return, and what each fixture must be read as."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from drip.models import Delivery
from tests.factories import make_subscriber

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bounces"
SECRET = "test-secret-key-not-for-production"  # tests/conftest.py settings: the fixtures' VERP MACs
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)

# delivery id -> (patient address, the Message-ID we sent, whether the ledger recorded it)
DELIVERIES = {
    101: ("alice@example.org", "<drip.101.9f2c4e1a7b3d5e60@riverside-clinic.example>", True),
    102: ("bob@example.net", "<drip.102.0a1b2c3d4e5f6071@riverside-clinic.example>", True),
    103: ("carol@example.com", "<drip.103.77aa88bb99cc00dd@riverside-clinic.example>", False),
    104: ("dave@contoso-patients.example", "<drip.104.c0ffee00deadbeef@riverside-clinic.example>", True),
    105: ("erin@gmail-patient.example", "<drip.105.1122334455667788@riverside-clinic.example>", True),
    106: ("frank@oldhost.example", "<drip.106.aabbccddeeff0011@riverside-clinic.example>", True),
    107: ("grace@mailprovider.example", "<drip.107.5566778899aabbcc@riverside-clinic.example>", True),
}

# fixture -> (address, kind, status, delivery id, matched by)
EXPECTED = {
    "postfix_hard.eml": ("alice@example.org", "hard", "5.1.1", 101, "verp"),
    "postfix_delayed.eml": ("bob@example.net", "soft", "4.2.2", 102, "verp"),
    "exim_hard.eml": ("carol@example.com", "hard", "5.1.1", 103, "header"),  # no VERP, no recorded Message-ID
    "o365_hard.eml": ("dave@contoso-patients.example", "hard", "5.1.10", 104, "message-id"),
    "gmail_hard.eml": ("erin@gmail-patient.example", "hard", "5.1.1", 105, "message-id"),
    "qmail_hard.eml": ("frank@oldhost.example", "hard", "5.1.1", 106, "verp"),
    "arf_complaint.eml": ("grace@mailprovider.example", "complaint", "", 107, "verp"),
}


def seed_deliveries(session) -> dict[int, int]:
    """The fixtures' deliveries, sent; returns delivery id -> subscriber id."""
    out = {}
    for did, (address, message_id, recorded) in DELIVERIES.items():
        sub = make_subscriber(session, address)
        session.add(Delivery(id=did, subscriber_id=sub.id, due_at=T0, status="sent", sent_at=T0,
                             provider_message_id=message_id if recorded else None))
        out[did] = sub.id
    session.flush()
    return out


def make_maildir(root: Path, names=None) -> Path:
    """A maildir with the named fixtures (all by default) in new/."""
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(sorted(EXPECTED if names is None else names)):
        shutil.copy(FIXTURES / name, root / "new" / f"1765000000.M{i}P1.test")
    return root
