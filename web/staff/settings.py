"""Settings (owners): clinic identity and branding with a live email preview, the logo, clinician
sign-off on or off, how long delivery history is kept, lists, API tokens.

The preview needs no script: the form's "Preview" button posts the unsaved values to
/staff/settings/preview with `formtarget` set to the preview frame, which renders a sample step
with a renderer built from those values. Nothing is stored by a preview.

Every change is audited (before -> after) in the transaction that makes it, and the runtime is
refreshed at once, so this process's pages and its embedded worker use the new values; other
processes read the settings version on their next tick / request (drip/clinic_settings.py).
"""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.responses import Response

from campaigns.render import EmailContent, Renderer
from drip import clinic_settings as cs
from drip.errors import InputError, NotFoundError
from drip.models import SubscriberTag, Tag
from drip.permissions import SCOPES, check_scopes
from web.api_tokens import create_token, list_tokens, revoke_token
from web.staff.base import StaffRequest
from web.staff.emails import PREVIEW_HEADERS, render_sample

SAMPLE = EmailContent(
    key="", title="Stretches for a stiff lower back",
    subject="Three stretches for a stiff back", preheader="Five minutes a day, no equipment.",
    body="A stiff back is common after a long day sitting.\n\n- Knee to chest\n- Cat and cow\n- Child's pose\n\n"
         "Hold each for thirty seconds and breathe slowly.", kind="item", position=1, total=3,
    campaign_title="Back care",
)
# The logo is on our own base URL, which may be http:// in development.
SETTINGS_PREVIEW_HEADERS = dict(PREVIEW_HEADERS)
SETTINGS_PREVIEW_HEADERS["Content-Security-Policy"] = PREVIEW_HEADERS["Content-Security-Policy"].replace(
    "img-src https: data:", "img-src https: data: http:")


def _error(exc: InputError) -> str:
    return str(exc)  # "Field: what is wrong"


def _form_values(req: StaffRequest) -> dict[str, str]:
    return {k: req.field(k) for k in cs.KEYS}


def _page(req: StaffRequest, *, error: str = "", values: dict[str, str] | None = None,
          status_code: int = 200, retention_error: str = "", retention_form: dict[str, str] | None = None,
          retention_confirm: dict | None = None) -> Response:
    clinic = req.ctx.settings.clinic
    days = req.ctx.settings.retention_days
    with req.ctx.runtime.read_sessions() as db:
        saved = cs.retention_days(cs.stored(db)) is not None
    return req.render("settings.html", {
        "nav": "settings", "fields": cs.FIELDS, "values": values or cs.current(clinic, {}), "error": error,
        "logo_url": clinic.logo_url, "max_logo_kb": cs.MAX_LOGO_BYTES // 1024,
        "require_signoff": req.ctx.settings.require_signoff,
        "retention_days": days, "retention_saved": saved, "retention_error": retention_error,
        "retention_form": retention_form or {"keep": "days" if days else "forever", "days": str(days) if days else ""},
        "retention_confirm": retention_confirm, "retention_min": cs.MIN_RETENTION_DAYS,
        "retention_max": cs.MAX_RETENTION_DAYS,
    }, status_code=status_code)


def settings_page(req: StaffRequest) -> Response:
    return _page(req)


def settings_save(req: StaffRequest) -> Response:
    values = _form_values(req)
    try:
        cleaned = cs.validate(values)
    except InputError as exc:
        return _page(req, error=_error(exc), values=values, status_code=400)
    with req.ctx.runtime.sessions.begin() as db:
        before, after = cs.save(db, _base(req), cleaned)
        if after:
            req.audit(db, "settings.clinic", "clinic settings", before=before, after=after)
    req.staff.refresh_clinic()
    req.flash("Saved: the next emails use these settings." if after else "Nothing changed.")
    return req.redirect("staff:settings")


def settings_signoff(req: StaffRequest) -> Response:
    """Clinician sign-off on or off (campaigns/signoff.py). Off suits a one-person clinic: editors'
    changes go live at once. Changes already waiting keep waiting for an approver."""
    choice = req.field("require_signoff")
    if choice not in ("1", "0"):
        return _page(req, error="Clinician sign-off: choose required or not required", status_code=400)
    required, was = choice == "1", req.ctx.settings.require_signoff
    with req.ctx.runtime.sessions.begin() as db:
        cs.save_signoff(db, required)
        if required != was:
            req.audit(db, "settings.signoff", "clinic settings", before={"require_signoff": was},
                      after={"require_signoff": required})
    req.staff.refresh_clinic()
    if required == was:
        req.flash("Nothing changed.")
    elif required:
        req.flash("Clinician sign-off is on: editors' changes to published emails wait for an approver.")
    else:
        req.flash("Clinician sign-off is off: editors' changes go live at once. Changes already waiting still "
                  "wait for an approver.")
    return req.redirect("staff:settings")


def settings_retention(req: StaffRequest) -> Response:
    """How long delivery history is kept (delivery/retention.py): forever, or 90 to 3650 days.
    Lowering it (deleting more) takes a second submit: the page counts what the new value would
    delete now, and saves only with the box ticked for that same number of days."""
    form = {"keep": req.field("keep"), "days": req.field("days").strip()[:20]}
    try:
        days = cs.parse_retention(form["keep"], form["days"])
    except InputError as exc:
        return _page(req, retention_error=_error(exc), retention_form=form, status_code=400)
    was = req.ctx.settings.retention_days
    lowering = days > 0 and (was <= 0 or days < was)
    if lowering and not (req.field("confirm") == "on" and req.field("confirm_days") == str(days)):
        from delivery.retention import count_capped

        with req.ctx.runtime.read_sessions() as db:
            count = count_capped(db, req.now, days)
        return _page(req, retention_form=form, retention_confirm={"days": days, "count": count})
    with req.ctx.runtime.sessions.begin() as db:
        cs.save_retention(db, days)
        if days != was:
            req.audit(db, "settings.retention", "clinic settings", before={"retention_days": was},
                      after={"retention_days": days})
    req.staff.refresh_clinic()
    if days == was:
        req.flash("Nothing changed.")
    elif days:
        req.flash(f"Delivery history older than {days} days is deleted by the worker within the hour.")
    else:
        req.flash("Delivery history is kept forever.")
    return req.redirect("staff:settings")


def _base(req: StaffRequest):
    """The clinic from env / drip.toml, below the stored values."""
    return req.ctx.runtime.base_clinic


def _preview_response(req: StaffRequest, clinic) -> Response:
    renderer = Renderer(clinic, req.ctx.settings.base_url)
    rendered = render_sample(renderer, SAMPLE, req.ctx.settings.base_url)
    return Response(rendered.html, media_type="text/html; charset=utf-8", headers=SETTINGS_PREVIEW_HEADERS)


def settings_preview(req: StaffRequest) -> Response:
    """GET: the saved settings; POST: the form's unsaved values (nothing is stored)."""
    clinic = req.ctx.settings.clinic
    if req.request.method == "POST":
        try:
            cleaned = cs.validate(_form_values(req))
        except InputError as exc:
            return Response(f"Cannot preview: {exc}", status_code=400, media_type="text/plain; charset=utf-8",
                            headers=SETTINGS_PREVIEW_HEADERS)
        clinic = cs.apply(clinic, cleaned)
    return _preview_response(req, clinic)


def settings_logo(req: StaffRequest) -> Response:
    upload = req.upload("logo")
    data = upload.file.read(cs.MAX_LOGO_BYTES + 1) if upload is not None else b""
    try:
        with req.ctx.runtime.sessions.begin() as db:
            old, new = cs.save_logo(db, req.ctx.settings.base_url, data)
            req.audit(db, "settings.logo", "clinic logo", before={"logo_url": old}, after={"logo_url": new})
    except InputError as exc:
        return _page(req, error=_error(exc), status_code=400)
    req.staff.refresh_clinic()
    req.flash("Logo saved.")
    return req.redirect("staff:settings")


def settings_logo_remove(req: StaffRequest) -> Response:
    with req.ctx.runtime.sessions.begin() as db:
        old, new = cs.remove_logo(db)
        req.audit(db, "settings.logo", "clinic logo", before={"logo_url": old}, after={"logo_url": new})
    req.staff.refresh_clinic()
    req.flash("Logo removed.")
    return req.redirect("staff:settings")


# -- lists (tags) and how patients see them

def _lists_page(req: StaffRequest, *, error: str = "", status_code: int = 200) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        counts = dict(db.execute(select(SubscriberTag.tag_id, func.count()).group_by(SubscriberTag.tag_id)).all())
        tags = list(db.scalars(select(Tag).order_by(Tag.name)))
        return req.render("lists.html", {"nav": "settings", "tags": tags, "counts": counts, "error": error},
                          status_code=status_code)


def lists_page(req: StaffRequest) -> Response:
    return _lists_page(req)


def _list_values(req: StaffRequest) -> tuple[str, bool]:
    description = " ".join(req.field("description").split())
    if len(description) > 300:
        raise InputError("at most 300 characters", where="Description")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in description):
        raise InputError("control characters are not allowed", where="Description")
    return description, req.field("shown") == "on"


def list_add(req: StaffRequest) -> Response:
    name = req.field("name").strip().lower()
    try:
        if not name or len(name) > 100 or any(c.isspace() or ord(c) < 32 for c in name):
            raise InputError("a name without spaces, at most 100 characters (e.g. newsletter)", where="Name")
        description, shown = _list_values(req)
        with req.ctx.runtime.sessions.begin() as db:
            if db.scalar(select(Tag.id).where(Tag.name == name)) is not None:
                raise InputError(f"a list named {name!r} already exists", where="Name")
            tag = Tag(name=name, description=description, shown=shown)
            db.add(tag)
            db.flush()
            req.audit(db, "list.add", f"list {tag.id}", after={"name": name, "description": description, "shown": shown})
    except InputError as exc:
        return _lists_page(req, error=_error(exc), status_code=400)
    req.flash(f"List {name} added.")
    return req.redirect("staff:lists")


def list_edit(req: StaffRequest) -> Response:
    tag_id = int(req.request.path_params["id"])
    try:
        description, shown = _list_values(req)
        with req.ctx.runtime.sessions.begin() as db:
            tag = db.get(Tag, tag_id)
            if tag is None:
                raise NotFoundError(f"no list {tag_id}")
            before = {"description": tag.description, "shown": tag.shown}
            tag.description, tag.shown = description, shown
            from drip.audit import changed

            b, a = changed(before, {"description": description, "shown": shown})
            if a:
                req.audit(db, "list.edit", f"list {tag.id}", before=b, after=a)
            name = tag.name
    except NotFoundError:
        raise
    except InputError as exc:
        return _lists_page(req, error=_error(exc), status_code=400)
    req.flash(f"List {name} saved.")
    return req.redirect("staff:lists")


def list_delete(req: StaffRequest) -> Response:
    tag_id = int(req.request.path_params["id"])
    with req.ctx.runtime.sessions.begin() as db:
        tag = db.get(Tag, tag_id)
        if tag is None:
            raise NotFoundError(f"no list {tag_id}")
        members = db.scalar(select(func.count()).select_from(SubscriberTag).where(SubscriberTag.tag_id == tag_id)) or 0
        if members or tag.campaign_id is not None:
            return _lists_page(req, error=f"List {tag.name}: has {members} patient(s) or starts a campaign; "
                                          "hide it from patients instead", status_code=400)
        req.audit(db, "list.delete", f"list {tag.id}", before={"name": tag.name, "description": tag.description})
        name = tag.name
        db.delete(tag)
    req.flash(f"List {name} deleted.")
    return req.redirect("staff:lists")


# -- API tokens

def _tokens_page(req: StaffRequest, *, error: str = "", new_token: str = "", status_code: int = 200) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        tokens = list_tokens(db)
    return req.render("tokens.html", {"nav": "settings", "tokens": tokens, "scopes": SCOPES, "error": error,
                                      "new_token": new_token}, status_code=status_code,
                      headers={"Cache-Control": "no-store"})


def tokens_page(req: StaffRequest) -> Response:
    return _tokens_page(req)


def token_create(req: StaffRequest) -> Response:
    chosen = [s for s in req.form.getlist("scope")] if req.form is not None else []
    try:
        if not chosen:
            raise InputError("choose at least one scope", where="Scopes")
        scopes = check_scopes([str(s) for s in chosen])
        with req.ctx.runtime.sessions.begin() as db:
            info, token = create_token(db, req.field("name"), req.now, scopes=scopes)
            req.audit(db, "token.create", f"api token {info.id}", after={"name": info.name, "scopes": scopes})
    except InputError as exc:
        return _tokens_page(req, error=_error(exc).replace("NAME: ", "Name: ").replace("--scope: ", "Scopes: "), status_code=400)
    # Shown on this response only: the database keeps its SHA-256 digest, never the token.
    return _tokens_page(req, new_token=token)


def token_revoke(req: StaffRequest) -> Response:
    token_id = int(req.request.path_params["id"])
    with req.ctx.runtime.sessions.begin() as db:
        info = revoke_token(db, str(token_id))
        req.audit(db, "token.revoke", f"api token {info.id}", before={"revoked": False}, after={"revoked": True,
                                                                                               "name": info.name})
    req.flash(f"Token {info.name} revoked: it no longer works.")
    return req.redirect("staff:tokens")
