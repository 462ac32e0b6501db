"""The audit log: who did what, when, to what, from where; before -> after for settings and content.

`record(session, actor, action, ...)` adds one row in the caller's session, so it commits or rolls
back with the action it describes (a refused import leaves no "imported" row). Rows are never
changed: there is no update function, the staff page has no edit or delete route, and database
triggers (migration 0014) refuse UPDATE and DELETE.

Targets name records by id ("subscriber 17", "campaign back-pain"), never a patient's address:
the log outlives an erasure, and must not keep what the erasure removed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from drip.models import AuditEntry, utcnow

MAX_VALUE = 4000  # characters per before/after text value: a whole article diff belongs elsewhere


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user, an API token, or the command line (`drip ...` on the server)."""

    kind: str  # staff | token | cli
    id: int | None
    label: str
    ip: str = ""

    @classmethod
    def cli(cls) -> "Actor":
        return cls("cli", None, "cli")


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[:MAX_VALUE] + "…"
    if isinstance(value, dict):
        return {str(k): _clip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clip(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def record(session: Session, actor: Actor, action: str, target: str = "", *, before: dict | None = None,
           after: dict | None = None, at: datetime | None = None) -> AuditEntry:
    """Add one audit row to `session` (committed with the caller's transaction)."""
    entry = AuditEntry(at=at or utcnow(), actor_kind=actor.kind, actor_id=actor.id, actor=actor.label[:320],
                       action=action[:64], target=target[:200], before=_clip(before) if before is not None else None,
                       after=_clip(after) if after is not None else None, ip=(actor.ip or "")[:64])
    session.add(entry)
    return entry


def url_for_log(url: str) -> str:
    """A URL as the log keeps it: scheme, host and path. Its user:password and query are left out
    (a receiver's credential often rides there, and the log is exported as CSV)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme and host else ""


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose value changed, for a before -> after pair that is easy to read."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


@dataclass(frozen=True)
class AuditFilter:
    who: str = ""  # part of the actor's label
    action: str = ""  # an action, or a prefix ending in "." (e.g. "campaign.")
    since: datetime | None = None
    until: datetime | None = None  # exclusive

    def apply(self, query: Select) -> Select:
        if self.who:
            query = query.where(func.lower(AuditEntry.actor).contains(self.who.lower(), autoescape=True))
        if self.action:
            if self.action.endswith("."):
                query = query.where(AuditEntry.action.startswith(self.action, autoescape=True))
            else:
                query = query.where(AuditEntry.action == self.action)
        if self.since is not None:
            query = query.where(AuditEntry.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEntry.at < self.until)
        return query


def entries(session: Session, where: AuditFilter, *, limit: int | None = 50, offset: int = 0) -> list[AuditEntry]:
    """Newest first."""
    query = where.apply(select(AuditEntry)).order_by(AuditEntry.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count(session: Session, where: AuditFilter) -> int:
    return session.scalar(where.apply(select(func.count()).select_from(AuditEntry))) or 0


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


CSV_COLUMNS = ("id", "at_utc", "actor_kind", "actor", "action", "target", "before", "after", "ip")


def _cell(value: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ as a formula: quote it."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(rows: Iterable[AuditEntry]) -> str:
    import json

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in rows:
        writer.writerow([e.id, e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor_kind, _cell(e.actor), _cell(e.action),
                         _cell(e.target), json.dumps(e.before, ensure_ascii=False) if e.before is not None else "",
                         json.dumps(e.after, ensure_ascii=False) if e.after is not None else "", _cell(e.ip)])
    return out.getvalue()
