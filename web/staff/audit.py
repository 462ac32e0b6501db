"""The audit log page (owners): filter by who, action and date range, page through, export CSV
(each export is itself audited, as `audit.export` with its filter and row count).

Read only: there is no route that changes or deletes a row (tests/web/staff/test_audit.py
checks the route table), and the database refuses it too (migration 0014's triggers).
Dates are days in the clinic's zone, both ends included.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from starlette.responses import Response

from drip.audit import AuditFilter, actions, count, entries, to_csv
from drip.errors import InputError
from web.staff.base import StaffRequest

PAGE_SIZE = 50
CSV_LIMIT = 100_000


def _day(req: StaffRequest, name: str, *, end: bool) -> datetime | None:
    raw = req.query(name).strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{raw[:20]!r} is not a date (YYYY-MM-DD)", where=name) from None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), ZoneInfo(req.ctx.settings.clinic.timezone))


def _filter(req: StaffRequest) -> AuditFilter:
    return AuditFilter(who=req.query("who").strip()[:200], action=req.query("action").strip()[:64],
                       since=_day(req, "from", end=False), until=_day(req, "to", end=True))


def _filter_params(req: StaffRequest) -> dict[str, str]:
    """The filter an export used, as typed (a staff label, an action, dates: never patient data)."""
    return {k: req.query(k).strip()[:64] for k in ("who", "action", "from", "to") if req.query(k).strip()}


def audit_page(req: StaffRequest) -> Response:
    params = {k: req.query(k) for k in ("who", "action", "from", "to")}
    try:
        where = _filter(req)
    except InputError as exc:
        where, error = AuditFilter(), str(exc)
    else:
        error = ""
    page = int(req.query("page", "1")) if req.query("page", "1").isdigit() else 1
    page = max(1, min(page, 100_000))
    with req.ctx.runtime.read_sessions() as db:
        total = count(db, where)
        rows = entries(db, where, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        known = actions(db)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    return req.render("audit.html", {
        "nav": "audit", "rows": rows, "total": total, "page": page, "pages": pages, "params": params,
        "actions": known, "error": error,
    }, status_code=400 if error else 200)


def audit_csv(req: StaffRequest) -> Response:
    try:
        where = _filter(req)
    except InputError as exc:
        return req.render("error.html", {"title": "Bad request", "detail": str(exc)}, status_code=400)
    with req.ctx.runtime.read_sessions() as db:
        rows = entries(db, where, limit=CSV_LIMIT)
        body = to_csv(rows)
    with req.ctx.runtime.sessions.begin() as db:  # an export of the log is itself an action on it
        req.audit(db, "audit.export", "audit log", after={"rows": len(rows), **_filter_params(req)})
    stamp = req.now.strftime("%Y%m%d")
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"', "Cache-Control": "no-store",
    })
