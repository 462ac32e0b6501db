"""Enrollment: a subscriber joins a campaign and gets one delivery row per step.

Due times are fixed here (enrolled_at + step delay, moved into the campaign's send window in the
subscriber's own zone, with a minimum spacing between steps) so the ledger shows what will go out
when. The dispatcher re-checks the window and the frequency cap at send time, because a worker can
be down or a newsletter can land on the same day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from sqlalchemy import Integer, String, exists, func, insert, literal, select, text, type_coerce, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from campaigns.schedule import (
    Cadence, SequencePlanner, parse_send_time, parse_window, resolve_zone, schedule_sequence,
)
from drip.errors import InputError
from drip.models import (
    Campaign,
    CampaignOptOut,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Step,
    Subscriber,
    SubscriberStatus,
    Suppression,
    Tag,
    UTCDateTime,
)
from subscribers.service import dialect_insert
from subscribers.suppression import is_suppressed
from subscribers.unsubscribe import is_opted_out

MIN_SPACING = timedelta(hours=20)


def cadence_of(campaign: Campaign) -> Cadence:
    """The campaign's cadence settings as the schedule arithmetic takes them."""
    return Cadence(business_days=bool(campaign.business_days), send_time=parse_send_time(campaign.send_time))


class NotEnrollable(InputError):
    """The subscriber cannot be enrolled (unsubscribed, suppressed, already enrolled, campaign not live)."""


def enroll(
    session: Session,
    subscriber: Subscriber,
    campaign: Campaign,
    now: datetime,
    *,
    clinic_tz: str,
    source: str = "cli",
) -> Enrollment:
    if campaign.status != CampaignStatus.PUBLISHED.value:
        raise NotEnrollable(f"campaign {campaign.slug!r} is {campaign.status}, not published", where="--campaign")
    if subscriber.status != SubscriberStatus.ACTIVE.value:
        raise NotEnrollable(f"{subscriber.email} is {subscriber.status}; only active subscribers are enrolled", where="email")
    if is_suppressed(session, subscriber.email_key):
        raise NotEnrollable(f"{subscriber.email} is on the suppression list", where="email")
    if is_opted_out(session, subscriber.id, campaign.id):
        raise NotEnrollable(f"{subscriber.email} unsubscribed from {campaign.slug!r}", where="email")
    active = session.scalar(
        select(Enrollment.id).where(
            Enrollment.subscriber_id == subscriber.id,
            Enrollment.campaign_id == campaign.id,
            Enrollment.state == EnrollmentState.ACTIVE.value,
        )
    )
    if active is not None:
        raise NotEnrollable(f"{subscriber.email} is already enrolled in {campaign.slug!r}", where="email")

    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    tz = resolve_zone(subscriber.tz, clinic_tz)
    window = parse_window(campaign.send_window)
    # Date-anchored steps are outside the chain of delays: a placeholder here, planned below.
    chained = [s for s in steps if s.anchor_attribute is None]
    chain = iter(schedule_sequence(now, [timedelta(minutes=s.delay_minutes) for s in chained], window, tz,
                                   MIN_SPACING, cadence_of(campaign)))
    due = [now if s.anchor_attribute is not None else next(chain) for s in steps]

    enrollment = Enrollment(subscriber_id=subscriber.id, campaign_id=campaign.id, enrolled_at=now, source=source)
    try:
        with session.begin_nested():
            session.add(enrollment)
            session.flush()
    except IntegrityError:  # a concurrent enrollment won the race (partial unique index)
        raise NotEnrollable(f"{subscriber.email} is already enrolled in {campaign.slug!r}", where="email") from None
    if steps:
        session.execute(
            insert(Delivery),
            [
                {
                    "subscriber_id": subscriber.id,
                    "enrollment_id": enrollment.id,
                    "step_id": step.id,
                    "due_at": at,
                    "status": DeliveryStatus.SCHEDULED.value,
                }
                for step, at in zip(steps, due)
            ],
        )
        if len(chained) < len(steps):
            from campaigns.anchors import plan_anchored

            plan_anchored(session, now, clinic_tz=clinic_tz, enrollment_ids=[enrollment.id])
    from webhooks.outbox import emit

    emit(session, "enrollment.started", [{"enrollment_id": enrollment.id, "subscriber_id": subscriber.id,
                                          "campaign": campaign.slug, "source": source}], now)
    return enrollment


BULK_CHUNK = 5000  # subscribers per round: IN lists well under SQLite's 32,766 parameters, memory flat
_PLAN_ROWS = 400  # (zone, step) rows per INSERT ... SELECT: SQLite allows 500 terms in one UNION ALL


@dataclass
class BulkEnrollment:
    """What `enroll_many` did: enrollments made, and the patients passed over by reason.

    Reasons (the checks of `enroll`, in its order): missing (no such subscriber), inactive,
    suppressed, opted_out (unsubscribed from this campaign), enrolled (already has an active
    enrollment, including a repeat of an id in the same call). `inactive` split by the
    subscriber's status, for messages that say which (as `enroll` does).
    """

    enrolled: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    inactive: Counter[str] = field(default_factory=Counter)

    def reasons(self, slug: str) -> Counter[str]:
        """Patients passed over, by the sentence `enroll` refuses them with ("patient" for the address)."""
        why = {"missing": "patient is no longer on file", "suppressed": "patient is on the suppression list",
               "opted_out": f"patient unsubscribed from {slug!r}",
               "enrolled": f"patient is already enrolled in {slug!r}"}
        out: Counter[str] = Counter({why[k]: n for k, n in self.skipped.items() if n and k != "inactive"})
        for status, n in self.inactive.items():
            out[f"patient is {status}; only active subscribers are enrolled"] += n
        return out


def enroll_many(
    session: Session,
    subscribers: Iterable[int] | Select,
    campaign: Campaign,
    now: datetime,
    *,
    clinic_tz: str,
    source: str = "bulk",
    chunk: int = BULK_CHUNK,
) -> BulkEnrollment:
    """Enroll many patients at once: the rows `enroll` would make for each, in a few statements per chunk.

    `subscribers` is an iterable of subscriber ids or a SELECT whose first column is one (e.g. a
    tag's members; read in id order, a chunk at a time). Per chunk of `chunk` patients: one query
    for the checks, one `INSERT ... SELECT ... RETURNING` for the enrollments, one
    `INSERT ... SELECT` for their deliveries (joined to the due times, which are computed once per
    zone: everyone here is enrolled at the same `now`). Patients `enroll` would refuse are counted
    in `skipped` instead; an unknown zone raises, as it does there. Why: the ORM path runs about
    eight statements per patient, which made a tag-linked import of 100,000 patients take minutes.
    """
    if campaign.status != CampaignStatus.PUBLISHED.value:
        raise NotEnrollable(f"campaign {campaign.slug!r} is {campaign.status}, not published", where="--campaign")
    steps = session.execute(
        select(Step.id, Step.delay_minutes, Step.anchor_attribute).where(Step.campaign_id == campaign.id)
        .order_by(Step.position)
    ).all()
    chained = [(sid, d) for sid, d, anchor in steps if anchor is None]
    planner = SequencePlanner(now, [timedelta(minutes=d) for _, d in chained], parse_window(campaign.send_window),
                              MIN_SPACING, cadence_of(campaign))
    bulk = _Bulk(session, campaign, now, clinic_tz, source, [sid for sid, _ in chained], planner,
                 [sid for sid, _, anchor in steps if anchor is not None])
    outcome = BulkEnrollment()
    for ids in _id_chunks(session, subscribers, max(1, chunk)):
        bulk.enroll_chunk(ids, outcome)
    return outcome


def _id_chunks(session: Session, subscribers: Iterable[int] | Select, size: int) -> Iterator[list[int]]:
    if isinstance(subscribers, Select):
        sub = subscribers.subquery()
        key = sub.c[0]
        last = None
        while True:
            query = select(key).distinct().order_by(key).limit(size)
            if last is not None:
                query = query.where(key > last)
            ids = list(session.scalars(query))
            if not ids:
                return
            yield ids
            last = ids[-1]
    else:
        it = iter(subscribers)
        while ids := list(islice(it, size)):
            yield ids


class _Bulk:
    """One `enroll_many` call: the campaign's constants and the per-zone caches its chunks share."""

    def __init__(self, session: Session, campaign: Campaign, now: datetime, clinic_tz: str, source: str,
                 step_ids: list[int], planner: SequencePlanner, anchored: list[int] = ()) -> None:
        self.session, self.campaign, self.now, self.clinic_tz, self.source = session, campaign, now, clinic_tz, source
        self.step_ids, self.planner, self.anchored = step_ids, planner, list(anchored)
        self.postgresql = session.get_bind().dialect.name == "postgresql"
        self.zones: dict[str | None, object] = {}  # stored tz -> ZoneInfo (resolve_zone once per value)

    def zone(self, tz: str | None):
        found = self.zones.get(tz)
        if found is None:
            found = self.zones[tz] = resolve_zone(tz, self.clinic_tz)
        return found

    def enroll_chunk(self, ids: list[int], outcome: BulkEnrollment) -> None:
        s, campaign = self.session, self.campaign
        counts = Counter(ids)
        opted_out = exists().where(CampaignOptOut.subscriber_id == Subscriber.id,
                                   CampaignOptOut.campaign_id == campaign.id)
        active = exists().where(Enrollment.subscriber_id == Subscriber.id, Enrollment.campaign_id == campaign.id,
                                Enrollment.state == EnrollmentState.ACTIVE.value)
        rows = {
            r.id: r
            for r in s.execute(
                select(Subscriber.id, Subscriber.tz, Subscriber.status, Subscriber.email_key,
                       opted_out.label("opted_out"), active.label("active")).where(Subscriber.id.in_(list(counts)))
            )
        }
        keys = {r.email_key.strip().lower() for r in rows.values() if r.status == SubscriberStatus.ACTIVE.value}
        suppressed = set(s.scalars(select(Suppression.email_key).where(Suppression.email_key.in_(keys)))) if keys else set()

        eligible: dict[int, str | None] = {}  # subscriber id -> stored zone, in the order given
        for sid, n in counts.items():
            row = rows.get(sid)
            if row is None:
                reason = "missing"
            elif row.status != SubscriberStatus.ACTIVE.value:
                reason = "inactive"
                outcome.inactive[row.status] += n
            elif row.email_key.strip().lower() in suppressed:
                reason = "suppressed"
            elif row.opted_out:
                reason = "opted_out"
            elif row.active:
                reason = "enrolled"
            else:
                self.zone(row.tz)  # an unknown zone raises, as in enroll(), before this chunk writes
                eligible[sid] = row.tz
                outcome.skipped["enrolled"] += n - 1  # a repeated id finds the first one's enrollment
                continue
            outcome.skipped[reason] += n
        if not eligible:
            return

        if self.postgresql:
            made = self._insert_enrollments_pg(list(eligible))
        else:
            made = self._insert_enrollments(list(eligible))
        outcome.enrolled += len(made)
        outcome.skipped["enrolled"] += len(eligible) - len(made)
        if made:
            from webhooks.outbox import emit

            emit(s, "enrollment.started", lambda: [
                {"enrollment_id": eid, "subscriber_id": sid, "campaign": campaign.slug, "source": self.source}
                for eid, sid in made], self.now)
        if not made or not (self.step_ids or self.anchored):
            return
        plan: list[tuple[str, int, datetime]] = []
        for tz in {eligible[sid] or "" for _, sid in made}:
            plan.extend((tz, step, at) for step, at in zip(self.step_ids, self.planner.for_zone(self.zone(tz or None))))
            plan.extend((tz, step, self.now) for step in self.anchored)  # placeholders, planned below
        if self.postgresql:
            self._insert_deliveries_pg([(eid, sid, eligible[sid] or "") for eid, sid in made], plan)
        else:
            self._insert_deliveries([eid for eid, _ in made], plan)
        if self.anchored:
            from campaigns.anchors import plan_anchored

            plan_anchored(s, self.now, clinic_tz=self.clinic_tz, enrollment_ids=[eid for eid, _ in made])

    # SQLite: INSERT ... SELECT from the tables (its planner walks the IN list on the primary key).

    def _insert_enrollments(self, sids: list[int]) -> list[tuple[int, int]]:
        return [tuple(r) for r in self.session.execute(
            dialect_insert(self.session, Enrollment.__table__)
            .from_select(
                ["subscriber_id", "campaign_id", "enrolled_at", "state", "source"],
                select(Subscriber.id, literal(self.campaign.id, Integer), literal(self.now, UTCDateTime),
                       literal(EnrollmentState.ACTIVE.value, String), literal(self.source, String))
                .where(Subscriber.id.in_(sids))
                .order_by(Subscriber.id),
            )
            .on_conflict_do_nothing()  # a concurrent enroll() won the race (partial unique index)
            .returning(Enrollment.id, Enrollment.subscriber_id)
        )]

    def _insert_deliveries(self, enrollment_ids: list[int], plan: list[tuple[str, int, datetime]]) -> None:
        for i in range(0, len(plan), _PLAN_ROWS):
            terms = [
                select(type_coerce(literal(tz), String).label("tz"), literal(step, Integer).label("step_id"),
                       literal(at, UTCDateTime).label("due_at"))
                for tz, step, at in plan[i : i + _PLAN_ROWS]
            ]
            due = (union_all(*terms) if len(terms) > 1 else terms[0]).subquery("due")
            self.session.execute(
                insert(Delivery.__table__).from_select(
                    ["subscriber_id", "enrollment_id", "step_id", "due_at", "status", "attempts", "last_error"],
                    select(Enrollment.subscriber_id, Enrollment.id, due.c.step_id, due.c.due_at,
                           literal(DeliveryStatus.SCHEDULED.value, String), literal(0, Integer), literal("", String))
                    .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
                    .join(due, due.c.tz == func.coalesce(Subscriber.tz, ""))
                    .where(Enrollment.id.in_(enrollment_ids)),
                )
            )

    # PostgreSQL: INSERT ... SELECT from arrays (unnest), reading no table. Rows written in this
    # transaction have no statistics yet, and a join through `enrollments` and `subscribers` was
    # planned as a hash of every subscriber times every step per chunk: slower with each chunk.

    def _insert_enrollments_pg(self, sids: list[int]) -> list[tuple[int, int]]:
        return [tuple(r) for r in self.session.execute(_PG_ENROLLMENTS, {
            "sids": sids, "campaign_id": self.campaign.id, "now": self.now,
            "state": EnrollmentState.ACTIVE.value, "source": self.source,
        })]

    def _insert_deliveries_pg(self, made: list[tuple[int, int, str]], plan: list[tuple[str, int, datetime]]) -> None:
        self.session.execute(_PG_DELIVERIES, {
            "eids": [e for e, _, _ in made], "sids": [s for _, s, _ in made], "tzs": [z for _, _, z in made],
            "plan_tz": [z for z, _, _ in plan], "plan_step": [st for _, st, _ in plan],
            "plan_due": [at for _, _, at in plan], "status": DeliveryStatus.SCHEDULED.value,
        })


_PG_ENROLLMENTS = text(
    "INSERT INTO enrollments (subscriber_id, campaign_id, enrolled_at, state, source)"
    " SELECT u.sid, :campaign_id, :now, :state, :source FROM unnest(CAST(:sids AS integer[])) AS u(sid)"
    " ON CONFLICT DO NOTHING"  # a concurrent enroll() won the race (partial unique index)
    " RETURNING id, subscriber_id"
)
_PG_DELIVERIES = text(
    "INSERT INTO deliveries (subscriber_id, enrollment_id, step_id, due_at, status, attempts, last_error)"
    " SELECT u.sid, u.eid, p.step_id, p.due_at, :status, 0, ''"
    " FROM unnest(CAST(:sids AS integer[]), CAST(:eids AS integer[]), CAST(:tzs AS text[])) AS u(sid, eid, tz)"
    " JOIN unnest(CAST(:plan_tz AS text[]), CAST(:plan_step AS integer[]), CAST(:plan_due AS timestamptz[]))"
    " AS p(tz, step_id, due_at) ON p.tz = u.tz"
)


def enroll_for_tags(
    session: Session, subscriber_ids: list[int], tag_ids: list[int], now: datetime, *, clinic_tz: str | None = None
) -> int:
    """Enroll these subscribers in every published campaign tied to these tags. Returns enrollments made.

    Subscribers who cannot be enrolled (already enrolled, unsubscribed, suppressed) are passed over:
    joining a list is not an error because a campaign is already running for them.
    """
    if not subscriber_ids or not tag_ids:
        return 0
    campaign_ids = set(
        session.scalars(select(Tag.campaign_id).where(Tag.id.in_(tag_ids), Tag.campaign_id.is_not(None)))
    )
    if clinic_tz is None:
        from drip.config import load_settings

        clinic_tz = load_settings().clinic.timezone
    made = 0
    for campaign in session.scalars(select(Campaign).where(Campaign.id.in_(campaign_ids)).order_by(Campaign.id)):
        if campaign.status != CampaignStatus.PUBLISHED.value:
            continue
        made += enroll_many(session, subscriber_ids, campaign, now, clinic_tz=clinic_tz, source="tag").enrolled
    return made
