"""Subscriber pages: search and filter, CSV import with its per-row report, add, tags, enroll,
unsubscribe, suppress, and one patient's timeline (enrollments and every delivery, in the
patient's own time zone).

Searching goes through `subscribers.service.list_subscribers`, which binds parameters and
escapes LIKE wildcards: a search for `%` finds a literal percent sign, `' OR 1=1 --` finds
nothing unless a name contains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from campaigns.enrollment import NotEnrollable, enroll
from campaigns.exits import stop_in_campaign
from campaigns.schedule import resolve_zone
from campaigns.service import latest_versions
from delivery.counts import counted
from delivery.status import status_rows
from drip.errors import InputError, NotFoundError
from drip.models import (
    MAX_ID,
    AttributeDefinition,
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentState,
    Step,
    Subscriber,
    SubscriberAttribute,
    SubscriberStatus,
    SubscriberTag,
    Suppression,
    Tag,
)
from subscribers.attributes import definitions, set_attributes
from subscribers.importer import ImportReport, import_csv
from subscribers.service import (
    clean_tag,
    count_subscribers,
    list_subscribers,
    tag_subscribers,
    tags_of,
    untag_subscribers,
    upsert_subscriber,
)
from subscribers.suppression import cancel_pending, suppress, suppression_of
from subscribers.tokens import LinkClaims
from subscribers.unsubscribe import unsubscribe
from web.staff import bulk
from web.staff.base import StaffRequest
from web.staff.signup import signup_warning
from web.staff.stats import as_of_note
from web.staff.uploads import display_name, saved_upload, shown_error

PAGE_SIZE = 50
COUNT_CAP = 10_000  # a filtered total beyond this prints as "10,000+"
STATUSES = [s.value for s in SubscriberStatus]
MAX_SEARCH = 200


def _tag_names(db: Session) -> list[str]:
    return list(db.scalars(select(Tag.name).order_by(Tag.name)))


def _int(value: str, default: int) -> int:
    return int(value) if value.isdigit() and len(value) < 7 else default


def _id(value: str) -> int | None:
    """A row id from the query string; anything else (or beyond the database's integer) is None."""
    return int(value) if value.isdigit() and len(value) <= 10 and 0 < int(value) <= MAX_ID else None


def _list_page(req: StaffRequest, *, report: ImportReport | None = None, report_name: str = "",
               import_error: str = "", add_error: str = "", add_form: dict[str, str] | None = None,
               status_code: int = 200) -> Response:
    q = req.query("q").strip()[:MAX_SEARCH]
    status = req.query("status")
    status = status if status in STATUSES else ""
    tag = req.query("tag").strip()[:100]
    # Pages go by id (?after=, ?before=), not by number: page 20,000 of a health system's list
    # costs what page 1 does. An old ?page= link opens the first page.
    after = _id(req.query("after"))
    before = None if after else _id(req.query("before"))
    filter_error = ""
    filters = {"search": q or None, "tag": tag or None, "status": status or None}
    with req.ctx.runtime.read_sessions() as db:
        try:
            subs = list_subscribers(db, **filters, limit=PAGE_SIZE + 1, after=after, before=before)
            if not subs and (after or before):  # beyond either end (rows erased since): the first page
                after = before = None
                subs = list_subscribers(db, **filters, limit=PAGE_SIZE + 1)
            total = count_subscribers(db, **filters, cap=COUNT_CAP) if any(filters.values()) else None
        except InputError as exc:
            subs, total, filter_error = [], 0, str(exc).split(": ", 1)[-1]
        more = len(subs) > PAGE_SIZE  # one row beyond the page, in the direction of travel
        if more:
            subs = subs[1:] if before else subs[:PAGE_SIZE]
        everyone = counted(req.ctx.runtime, db, "subscribers", None, req.now)
        if total is None:
            total = everyone.value["n"]
        tags = tags_of(db, [s.id for s in subs])
        keys = [s.email_key for s in subs]
        suppressed = set(db.scalars(select(Suppression.email_key).where(Suppression.email_key.in_(keys)))) if keys else set()
        return req.render("subscribers.html", {
            "nav": "subscribers", "subs": subs, "total": total, "total_capped": total > COUNT_CAP,
            "count_cap": COUNT_CAP, "everyone": everyone.value["n"],
            "everyone_note": as_of_note(everyone.as_of, req.ctx.settings), "tags": tags,
            "suppressed": suppressed, "q": q, "status": status, "tag": tag,
            "newer": subs[0].id if subs and (after or (before and more)) else None,
            "older": subs[-1].id if subs and (before or more) else None,
            "statuses": STATUSES, "tag_names": _tag_names(db),
            "filter_error": filter_error, "report": report, "report_name": report_name, "import_error": import_error,
            "add_error": add_error, "add_form": add_form or {"email": "", "name": "", "tz": "", "tags": ""},
            "filtered": bool(q or status or tag), "signup_warning": signup_warning(req, db),
            "campaigns": list(db.scalars(select(Campaign).where(Campaign.status == CampaignStatus.PUBLISHED.value)
                                         .order_by(Campaign.title))),
        }, status_code=status_code)


def subscriber_list(req: StaffRequest) -> Response:
    return _list_page(req)


def _split_tags(text: str) -> list[str]:
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def subscriber_import(req: StaffRequest) -> Response:
    upload = req.upload("csv")
    if upload is None:
        return _list_page(req, import_error="Choose a CSV file to import.", status_code=400)
    name = display_name(upload)
    mode = "refuse" if req.field("strict") else "skip"
    slug = req.field("campaign").strip()
    with saved_upload(upload) as path:
        if slug and (rows := bulk.data_rows(path)) > bulk.bulk_inline_max():
            # Large enough to wait for: in the background, with the campaign's progress page.
            try:
                campaign = bulk.published_campaign(req, slug)
            except (InputError, NotFoundError) as exc:
                return _list_page(req, import_error=str(exc).split(": ", 1)[-1], status_code=400)
            return bulk.start_import(req, campaign, path, name, mode=mode, tags=_split_tags(req.field("tags")),
                                     rows=rows)
        try:
            report = import_csv(req.ctx.runtime, path, mode=mode, tags=_split_tags(req.field("tags")), now=req.now,
                                source="import", clinic_tz=req.ctx.settings.clinic.timezone,
                                enroll_in=req.field("campaign").strip() or None)
        except InputError as exc:
            return _list_page(req, import_error=shown_error(str(exc), path, name), status_code=400)
    report.path = name
    # The import commits in chunks of its own (a million rows do not fit one transaction); its
    # audit row follows it, with what it did.
    if not report.refused:  # a refused file changed nothing
        with req.ctx.runtime.sessions.begin() as db:
            req.audit(db, "subscriber.import", f"file {name}", after={
                "rows": report.rows, "created": report.created, "updated": report.updated,
                "skipped": report.skipped, "enrolled": report.enrolled})
    return _list_page(req, report=report, report_name=name, status_code=200)


def subscriber_add(req: StaffRequest) -> Response:
    form = {k: req.field(k).strip() for k in ("email", "name", "tz", "tags")}
    try:
        with req.ctx.runtime.sessions.begin() as db:
            sub, created = upsert_subscriber(db, form["email"], name=form["name"], tz=form["tz"] or None,
                                             tags=_split_tags(form["tags"]), source="staff", now=req.now,
                                             clinic_tz=req.ctx.settings.clinic.timezone)
            sid, email = sub.id, sub.email
            req.audit(db, "subscriber.add" if created else "subscriber.update", f"subscriber {sid}")
    except InputError as exc:
        return _list_page(req, add_error=str(exc), add_form=form, status_code=400)
    req.flash(f"{email} {'added' if created else 'was already here and is updated'}.")
    return req.redirect("staff:subscriber", id=sid)


# -- one subscriber


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime  # in the patient's zone
    kind: str  # added | enrolled | email | newsletter
    title: str
    detail: str
    status: str
    error: str = ""
    number: str = ""  # the email's position in its campaign


def _subscriber(db: Session, req: StaffRequest) -> Subscriber:
    sub = db.get(Subscriber, req.request.path_params["id"])
    if sub is None:
        raise NotFoundError("no such subscriber")
    return sub


def _subjects(db: Session, campaign_ids: set[int]) -> dict[tuple[str, int], str]:
    """(campaign slug, step position) -> the step's current subject."""
    if not campaign_ids:
        return {}
    rows = db.execute(select(Step.id, Step.position, Campaign.slug).join(Campaign, Campaign.id == Step.campaign_id)
                      .where(Step.campaign_id.in_(campaign_ids))).all()
    versions = latest_versions(db, [r[0] for r in rows])
    return {(slug, position): versions[sid].subject for sid, position, slug in rows if sid in versions}


def _timeline(db: Session, sub: Subscriber, clinic_tz: str) -> list[TimelineEntry]:
    tz = resolve_zone(sub.tz, clinic_tz)
    entries = [TimelineEntry(sub.created_at.astimezone(tz), "added", "Added", f"source: {sub.consent_source or 'unknown'}", "")]
    titles: dict[str, str] = {}
    campaign_ids: set[int] = set()
    for e, slug, title in db.execute(
        select(Enrollment, Campaign.slug, Campaign.title).join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Enrollment.subscriber_id == sub.id)
    ):
        titles[slug] = title
        campaign_ids.add(e.campaign_id)
        entries.append(TimelineEntry(e.enrolled_at.astimezone(tz), "enrolled", f"Enrolled in “{title}”",
                                     f"by {e.source}", e.state))
        if e.exited_at is not None:
            entries.append(TimelineEntry(e.exited_at.astimezone(tz), "exited", f"Stopped “{title}”",
                                         e.exit_reason, "exited"))
    subjects = _subjects(db, campaign_ids)
    for row in status_rows(db, clinic_tz, email=sub.email_key):
        if row.campaign.startswith("newsletter:"):
            entries.append(TimelineEntry(row.local_time, "newsletter", row.step, "Newsletter", row.status, row.error))
            continue
        number, _, _ = row.step.partition(". ")
        subject = subjects.get((row.campaign, int(number))) if number.isdigit() else None
        # A step skipped by its date anchor or condition (campaigns/anchors.py, conditions.py) says so.
        status = "skipped" if row.status == "cancelled" and (row.error or "").startswith("skipped: ") else row.status
        entries.append(TimelineEntry(row.local_time, "email", subject or row.step,
                                     titles.get(row.campaign, row.campaign), status, row.error, number))
    entries.sort(key=lambda e: (e.at, {"added": 0, "enrolled": 1}.get(e.kind, 2)))
    return entries


def subscriber_page(req: StaffRequest) -> Response:
    clinic_tz = req.ctx.settings.clinic.timezone
    with req.ctx.runtime.read_sessions() as db:
        sub = _subscriber(db, req)
        campaigns = list(db.scalars(select(Campaign).where(Campaign.status == CampaignStatus.PUBLISHED.value)
                                    .order_by(Campaign.title)))
        context: dict[str, Any] = {
            "nav": "subscribers", "sub": sub, "tags": tags_of(db, [sub.id]).get(sub.id, []),
            "suppression": suppression_of(db, sub.email_key), "timeline": _timeline(db, sub, clinic_tz),
            "zone": resolve_zone(sub.tz, clinic_tz).key, "campaigns": campaigns, "tag_names": _tag_names(db),
            "attribute_defs": list(definitions(db).values()),
            "attribute_values": _stored_values(db, sub.id),
            "active_enrollments": db.execute(
                select(Campaign.slug, Campaign.title).join(Enrollment, Enrollment.campaign_id == Campaign.id)
                .where(Enrollment.subscriber_id == sub.id, Enrollment.state == EnrollmentState.ACTIVE.value)
                .order_by(Campaign.title)).all(),
        }
        return req.render("subscriber.html", context)


def _change(req: StaffRequest, action, audit: str, fields: tuple[str, ...] = ()) -> Response:
    """Run `action(db, sub)` in one transaction; it returns the message to flash. The audit row
    (`audit`, with these form fields' values) is written in the same transaction."""
    sid = req.request.path_params["id"]
    try:
        with req.ctx.runtime.sessions.begin() as db:
            sub = _subscriber(db, req)
            message = action(db, sub)
            details = {f: req.field(f) for f in fields if req.field(f)}
            req.audit(db, audit, f"subscriber {sub.id}", after=details or None)
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc), "error")
    else:
        req.flash(message)
    return req.redirect("staff:subscriber", id=sid)


def subscriber_edit(req: StaffRequest) -> Response:
    def apply(db: Session, sub: Subscriber) -> str:
        upsert_subscriber(db, sub.email, name=req.field("name"), tz=req.field("tz") or None, source="staff",
                          now=req.now, clinic_tz=req.ctx.settings.clinic.timezone)
        return "Details saved."
    return _change(req, apply, "subscriber.edit")


def subscriber_tags(req: StaffRequest) -> Response:
    def apply(db: Session, sub: Subscriber) -> str:
        if req.field("action") == "remove":
            name = clean_tag(req.field("tag"))
            untag_subscribers(db, sub.id, [name], req.now)  # applies the campaigns' tag-removed exits
            return f"Tag “{name}” removed."
        names = _split_tags(req.field("tags"))
        if not names:
            raise InputError("type a tag name to add", where="tags")
        enrolled = tag_subscribers(db, [sub.id], names, req.now, clinic_tz=req.ctx.settings.clinic.timezone)
        extra = f" and enrolled in {enrolled} campaign{'s' if enrolled != 1 else ''}" if enrolled else ""
        return f"Tagged {', '.join(names)}{extra}."
    return _change(req, apply, "subscriber.tags", ("action", "tag", "tags"))


def _stored_values(db: Session, subscriber_id: int) -> dict[str, str]:
    """key -> the canonical stored text (what the form fields show: ISO dates, yes/no)."""
    rows = db.execute(select(AttributeDefinition.key, SubscriberAttribute.value)
                      .join(SubscriberAttribute, SubscriberAttribute.attribute_id == AttributeDefinition.id)
                      .where(SubscriberAttribute.subscriber_id == subscriber_id))
    return dict(rows.all())


def subscriber_attributes(req: StaffRequest) -> Response:
    def apply(db: Session, sub: Subscriber) -> str:
        values = {d.key: req.field(f"attr_{d.key}") for d in definitions(db).values()
                  if req.form is not None and f"attr_{d.key}" in req.form}
        changed = set_attributes(db, sub.id, values, req.now, clinic_tz=req.ctx.settings.clinic.timezone)
        return f"Saved: {', '.join(changed)} changed." if changed else "Nothing changed."
    return _change(req, apply, "subscriber.attributes")


def subscriber_stop(req: StaffRequest) -> Response:
    def apply(db: Session, sub: Subscriber) -> str:
        campaign = db.scalar(select(Campaign).where(Campaign.slug == req.field("campaign")))
        if campaign is None:
            raise InputError("choose a campaign", where="campaign")
        try:
            done = stop_in_campaign(db, sub.id, campaign, req.field("reason"), req.now)
        except NotFoundError as exc:
            raise InputError(str(exc).split(": ", 1)[-1]) from None
        return (f"{sub.email} no longer gets “{campaign.title}”: {done.cancelled} scheduled email"
                f"{'s' if done.cancelled != 1 else ''} cancelled.")
    return _change(req, apply, "enrollment.stop", ("campaign", "reason"))


def subscriber_enroll(req: StaffRequest) -> Response:
    def apply(db: Session, sub: Subscriber) -> str:
        slug = req.field("campaign")
        campaign = db.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise InputError("choose a campaign", where="campaign")
        try:
            enroll(db, sub, campaign, req.now, clinic_tz=req.ctx.settings.clinic.timezone, source="staff")
        except NotEnrollable as exc:
            raise InputError(str(exc).split(": ", 1)[-1]) from None
        return f"{sub.email} is enrolled in “{campaign.title}”; the first email is scheduled."
    return _change(req, apply, "enrollment.create", ("campaign",))


def subscriber_unsubscribe(req: StaffRequest) -> Response:
    assert req.user is not None
    who = req.user.email

    def apply(db: Session, sub: Subscriber) -> str:
        result = unsubscribe(db, LinkClaims(subscriber_id=sub.id), "all", now=req.now, source=f"staff {who}")
        return (f"{sub.email} is unsubscribed from all email; {result.cancelled} scheduled "
                f"email{'s' if result.cancelled != 1 else ''} cancelled.")
    return _change(req, apply, "subscriber.unsubscribe")


def subscriber_suppress(req: StaffRequest) -> Response:
    assert req.user is not None
    who = req.user.email

    def apply(db: Session, sub: Subscriber) -> str:
        suppress(db, sub.email_key, "staff", f"staff {who}", req.now)
        cancelled = cancel_pending(db, sub.id, reason="suppressed by staff")
        return (f"{sub.email} is on the suppression list and will never be emailed again; "
                f"{cancelled} scheduled email{'s' if cancelled != 1 else ''} cancelled.")
    return _change(req, apply, "subscriber.suppress")


# -- patient data rights


def _export(req: StaffRequest, kind: str) -> tuple[Subscriber, dict]:
    """The export, audited (who looked at a patient's whole record, and when)."""
    from subscribers.export import patient_export

    with req.ctx.runtime.sessions.begin() as db:
        sub = _subscriber(db, req)
        data = patient_export(db, sub, clinic_name=req.ctx.settings.clinic.name, now=req.now)
        req.audit(db, "subscriber.export", f"subscriber {sub.id}", after={"format": kind})
        return sub, data


def subscriber_export_json(req: StaffRequest) -> Response:
    """Everything drip holds about one patient, as a JSON download (right of access)."""
    import json

    sub, data = _export(req, "json")
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    return Response(body, media_type="application/json; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="patient-{sub.id}-export.json"',
        "Cache-Control": "no-store",
    })


# The readable page's labels for the export's keys (the JSON keeps the keys).
EXPORT_LABELS = {
    "id": "Record number", "email": "Email", "name": "Name", "time_zone": "Time zone", "status": "Status",
    "created_at": "Added", "updated_at": "Last changed",
    "source": "How they signed up", "at": "When", "text_version": "Consent wording shown (version)",
    "ip": "From IP address",
}


def subscriber_export_page(req: StaffRequest) -> Response:
    """The same export as a page a patient can read (print it, or save it as a PDF): times in the
    clinic's zone, plain labels, and every part of the JSON, events included."""
    def at(value: str | None) -> str:
        return req.staff.when(datetime.fromisoformat(value)) if value else "—"

    sub, data = _export(req, "page")
    return req.render("subscriber_export.html", {"nav": "subscribers", "sub": sub, "data": data, "at": at,
                                                 "labels": EXPORT_LABELS})


def subscriber_erase(req: StaffRequest) -> Response:
    """Erase one patient: typed confirmation (their address), then everything but a suppression hash goes."""
    from subscribers.erasure import erase_subscriber

    sid = req.request.path_params["id"]
    with req.ctx.runtime.sessions.begin() as db:
        sub = _subscriber(db, req)
        typed = " ".join(req.field("confirm_email").split()).lower()
        if typed != sub.email_key:
            req.flash("To erase this patient, type their email address exactly; nothing was erased.", "error")
            return req.redirect("staff:subscriber", id=sid)
        erase_subscriber(db, sub, req.now)
        req.audit(db, "subscriber.erase", f"subscriber {sid}")  # the id only: the address is gone
    req.flash(f"Patient {sid} was erased: their data is gone; a hash of the address is kept so they are "
              "never added or emailed again.")
    return req.redirect("staff:subscribers")
