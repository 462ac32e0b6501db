"""Every way of enrolling many patients (CSV import into a campaign, a tag tied to a campaign,
the staff page's bulk enroll) goes through the set-based `enroll_many`: the same rows as
one-by-one `enroll()` for the same patients, and one INSERT into `enrollments` per chunk, not
one per patient."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import event, select

from campaigns.bulk import BulkProgress, enroll_ids
from campaigns.enrollment import NotEnrollable, enroll
from drip.models import Campaign, CampaignOptOut, Enrollment, Subscriber, Suppression, Tag
from subscribers.importer import import_csv
from tests.campaigns.test_enroll_many import _campaign, _one_by_one, _rows

NOW = datetime(2026, 3, 7, 22, 45, tzinfo=timezone.utc)  # a weekend before the US clocks change
DELAYS = [0] + [2 * 1440 * i + 60 for i in range(1, 13)]
ZONES = ["", "America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata"]
N = 40


class Inserts:
    """Counts INSERT statements into `enrollments` (one executemany counts once)."""

    def __init__(self, engine) -> None:
        self.engine, self.n = engine, 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *rest) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ENROLLMENTS"):
            self.n += 1


def _known_patients(s, campaigns) -> None:
    """Patients already on file: p0 suppressed, p1 unsubscribed, p2 opted out and p3 enrolled in every campaign."""
    subs = [Subscriber(email=f"p{i}@example.org", email_key=f"p{i}@example.org", tz=ZONES[i % len(ZONES)] or None,
                       status="unsubscribed" if i == 1 else "active") for i in range(4)]
    s.add_all(subs)
    s.flush()
    s.add(Suppression(email_key="p0@example.org", reason="bounce"))
    for c in campaigns:
        s.add(CampaignOptOut(subscriber_id=subs[2].id, campaign_id=c.id))
        s.add(Enrollment(subscriber_id=subs[3].id, campaign_id=c.id, enrolled_at=NOW, state="active", source="earlier"))


def test_csv_import_and_tag_link_enroll_like_one_by_one(runtime, tmp_path):
    with runtime.sessions.begin() as s:
        one = _campaign(s, "one", DELAYS, "mon-fri 09:00-17:00", "published")
        direct = _campaign(s, "direct", DELAYS, "mon-fri 09:00-17:00", "published")
        linked = _campaign(s, "linked", DELAYS, "mon-fri 09:00-17:00", "published")
        s.add(Tag(name="starts-linked", campaign_id=linked.id))
        _known_patients(s, [one, direct, linked])
    lines = ["email,timezone,tags"] + [f"p{i}@example.org,{ZONES[i % len(ZONES)]},starts-linked" for i in range(N)]
    path = tmp_path / "patients.csv"
    path.write_text("\n".join(lines) + "\n")
    with Inserts(runtime.engine) as inserts:
        report = import_csv(runtime, path, now=NOW, enroll_in="direct", source="test", clinic_tz="America/Chicago",
                            chunk_rows=15)
    assert report.error_count == 0 and report.enrolled == 2 * (N - 4)
    assert inserts.n == 2 * 3  # per chunk of the file: one for the campaign, one for the tag's
    with runtime.sessions.begin() as s:
        ids = list(s.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        one = s.scalar(select(Campaign).where(Campaign.slug == "one"))
        assert _one_by_one(s, ids, one, NOW, "America/Chicago") == N - 4
        expected = _rows(s, one)
        for slug, source in (("direct", "test"), ("linked", "tag")):
            got = _rows(s, s.scalar(select(Campaign).where(Campaign.slug == slug)))
            earlier = [e for e in got[0] if e[3] == "earlier"]
            assert got[0] == sorted(e[:3] + ((source if e[3] == "test" else e[3]),) for e in expected[0])
            assert got[1] == expected[1] and len(earlier) == 1


def test_staff_bulk_enroll_like_one_by_one_with_reasons(runtime, monkeypatch):
    import campaigns.bulk

    monkeypatch.setattr(campaigns.bulk, "CHUNK", 16)
    with runtime.sessions.begin() as s:
        one = _campaign(s, "one", DELAYS, "mon-fri 09:00-17:00", "published")
        bulk = _campaign(s, "bulk", DELAYS, "mon-fri 09:00-17:00", "published")
        _known_patients(s, [one, bulk])
        s.add_all(Subscriber(email=f"n{i}@example.org", email_key=f"n{i}@example.org", tz=ZONES[i % len(ZONES)] or None)
                  for i in range(N - 4))
        s.flush()
        ids = list(s.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        one_id, bulk_id = one.id, bulk.id
    progress = BulkProgress(campaign_slug="bulk", what="everyone")
    with Inserts(runtime.engine) as inserts:
        enroll_ids(runtime.sessions, bulk_id, ids + [ids[-1]], NOW, clinic_tz="America/Chicago", source="test",
                   progress=progress)
    assert inserts.n == 3  # 41 ids in chunks of 16
    assert (progress.total, progress.done, progress.enrolled, progress.skipped) == (N + 1, N + 1, N - 4, 5)
    assert progress.finished and not progress.error
    assert Counter(progress.reasons) == {
        "patient is on the suppression list": 1,
        "patient is unsubscribed; only active subscribers are enrolled": 1,
        "patient unsubscribed from 'bulk'": 1,
        "patient is already enrolled in 'bulk'": 2,  # the earlier enrollment, and the repeated last id
    }
    refused: Counter[str] = Counter()  # what enroll() says, one by one, for the same ids into the twin
    with runtime.sessions.begin() as s:
        one = s.get(Campaign, one_id)
        one.slug = "bulk-twin"
        for sid in ids + [ids[-1]]:
            sub = s.get(Subscriber, sid)
            try:
                enroll(s, sub, one, NOW, clinic_tz="America/Chicago", source="test")
            except NotEnrollable as exc:
                refused[str(exc).split(": ", 1)[-1].replace(sub.email, "patient")] += 1
        assert _rows(s, s.get(Campaign, bulk_id)) == _rows(s, one)
    assert {k.replace("bulk-twin", "bulk"): n for k, n in refused.items()} == progress.reasons
