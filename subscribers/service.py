"""Subscribers in the database: add, look up, tag, list.

Rules shared with the CSV importer (subscribers/importer.py):

- An address is checked with email-validator (syntax only, no DNS: imports must not depend on
  the network). The address is stored as normalised (domain lower-cased, local part as typed);
  `email_key` is the whole address lower-cased, so `Ann@X.org` and `ann@x.org` are one patient.
- Adding an address that is already there is not an error: it gets the new tags, and its name /
  zone change only when a new value is given (an empty name or zone never wipes a known one).
  Its status is never changed here: re-adding an unsubscribed patient must not resubscribe them.
- New subscribers added by staff (CLI, import) are `active` with consent recorded as given to the
  clinic (`consent_source` = where they came from, `consent_at` = now).
- Tag names are kept as typed (trimmed) and matched exactly. Tagging enrolls the newly tagged
  patients in the campaign tied to a tag, if any; patients who already had the tag are not
  enrolled again (re-importing a list must not restart a finished campaign).
"""

from __future__ import annotations

import re
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Sequence

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, and_, column, func, or_, select, table
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from drip.errors import InputError, NotFoundError
from drip.models import Subscriber, SubscriberStatus, SubscriberTag, Tag, utcnow
from subscribers.suppression import erased_keys

MAX_NAME = 200
MAX_TAG = 100
MAX_ZONE = 64
MAX_LIMIT = 1000
IN_CHUNK = 5000  # ids per IN (...) list: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters

# Unicode Cc (controls, incl. CR/LF/TAB/NUL) and U+2028/U+2029 (line/paragraph separators): a name
# ends up in a greeting and possibly a header, so none of these may survive.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


def normalize_email(raw: str | None) -> tuple[str, str]:
    """(address as stored, email_key). Raises InputError(where="email") with the validator's reason."""
    text = (raw or "").strip()
    if not text:
        raise InputError("missing email address", where="email")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"{_shorten(text)!r} is not a valid address: {exc}", where="email") from None
    email = checked.normalized
    return email, email.lower()


def email_key(raw: str) -> str:
    return normalize_email(raw)[1]


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """lower-case name -> canonical IANA name, so `europe/paris` is accepted as `Europe/Paris`."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@lru_cache(maxsize=4096)
def validate_zone(name: str | None) -> str | None:
    """A canonical IANA zone name, or None for empty (the clinic's zone applies). InputError(where="tz")."""
    text = (name or "").strip()
    if not text:
        return None
    canonical: str | None = None
    if len(text) <= MAX_ZONE:
        zones = _zones()
        if zones:
            canonical = zones.get(text.lower())
        else:  # no zone list on this system (no tz database files), but the tzdata package may load
            try:
                zoneinfo.ZoneInfo(text)
                canonical = text
            except (ValueError, zoneinfo.ZoneInfoNotFoundError, OSError):
                canonical = None
    if canonical is None:
        raise InputError(f"unknown time zone {_shorten(text)!r} (use an IANA name like America/New_York)", where="tz")
    return canonical


def clean_name(raw: str | None) -> str:
    """Drop control characters and line breaks, collapse spaces, cut to 200 characters."""
    if not raw:
        return ""
    return _SPACES.sub(" ", _CONTROL.sub(" ", raw)).strip()[:MAX_NAME]


@lru_cache(maxsize=4096)  # the same few tags repeat on every row of an import
def clean_tag(raw: str) -> str:
    """A tag name as stored: trimmed; empty, too long or with control characters is an InputError."""
    name = _SPACES.sub(" ", raw).strip()
    if not name:
        raise InputError("empty tag name", where="tags")
    if len(name) > MAX_TAG:
        raise InputError(f"tag name longer than {MAX_TAG} characters: {_shorten(name)!r}", where="tags")
    if _CONTROL.search(name):
        raise InputError(f"tag name has control characters: {_shorten(name)!r}", where="tags")
    return name


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dialect_insert(session: Session, table: Any):
    """`INSERT` with ON CONFLICT support for the session's database (SQLite or PostgreSQL)."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"drip supports SQLite and PostgreSQL, not {name}")


# ---------------------------------------------------------------------------------------------
# one subscriber


def find_subscriber(session: Session, key: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email_key == key))


def get_subscriber(session: Session, email: str) -> Subscriber:
    """The subscriber with this address (any case). NotFoundError when there is none."""
    _, key = normalize_email(email)
    sub = find_subscriber(session, key)
    if sub is None:
        raise NotFoundError(f"no subscriber with address {key}", where="email")
    return sub


class ErasedAddress(InputError):
    """The address belongs to a patient whose data was erased: it is never re-added."""


def upsert_subscriber(
    session: Session,
    email: str,
    name: str = "",
    tz: str | None = None,
    tags: Iterable[str] = (),
    source: str = "cli",
    now: datetime | None = None,
    *,
    clinic_tz: str = "UTC",
) -> tuple[Subscriber, bool]:
    """Like add_subscriber, and also says whether the subscriber is new."""
    now = now or utcnow()
    address, key = normalize_email(email)
    name = clean_name(name)
    zone = validate_zone(tz)
    tag_names = [clean_tag(t) for t in tags]  # all input checked before anything is written

    sub = find_subscriber(session, key)
    created = sub is None
    if sub is None and erased_keys(session, [key]):
        raise ErasedAddress("this patient's data was erased at their request (only a suppression hash is "
                            "kept); the address cannot be added again", where="email")
    if sub is None:
        sub = Subscriber(
            email=address,
            email_key=key,
            name=name,
            tz=zone,
            status=SubscriberStatus.ACTIVE.value,
            consent_source=source[:64],
            consent_at=now,
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():  # a concurrent add of the same address wins the race
                session.add(sub)
                session.flush()
        except IntegrityError:
            sub = find_subscriber(session, key)
            if sub is None:
                raise
            created = False
    if created:
        from webhooks.outbox import emit

        emit(session, "subscriber.subscribed", lambda: [{"subscriber_id": sub.id, "status": sub.status,
                                                         "source": sub.consent_source}], now)
    if not created:
        if name:
            sub.name = name
        if zone:
            sub.tz = zone
        if name or zone:
            sub.updated_at = now
        session.flush()
    if tag_names:
        tag_subscribers(session, [sub.id], tag_names, now, clinic_tz=clinic_tz)
    return sub, created


def add_subscriber(
    session: Session,
    email: str,
    name: str = "",
    tz: str | None = None,
    tags: Iterable[str] = (),
    source: str = "cli",
    now: datetime | None = None,
    *,
    clinic_tz: str = "UTC",
) -> Subscriber:
    """Add a subscriber, or update the one with this address (see the module rules). Idempotent."""
    return upsert_subscriber(session, email, name, tz, tags, source, now, clinic_tz=clinic_tz)[0]


# ---------------------------------------------------------------------------------------------
# tags


@dataclass(frozen=True)
class TagInfo:
    id: int
    campaign_id: int | None


def ensure_tags(session: Session, names: Iterable[str]) -> dict[str, TagInfo]:
    """name -> tag for each name, creating the missing ones (ON CONFLICT DO NOTHING: concurrent-safe)."""
    wanted = sorted({clean_tag(n) for n in names})
    if not wanted:
        return {}
    found: dict[str, TagInfo] = {}
    for part in _chunks(wanted, IN_CHUNK):
        found.update(_load_tags(session, part))
    missing = [n for n in wanted if n not in found]
    if missing:
        session.execute(
            dialect_insert(session, Tag.__table__).on_conflict_do_nothing(index_elements=["name"]),
            [{"name": n, "description": ""} for n in missing],
        )
        for part in _chunks(missing, IN_CHUNK):
            found.update(_load_tags(session, part))
    return found


def _load_tags(session: Session, names: Sequence[str]) -> dict[str, TagInfo]:
    rows = session.execute(select(Tag.name, Tag.id, Tag.campaign_id).where(Tag.name.in_(names)))
    return {name: TagInfo(tid, cid) for name, tid, cid in rows}


@dataclass(frozen=True)
class TagOutcome:
    linked: int  # (subscriber, tag) pairs that are new
    enrolled: int  # campaign enrollments made because of them


def link_tags(
    session: Session,
    pairs: Iterable[tuple[int, str]],
    now: datetime,
    *,
    clinic_tz: str = "UTC",
) -> TagOutcome:
    """Give each (subscriber id, tag name) pair its tag; enroll the newly tagged in the tag's campaign.

    Works in bulk (one query per 5,000 pairs) so the importer can call it per chunk.
    """
    by_name: dict[str, set[int]] = defaultdict(set)
    for sid, name in pairs:
        by_name[name].add(sid)
    if not by_name:
        return TagOutcome(0, 0)
    tags = ensure_tags(session, by_name)
    wanted = {(sid, tags[clean_tag(name)].id) for name, ids in by_name.items() for sid in ids}
    tag_ids = sorted({tid for _, tid in wanted})
    existing: set[tuple[int, int]] = set()
    for part in _chunks(sorted({sid for sid, _ in wanted}), IN_CHUNK):
        rows = session.execute(
            select(SubscriberTag.subscriber_id, SubscriberTag.tag_id).where(
                SubscriberTag.subscriber_id.in_(part), SubscriberTag.tag_id.in_(tag_ids)
            )
        )
        existing.update((sid, tid) for sid, tid in rows)
    new = sorted(wanted - existing)
    if new:
        session.execute(
            dialect_insert(session, SubscriberTag.__table__).on_conflict_do_nothing(),
            [{"subscriber_id": sid, "tag_id": tid} for sid, tid in new],
        )
    if new:
        _tag_exits(session, new, {t.id: name for name, t in tags.items()}, "tag-added", now)
    enrolled = 0
    campaign_tags = {t.id for t in tags.values() if t.campaign_id is not None}
    if campaign_tags:
        newly: dict[int, list[int]] = defaultdict(list)
        for sid, tid in new:
            if tid in campaign_tags:
                newly[tid].append(sid)
        if newly:
            # Imported here: enrollment pulls in scheduling, which plain tagging does not need.
            from campaigns.enrollment import enroll_for_tags

            for tid, ids in sorted(newly.items()):
                enrolled += enroll_for_tags(session, ids, [tid], now, clinic_tz=clinic_tz)
    return TagOutcome(len(new), enrolled)


def tag_subscribers(
    session: Session,
    ids: Iterable[int],
    tag_names: Iterable[str],
    now: datetime | None = None,
    *,
    clinic_tz: str = "UTC",
) -> int:
    """Tag these subscribers (tags created as needed). Returns the campaign enrollments this made."""
    names = [clean_tag(n) for n in tag_names]
    ids = list(ids)
    return link_tags(session, [(i, n) for i in ids for n in names], now or utcnow(), clinic_tz=clinic_tz).enrolled


def _tag_exits(session: Session, pairs: Sequence[tuple[int, int]], names: dict[int, str], kind: str,
               now: datetime) -> None:
    """Apply the campaigns' exit conditions on these (subscriber, tag) changes: one query when none match."""
    from campaigns.exits import apply_exits
    from drip.models import CampaignExit

    wanted = sorted({names[tid] for _, tid in pairs})
    hits = set(session.scalars(select(CampaignExit.value).where(CampaignExit.kind == kind,
                                                                CampaignExit.value.in_(wanted))))
    for name in sorted(hits):
        apply_exits(session, [sid for sid, tid in pairs if names[tid] == name], kind, [name], now)


def untag_subscribers(session: Session, subscriber_id: int, tag_names: Iterable[str], now: datetime) -> list[str]:
    """Remove these tags from one subscriber; apply `tag-removed` exit conditions. Returns the tags removed."""
    names = sorted({clean_tag(n) for n in tag_names})
    if not names:
        return []
    rows = session.execute(
        select(Tag.id, Tag.name).join(SubscriberTag, SubscriberTag.tag_id == Tag.id).where(
            SubscriberTag.subscriber_id == subscriber_id, Tag.name.in_(names))
    ).all()
    if not rows:
        return []
    session.execute(SubscriberTag.__table__.delete().where(
        SubscriberTag.subscriber_id == subscriber_id, SubscriberTag.tag_id.in_([tid for tid, _ in rows])))
    _tag_exits(session, [(subscriber_id, tid) for tid, _ in rows], dict(rows), "tag-removed", now)
    return sorted(name for _, name in rows)


def tags_of(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
    """subscriber id -> its tag names, sorted (for tables)."""
    out: dict[int, list[str]] = defaultdict(list)
    for part in _chunks(list(subscriber_ids), IN_CHUNK):
        rows = session.execute(
            select(SubscriberTag.subscriber_id, Tag.name)
            .join(Tag, Tag.id == SubscriberTag.tag_id)
            .where(SubscriberTag.subscriber_id.in_(part))
            .order_by(Tag.name)
        )
        for sid, name in rows:
            out[sid].append(name)
    return dict(out)


# ---------------------------------------------------------------------------------------------
# lists


# The trigram index (migration 0032) holds substrings of three characters; a shorter search
# scans. On SQLite it is an FTS5 table that drives the query, and the LIKE still decides.
TRIGRAM = 3
_FTS = table("subscriber_search", column("rowid"))


def _fts_phrase(needle: str) -> str:
    """`needle` as one FTS5 phrase: inside double quotes everything is literal but `"` itself."""
    return '"' + needle.replace('"', '""') + '"'


def _tag_id(session: Session, tag: str) -> int:
    tag_id = session.scalar(select(Tag.id).where(Tag.name == tag.strip()))
    if tag_id is None:
        raise NotFoundError(f"no tag named {_shorten(tag)!r}", where="--tag")
    return tag_id


def _index_fragment(needle: str) -> str:
    """What the trigram index is asked for: an address's local part with its "@" ("ann.lee@" of
    "ann.lee@gmail.com"), else the whole needle. A clinic's patients share a few domains, so the
    domain's trigrams are in most rows: at a million patients, PostgreSQL's GIN took 34 ms to
    intersect them for one exact address, against 0.2 ms for the local part."""
    local, at, rest = needle.partition("@")
    return local + at if at and rest and len(local) + 1 >= TRIGRAM else needle


def _filtered(query: Select, session: Session, search: str | None, tag: str | None, status: str | None,
              *, indexed: bool = True) -> tuple[Select, Any]:
    """`query` narrowed to the matching subscribers, and the column to order and page them by
    (their id, or the same id as the FTS5 table's rowid where that table drives the query)."""
    key: Any = Subscriber.id
    dialect = session.get_bind().dialect.name
    needle = (search or "").strip().lower()
    if needle:
        fragment = _index_fragment(needle) if indexed else needle
        # Bound parameters, and autoescape makes % and _ in the search literal characters.
        in_address = Subscriber.email_key.contains(needle, autoescape=True)
        if fragment != needle and dialect == "postgresql":
            # The index looks for the fragment; strpos (which no index answers) checks the whole.
            in_address = and_(Subscriber.email_key.contains(fragment, autoescape=True),
                              func.strpos(Subscriber.email_key, needle) > 0)
        query = query.where(or_(in_address, func.lower(Subscriber.name).contains(needle, autoescape=True)))
        if indexed and len(fragment) >= TRIGRAM and dialect == "sqlite":
            # Every row the LIKE matches holds the fragment's trigrams (FTS5 folds case one
            # character at a time, as lower() does), so the index drops none of them. Ordered by
            # its rowid, FTS5 hands matches over in id order and the query stops at the page's
            # last row (`IN (SELECT rowid ...)` would first collect every match: slow for "gmail").
            query = query.join(_FTS, _FTS.c.rowid == Subscriber.id).where(
                sql_text("subscriber_search MATCH :fts_phrase").bindparams(fts_phrase=_fts_phrase(fragment)))
            key = _FTS.c.rowid
    if tag:
        tag_id = _tag_id(session, tag)
        if key is Subscriber.id and indexed:
            # The tag's rows in (tag_id, subscriber_id) order drive the query: a tag on 0.01% of a
            # million patients is 100 index entries, not a walk through every patient.
            query = query.join(SubscriberTag, and_(SubscriberTag.subscriber_id == Subscriber.id,
                                                   SubscriberTag.tag_id == tag_id))
            key = SubscriberTag.subscriber_id
        else:
            query = query.where(
                select(SubscriberTag.subscriber_id)
                .where(and_(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id == tag_id))
                .exists()
            )
    if status:
        allowed = {s.value for s in SubscriberStatus}
        if status not in allowed:
            raise InputError(f"unknown status {status!r} (one of: {', '.join(sorted(allowed))})", where="--status")
        column_: Any = Subscriber.status
        if key is not Subscriber.id and dialect == "sqlite":
            # Another index drives; SQLite would otherwise walk the status index (everyone is
            # "active") and probe the tag or the search for each patient. `|| ''` rules it out.
            column_ = Subscriber.status.concat("")
        query = query.where(column_ == status)
    return query, key


def list_subscribers(
    session: Session,
    search: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    *,
    after: int | None = None,
    before: int | None = None,
    indexed: bool = True,
) -> list[Subscriber]:
    """Subscribers in id order, filtered by a substring of address or name, a tag, a status.

    `after` / `before` page by id (keyset): the rows just after (before) that id cost the same on
    page 1 and on page 20,000, where an OFFSET reads and drops every row before its page.
    `indexed=False` is the plain scan in id order (no trigram or tag index driving), which the
    tests hold the indexes to."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", where="--limit")
    if offset < 0:
        raise InputError("offset cannot be negative", where="--offset")
    if after is not None and before is not None:
        raise InputError("give after or before, not both", where="--after")
    query, key = _filtered(select(Subscriber), session, search, tag, status, indexed=indexed)
    # The bound on both ids: PostgreSQL carries an equality across a join, not a range, and would
    # merge-join the tag's rows after `after` with every patient from the first (200 ms at 1M).
    ids = [key] if key is Subscriber.id else [key, Subscriber.id]
    if before is not None:
        query = query.where(*(c < before for c in ids))
        rows = list(session.scalars(query.order_by(key.desc()).limit(limit).offset(offset)))
        return rows[::-1]
    if after is not None:
        query = query.where(*(c > after for c in ids))
    return list(session.scalars(query.order_by(key).limit(limit).offset(offset)))


def count_subscribers(
    session: Session, search: str | None = None, tag: str | None = None, status: str | None = None,
    *, cap: int | None = None, indexed: bool = True,
) -> int:
    """How many match. With `cap`, counting stops at cap + 1: a page prints "10,000+" rather than
    read a million rows for an exact figure nobody acts on."""
    if tag and not (search or "").strip() and not status and indexed:
        # Every subscriber_tags row is a patient's (the foreign key cascades): the tag's index
        # entries alone, where a join to the patients made PostgreSQL hash a million rows.
        members = select(SubscriberTag.subscriber_id).where(SubscriberTag.tag_id == _tag_id(session, tag))
        if cap is not None:
            members = members.limit(cap + 1)
        return int(session.scalar(select(func.count()).select_from(members.subquery())) or 0)
    if cap is None:
        query, _ = _filtered(select(func.count()).select_from(Subscriber), session, search, tag, status,
                             indexed=indexed)
        return int(session.scalar(query) or 0)
    matching, _ = _filtered(select(Subscriber.id), session, search, tag, status, indexed=indexed)
    return int(session.scalar(select(func.count()).select_from(matching.limit(cap + 1).subquery())) or 0)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
