"""Newsletter pages: create from a template or an uploaded article, pick a list, schedule (a date
and time in the clinic's zone, the same wall time in each patient's zone, or a cron), move a
scheduled one (its emails move with it), pause/resume, cancel, preview, test, and the delivery counts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from campaigns import broadcasts
from campaigns.service import slugify
from campaigns.split import split_file
from drip.errors import DripError, InputError, NotFoundError, SendError
from drip.models import (
    Broadcast,
    BroadcastStatus,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    Suppression,
    Tag,
)
from web.staff.base import StaffRequest
from web.staff.emails import PREVIEW_HEADERS, audit_test_email, broadcast_content, render_sample, send_test
from web.staff.uploads import display_name, saved_upload, shown_error

COUNT_ORDER = [s.value for s in DeliveryStatus]


def template_names() -> list[str]:
    return sorted(p.stem for p in broadcasts.TEMPLATES.glob("*.txt"))


def audience_size(db: Session, tag_id: int | None) -> int:
    """Who a newsletter to this list would reach now: active members not on the suppression list."""
    if tag_id is None:
        return 0
    return int(db.scalar(
        select(func.count()).select_from(SubscriberTag)
        .join(Subscriber, Subscriber.id == SubscriberTag.subscriber_id)
        .where(SubscriberTag.tag_id == tag_id, Subscriber.status == SubscriberStatus.ACTIVE.value,
               ~exists().where(Suppression.email_key == Subscriber.email_key))
    ) or 0)


def _lists(db: Session) -> list[Tag]:
    return list(db.scalars(select(Tag).order_by(Tag.name)))


def _summaries(db: Session) -> list[dict[str, Any]]:
    rows = db.execute(
        select(Broadcast, Tag.name).outerjoin(Tag, Tag.id == Broadcast.tag_id)
        .where(Broadcast.parent_id.is_(None)).order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
    ).all()
    return [{"b": b, "list": name or "", "counts": broadcasts.counts(db, b), "next": broadcasts.next_send(b)}
            for b, name in rows]


DEFAULT_FORM = {"source": "template", "template": "", "list": "", "subject": "", "slug": ""}


def _list_page(req: StaffRequest, *, error: str = "", form: dict[str, str] | None = None,
               status_code: int = 200) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        return req.render("newsletters.html", {
            "nav": "newsletters", "rows": _summaries(db), "lists": _lists(db), "templates": template_names(),
            "error": error, "form": form or DEFAULT_FORM,
        }, status_code=status_code)


def newsletter_list(req: StaffRequest) -> Response:
    return _list_page(req)


def _unique_slug(db: Session, text: str) -> str:
    base = slugify(text, max_len=60)
    slug, n = base, 2
    while db.scalar(select(Broadcast.id).where(Broadcast.slug == slug)) is not None:
        slug, n = f"{base}-{n}", n + 1
    return slug


def newsletter_create(req: StaffRequest) -> Response:
    form = {k: req.field(k).strip() for k in DEFAULT_FORM}
    try:
        if form["source"] == "article":
            upload = req.upload("article")
            if upload is None:
                raise InputError("choose an article file to upload (.txt, .md, .html or .docx)", where="article")
            name = display_name(upload)
            with saved_upload(upload) as path:
                try:
                    content = broadcasts.content_from_article(split_file(path))
                except InputError as exc:
                    raise InputError(shown_error(str(exc), path, name)) from None
        elif form["source"] == "template":
            if not form["template"]:
                raise InputError("choose a template", where="template")
            content = broadcasts.load_template(form["template"])
        else:
            raise InputError("choose a template or an article", where="source")
        if form["subject"]:
            content["subject"] = form["subject"]
        if not form["list"]:
            raise InputError("choose the list to send to", where="list")
        with req.ctx.runtime.sessions.begin() as db:
            slug = form["slug"] or _unique_slug(db, content["subject"] or content["title"])
            b = broadcasts.create_broadcast(db, slug, list_name=form["list"], **content)
            slug = b.slug
            req.audit(db, "newsletter.import", f"newsletter {slug}", after={"subject": b.subject, "list": form["list"]})
    except InputError as exc:
        return _list_page(req, error=str(exc), form=form, status_code=400)
    req.flash("Newsletter created as a draft. Check the preview, send yourself a test, then schedule it.")
    return req.redirect("staff:newsletter", slug=slug)


# -- one newsletter

_SCHEDULABLE = {BroadcastStatus.DRAFT.value, BroadcastStatus.SCHEDULED.value, BroadcastStatus.PAUSED.value}
_CANCELLABLE = {BroadcastStatus.SCHEDULED.value, BroadcastStatus.PAUSED.value}


def _broadcast(db: Session, slug: str) -> Broadcast:
    if len(slug) > 80:
        raise NotFoundError("no such newsletter")
    b = broadcasts.get_broadcast(db, slug)
    if b.parent_id is not None:  # an occurrence of a recurring one: show its parent
        parent = db.get(Broadcast, b.parent_id)
        if parent is not None:
            return parent
    return b


def newsletter_page(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    with req.ctx.runtime.read_sessions() as db:
        b = _broadcast(db, slug)
        tag = db.get(Tag, b.tag_id) if b.tag_id else None
        counts = broadcasts.counts(db, b)
        occurrences = list(db.scalars(select(Broadcast).where(Broadcast.parent_id == b.id)
                                      .order_by(Broadcast.send_at.desc()).limit(20)))
        try:
            rendered = render_sample(req.staff.renderer, broadcast_content(b), req.ctx.settings.base_url)  # type: ignore[arg-type]
        except DripError:
            rendered = None
        return req.render("newsletter.html", {
            "nav": "newsletters", "b": b, "list": tag.name if tag else "", "counts": counts,
            "count_order": COUNT_ORDER, "total": sum(counts.values()), "occurrences": occurrences,
            "audience": audience_size(db, b.tag_id),
            "rendered": rendered, "clinic_tz": req.ctx.settings.clinic.timezone,
            "next": broadcasts.next_send(b),
            "can_schedule": b.status in _SCHEDULABLE,
            "can_cancel": b.status in _CANCELLABLE,
            "can_pause": b.status == BroadcastStatus.SCHEDULED.value,
            "can_resume": b.status == BroadcastStatus.PAUSED.value,
            "schedule": {"mode": req.query("mode", "once"), "at": "", "local": False, "cron": ""},
            "health_wording": broadcasts.health_wording(b),
        })


def newsletter_email(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    with req.ctx.runtime.read_sessions() as db:
        content = broadcast_content(_broadcast(db, slug))
    rendered = render_sample(req.staff.renderer, content, req.ctx.settings.base_url)  # type: ignore[arg-type]
    return Response(rendered.html, media_type="text/html; charset=utf-8", headers=PREVIEW_HEADERS)


def newsletter_schedule(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    mode = req.field("mode")
    try:
        with req.ctx.runtime.sessions.begin() as db:
            b = _broadcast(db, slug)
            if b.status == BroadcastStatus.DRAFT.value and req.field("confirm_wording") != "1" \
                    and broadcasts.health_wording(b):
                raise InputError("the wording addresses the reader's own health (see the warning): reword it, "
                                 "or tick “I have checked the wording” to schedule anyway", where="wording")
            if mode == "cron":
                cron = req.field("cron").strip()
                if not cron:
                    raise InputError("type a cron expression, e.g. 0 9 * * mon", where="cron")
                broadcasts.schedule(db, b, cron=cron, clinic_tz=req.ctx.settings.clinic.timezone, now=req.now)
                message = f"Recurring newsletter scheduled ({cron}); the next one goes out {b.send_at:%Y-%m-%d %H:%M} UTC."
            else:
                at = req.field("at").strip().replace("T", " ")
                if not at:
                    raise InputError("type the date and time as YYYY-MM-DD HH:MM", where="send at")
                local = bool(req.field("local"))
                n = broadcasts.schedule(db, b, at=at, local=local, clinic_tz=req.ctx.settings.clinic.timezone,
                                        now=req.now)
                where = "in each patient's own time zone" if local else f"({req.ctx.settings.clinic.timezone})"
                if b.cron:
                    message = f"The next occurrence goes out {at} {where}; later ones follow {b.cron}."
                else:
                    message = f"Scheduled for {at} {where}: {n} recipient{'s' if n != 1 else ''}."
                if b.status == BroadcastStatus.PAUSED.value:
                    message += " It stays paused until you resume it."
            req.audit(db, "newsletter.schedule", f"newsletter {b.slug}",
                      after={"cron": b.cron, "send_at": b.send_at, "status": b.status})
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).replace("--at/--cron: ", "").replace("--at: ", "send at: ").replace("--cron: ", "cron: "),
                  "error")
        return req.redirect("staff:newsletter", slug=slug)
    req.flash(message)
    return req.redirect("staff:newsletter", slug=slug)


def newsletter_cancel(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    with req.ctx.runtime.sessions.begin() as db:
        b = _broadcast(db, slug)
        if b.status not in _CANCELLABLE:
            req.flash(f"Only a scheduled or paused newsletter can be cancelled; this one is {b.status}.", "error")
            return req.redirect("staff:newsletter", slug=slug)
        n = broadcasts.cancel(db, b)
        req.audit(db, "newsletter.cancel", f"newsletter {b.slug}", after={"cancelled": n})
    req.flash(f"Newsletter cancelled; {n} email{'s' if n != 1 else ''} will not be sent.")
    return req.redirect("staff:newsletter", slug=slug)


def newsletter_pause(req: StaffRequest) -> Response:
    """Hold or release a newsletter (one-off or recurring) without losing its schedule."""
    slug = req.request.path_params["slug"]
    resume = req.field("action") == "resume"
    try:
        with req.ctx.runtime.sessions.begin() as db:
            b = _broadcast(db, slug)
            if resume:
                n = broadcasts.resume(db, b, clinic_tz=req.ctx.settings.clinic.timezone, now=req.now)
                message = f"Newsletter resumed; {n} email{'s' if n != 1 else ''} will go out as scheduled."
            else:
                n = broadcasts.pause(db, b)
                message = f"Newsletter paused; {n} email{'s' if n != 1 else ''} held until you resume it."
            req.audit(db, "newsletter.resume" if resume else "newsletter.pause", f"newsletter {b.slug}",
                      after={"emails": n})
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).replace("slug: ", ""), "error")
        return req.redirect("staff:newsletter", slug=slug)
    req.flash(message)
    return req.redirect("staff:newsletter", slug=slug)


def newsletter_test(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    assert req.user is not None
    with req.ctx.runtime.read_sessions() as db:
        content = broadcast_content(_broadcast(db, slug))
    try:
        send_test(req.ctx.settings, req.staff.renderer, content, req.user.email)  # type: ignore[arg-type]
    except (SendError, DripError) as exc:
        req.flash(f"The test email could not be sent: {exc}", "error")
        sent = False
    else:
        req.flash(f"Test email sent to {req.user.email}.")
        sent = True
    audit_test_email(req, f"newsletter {slug}", sent)
    return req.redirect("staff:newsletter", slug=slug)
