"""Newsletters (broadcasts): one email to every subscriber of a list, once or on a cron.

State lives in the database. A one-off newsletter gets its delivery rows when it is scheduled
(unique per (broadcast, subscriber), so scheduling twice never doubles). With `local_time`, the
send time is that wall-clock time on the given date in each subscriber's own zone. A recurring
newsletter is a parent row with a cron expression: APScheduler's `CronTrigger` computes the next
fire time (in the clinic's zone), and each tick turns a due occurrence into a child broadcast with
its own rows; the child's slug is derived from the fire time, so two workers cannot both create it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.draft import Draft
from campaigns.schedule import resolve_zone
from campaigns.service import check_slug
from campaigns.subjects import check_subject
from drip.errors import InputError, NotFoundError
from drip.models import (
    Broadcast,
    BroadcastStatus,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    Suppression,
    Tag,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "newsletters"


def parse_at(value: str, field: str = "--at") -> tuple[datetime, str | None]:
    """'2026-12-01 09:00' -> (naive wall time, 'HH:MM'). Naive on purpose: the zone is applied later."""
    try:
        at = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise InputError(f"expected 'YYYY-MM-DD HH:MM', got {value!r}", where=field) from None
    return at, at.strftime("%H:%M")


def parse_cron(expr: str, tz: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone=ZoneInfo(tz))
    except (ValueError, KeyError) as exc:
        raise InputError(f"not a cron expression ({exc})", where="--cron") from None


def load_template(name: str) -> dict[str, str]:
    """A newsletter template: 'Subject:', 'Preheader:', 'Title:' lines, a blank line, then the body."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"bad template name {name!r}", where="--template")
    path = TEMPLATES / f"{name}.txt"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in TEMPLATES.glob("*.txt")))
        raise NotFoundError(f"no newsletter template {name!r} (known: {known})", where="--template")
    head, _, body = path.read_text(encoding="utf-8").partition("\n\n")
    fields = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()
    return {"subject": fields.get("subject", ""), "preheader": fields.get("preheader", ""),
            "title": fields.get("title", fields.get("subject", "")), "body": body.strip()}


def content_from_article(draft: "Draft") -> dict[str, str]:
    """A whole article as one newsletter: item titles as their own paragraphs, nothing dropped."""
    from campaigns.subjects import subject_for

    parts: list[str] = []
    for step in draft.steps:
        if step.kind == "item":
            parts.append(step.title)
        parts.append(step.text)
    return {"title": draft.title, "subject": subject_for(draft.title, "", draft.title), "preheader": "",
            "body": "\n\n".join(p for p in parts if p.strip())}


def create_broadcast(
    session: Session, slug: str, *, title: str, subject: str, body: str, list_name: str, preheader: str = ""
) -> Broadcast:
    check_slug(slug)
    if session.scalar(select(Broadcast.id).where(Broadcast.slug == slug)) is not None:
        raise InputError(f"newsletter {slug!r} already exists", where="slug")
    tag = session.scalar(select(Tag).where(Tag.name == list_name))
    if tag is None:
        raise NotFoundError(f"no list {list_name!r}", where="--list")
    subject = " ".join(subject.split())
    if not subject:
        raise InputError("a newsletter needs a subject", where="subject")
    check_subject(subject, "subject")
    check_subject(" ".join(preheader.split()), "preheader")
    b = Broadcast(slug=slug, title=" ".join(title.split()) or subject, subject=subject[:200],
                  preheader=" ".join(preheader.split())[:300], body=body, tag_id=tag.id)
    session.add(b)
    session.flush()
    return b


def health_wording(b: Broadcast) -> list:
    """Places where the newsletter speaks of the reader's own health (campaigns/privacy.py): a
    newsletter goes to a whole list through a provider, so staff confirm before scheduling."""
    from campaigns.privacy import personal_health_wording

    return personal_health_wording("\n".join((b.subject or "", b.preheader or "", b.title or "", b.body or "")))


def get_broadcast(session: Session, slug: str) -> Broadcast:
    b = session.scalar(select(Broadcast).where(Broadcast.slug == slug))
    if b is None:
        raise NotFoundError(f"no newsletter {slug!r}", where="slug")
    return b


def _audience(session: Session, tag_id: int):
    return session.execute(
        select(Subscriber.id, Subscriber.tz)
        .join(SubscriberTag, SubscriberTag.subscriber_id == Subscriber.id)
        .where(
            SubscriberTag.tag_id == tag_id,
            Subscriber.status == SubscriberStatus.ACTIVE.value,
            ~exists().where(Suppression.email_key == Subscriber.email_key),
        )
    ).all()


def _due_for(at_wall: datetime, local: bool, sub_tz: str | None, clinic_tz: str) -> datetime:
    zone = resolve_zone(sub_tz, clinic_tz) if local else ZoneInfo(clinic_tz)
    return at_wall.replace(tzinfo=zone).astimezone(timezone.utc)


def materialize(session: Session, b: Broadcast, at_wall: datetime, local: bool, clinic_tz: str) -> int:
    """Create the missing delivery rows (idempotent: unique per (broadcast, subscriber))."""
    have = set(session.scalars(select(Delivery.subscriber_id).where(Delivery.broadcast_id == b.id)))
    rows = [
        {"subscriber_id": sid, "broadcast_id": b.id, "due_at": _due_for(at_wall, local, tz, clinic_tz),
         "status": DeliveryStatus.SCHEDULED.value}
        for sid, tz in _audience(session, b.tag_id)
        if sid not in have
    ]
    if rows:
        session.execute(insert(Delivery), rows)
    return len(rows)


#: How far ahead a newsletter may be scheduled: a typo ("2062" for "2026") is caught, and the
#: date arithmetic never leaves the calendar (9999-12-31 in a western zone is past year 9999 in UTC).
MAX_AHEAD = timedelta(days=5 * 366)

#: A newsletter that can still send: scheduled (or being sent) or paused by staff.
_LIVE = (BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value)
_MOVABLE = _LIVE + (BroadcastStatus.PAUSED.value,)


def _check_at(at: str, local: bool, clinic_tz: str, now: datetime) -> tuple[datetime, str, datetime]:
    """Parse `--at` and check it is a time this newsletter can go out: (wall, 'HH:MM', instant in UTC)."""
    wall, hhmm = parse_at(at)
    latest = now + MAX_AHEAD
    try:
        due = _due_for(wall, False, None, clinic_tz)
    except (OverflowError, ValueError):
        due = None
    if due is None or due > latest:
        raise InputError(f"{at.strip()} is more than 5 years ahead (latest {latest:%Y-%m-%d})", where="--at")
    if due < now - timedelta(minutes=1) and not local:
        raise InputError(f"{at} is in the past", where="--at")
    return wall, hhmm, due


def _has_rows(session: Session, b: Broadcast) -> bool:
    return session.scalar(select(Delivery.id).where(Delivery.broadcast_id == b.id).limit(1)) is not None


def _move_pending(session: Session, b: Broadcast, wall: datetime, local: bool, clinic_tz: str) -> int:
    """Give every row not yet claimed the new send time (each patient's zone with `local`)."""
    pending = session.execute(
        select(Delivery.id, Subscriber.tz)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.broadcast_id == b.id, Delivery.status == DeliveryStatus.SCHEDULED.value)
    ).all()
    by_due: dict[datetime, list[int]] = {}
    for did, tz in pending:
        by_due.setdefault(_due_for(wall, local, tz, clinic_tz), []).append(did)
    for due, ids in by_due.items():  # one UPDATE per distinct time (one per zone at most)
        for i in range(0, len(ids), 500):
            session.execute(update(Delivery).where(Delivery.id.in_(ids[i:i + 500])).values(due_at=due)
                            .execution_options(synchronize_session=False))
    return len(pending)


def _set_time(
    session: Session, b: Broadcast, *, at: str | None, local: bool, cron: str | None, clinic_tz: str, now: datetime,
) -> int:
    if (at is None) == (cron is None):
        raise InputError("give exactly one of --at or --cron", where="--at/--cron")
    if cron is not None:
        trigger = parse_cron(cron, clinic_tz)
        if not b.cron and _has_rows(session, b):
            raise InputError(f"newsletter {b.slug!r} already has its emails for {b.send_at:%Y-%m-%d %H:%M} UTC; "
                             "move it with --at, or cancel it and create a recurring one", where="--cron")
        first = trigger.get_next_fire_time(None, now)
        if first is None:
            raise InputError(f"cron {cron!r} never fires again", where="--cron")
        b.cron = cron
        b.send_at = first.astimezone(timezone.utc)
        b.local_time = None
        session.flush()
        return 0
    wall, hhmm, due = _check_at(at, local, clinic_tz, now)  # type: ignore[arg-type]
    if b.cron:
        # A recurring newsletter: `--at` moves its next occurrence (at the clinic's time, as every
        # occurrence is); the ones after it follow the cron again.
        if local:
            raise InputError("a recurring newsletter goes out at one clinic time; --local is for one-off ones",
                             where="--local")
        b.send_at = due
        session.flush()
        return 0
    b.send_at = due
    b.local_time = hhmm if local else None
    session.flush()
    moved = _move_pending(session, b, wall, local, clinic_tz)
    return moved + materialize(session, b, wall, local, clinic_tz)


def schedule(
    session: Session, b: Broadcast, *, at: str | None = None, local: bool = False, cron: str | None = None,
    clinic_tz: str, now: datetime,
) -> int:
    """Schedule once (`at`, in the clinic's zone or with `local` in each subscriber's) or on a cron.

    Scheduling again moves it: every email not yet sent gets the new time (the delivery rows are
    what the worker sends from, so the newsletter's own `send_at` alone would not move anything).
    Returns the number of recipients with an email scheduled (0 for a cron: rows come per occurrence).
    """
    if b.status in (BroadcastStatus.SENT.value, BroadcastStatus.CANCELLED.value):
        raise InputError(f"newsletter {b.slug!r} is {b.status}", where="slug")
    n = _set_time(session, b, at=at, local=local, cron=cron, clinic_tz=clinic_tz, now=now)
    if b.status != BroadcastStatus.PAUSED.value:  # a paused one stays paused until resumed
        b.status = BroadcastStatus.SCHEDULED.value
    session.flush()
    return n


def reschedule(
    session: Session, b: Broadcast, *, at: str | None = None, local: bool = False, cron: str | None = None,
    clinic_tz: str, now: datetime,
) -> int:
    """Move a scheduled (or paused) newsletter; rows not yet sent move with it.

    A recurring one takes a new cron, or `at` for its next occurrence. Returns the rows moved.
    """
    if b.status not in _MOVABLE:
        raise InputError(f"only a scheduled or paused newsletter can be rescheduled ({b.slug} is {b.status})",
                         where="slug")
    return _set_time(session, b, at=at, local=local, cron=cron, clinic_tz=clinic_tz, now=now)


def _family(session: Session, b: Broadcast, statuses: tuple[str, ...]) -> list[int]:
    """This newsletter and its occurrences (a recurring one's children) in one of `statuses`."""
    return [b.id] + list(session.scalars(select(Broadcast.id).where(Broadcast.parent_id == b.id,
                                                                   Broadcast.status.in_(statuses))))


def _pending_count(session: Session, ids: list[int]) -> int:
    return int(session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.broadcast_id.in_(ids), Delivery.status == DeliveryStatus.SCHEDULED.value)) or 0)


def pause(session: Session, b: Broadcast) -> int:
    """Hold a newsletter: nothing more goes out (the worker claims rows of live newsletters only),
    a recurring one fires no occurrence, until `resume`. Emails a worker had already claimed
    (`sending`) still go out, as with a cancel. Returns the emails held."""
    if b.status not in _LIVE:
        raise InputError(f"only a scheduled newsletter can be paused ({b.slug} is {b.status})", where="slug")
    ids = _family(session, b, _LIVE)
    session.execute(update(Broadcast).where(Broadcast.id.in_(ids)).values(status=BroadcastStatus.PAUSED.value)
                    .execution_options(synchronize_session=False))
    session.refresh(b)
    return _pending_count(session, ids)


def resume(session: Session, b: Broadcast, *, clinic_tz: str, now: datetime) -> int:
    """Undo `pause`. Held emails whose time has passed go out at once; a recurring newsletter skips
    the occurrences that fell in the pause and continues with its next one. Returns the emails released."""
    if b.status != BroadcastStatus.PAUSED.value:
        raise InputError(f"only a paused newsletter can be resumed ({b.slug} is {b.status})", where="slug")
    ids = _family(session, b, (BroadcastStatus.PAUSED.value,))
    session.execute(update(Broadcast).where(Broadcast.id.in_(ids)).values(status=BroadcastStatus.SCHEDULED.value)
                    .execution_options(synchronize_session=False))
    session.refresh(b)
    if b.cron and b.send_at is not None and b.send_at <= now:
        after = parse_cron(b.cron, clinic_tz).get_next_fire_time(None, now)
        b.send_at = after.astimezone(timezone.utc) if after else None
        session.flush()
    return _pending_count(session, ids)


def next_send(b: Broadcast) -> datetime | None:
    """When this newsletter sends next, or None: a cancelled, sent or paused one has no next date."""
    return b.send_at if b.status in _LIVE else None


def cancel(session: Session, b: Broadcast) -> int:
    """Stop a newsletter (and, for a recurring one, its future occurrences). Sent rows stay sent."""
    b.status = BroadcastStatus.CANCELLED.value
    ids = _family(session, b, _MOVABLE)
    session.execute(update(Broadcast).where(Broadcast.id.in_(ids)).values(status=BroadcastStatus.CANCELLED.value))
    res = session.execute(
        update(Delivery)
        .where(Delivery.broadcast_id.in_(ids), Delivery.status == DeliveryStatus.SCHEDULED.value)
        .values(status=DeliveryStatus.CANCELLED.value, last_error="newsletter cancelled")
    )
    return res.rowcount or 0


def run_due(session: Session, now: datetime, clinic_tz: str) -> int:
    """Called each tick: fire due cron occurrences, close newsletters with nothing left to send."""
    fired = 0
    parents = session.scalars(
        select(Broadcast).where(Broadcast.cron.is_not(None), Broadcast.status == BroadcastStatus.SCHEDULED.value,
                                Broadcast.send_at <= now)
    ).all()
    for parent in parents:
        trigger = parse_cron(parent.cron, clinic_tz)
        # Occurrences missed while no worker ran are coalesced: only the latest one is sent.
        fire, nxt = parent.send_at, parent.send_at
        while nxt is not None and nxt <= now:
            fire = nxt
            after = trigger.get_next_fire_time(fire, now)
            nxt = after.astimezone(timezone.utc) if after else None
        slug = f"{parent.slug[:60]}-{fire:%Y%m%d%H%M}"
        try:
            with session.begin_nested():
                child = Broadcast(slug=slug, title=parent.title, subject=parent.subject, preheader=parent.preheader,
                                  body=parent.body, template=parent.template, tag_id=parent.tag_id,
                                  status=BroadcastStatus.SCHEDULED.value, send_at=fire, parent_id=parent.id)
                session.add(child)
                session.flush()
                materialize(session, child, fire.astimezone(ZoneInfo(clinic_tz)).replace(tzinfo=None), False, clinic_tz)
            fired += 1
        except IntegrityError:
            pass  # another worker created this occurrence
        parent.send_at = nxt
        if nxt is None:
            parent.status = BroadcastStatus.SENT.value
    # one-off newsletters whose rows are all done
    pending = exists().where(
        and_(Delivery.broadcast_id == Broadcast.id,
             Delivery.status.in_([DeliveryStatus.SCHEDULED.value, DeliveryStatus.SENDING.value]))
    )
    session.execute(
        update(Broadcast)
        .where(Broadcast.status == BroadcastStatus.SCHEDULED.value, Broadcast.cron.is_(None),
               Broadcast.send_at <= now, ~pending)
        .values(status=BroadcastStatus.SENT.value)
        .execution_options(synchronize_session=False)
    )
    return fired


def counts(session: Session, b: Broadcast) -> dict[str, int]:
    ids = [b.id] + list(session.scalars(select(Broadcast.id).where(Broadcast.parent_id == b.id)))
    return dict(
        session.execute(
            select(Delivery.status, func.count()).where(Delivery.broadcast_id.in_(ids)).group_by(Delivery.status)
        ).all()
    )
