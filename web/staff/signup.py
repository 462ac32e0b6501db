"""The sign-up page: which campaign the public form starts, and the list it adds patients to.

Until a published campaign is chosen, this page, the campaign list and the subscriber list warn
that sign-ups get no emails (subscribers/signup_forms.py says what counts as chosen).
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response

from drip.errors import InputError
from drip.models import Campaign, CampaignStatus
from subscribers.signup_forms import DEFAULT_FORM, list_forms, set_signup_campaign, signup_choice, signup_warnings
from drip.audit import changed
from web.staff.base import StaffRequest


def signup_warning(req: StaffRequest, db) -> str:
    """The warning staff pages show: each sign-up form (default or named) that starts no published
    campaign, and why (empty when every form starts one)."""
    return signup_warnings(db, req.ctx.settings)


def _page(req: StaffRequest, *, error: str = "", status_code: int = 200) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        choice = signup_choice(db, req.ctx.settings)
        others = [signup_choice(db, req.ctx.settings, f.name) for f in list_forms(db) if f.name != DEFAULT_FORM]
        campaigns = list(db.scalars(select(Campaign).where(Campaign.status != CampaignStatus.ARCHIVED.value)
                                    .order_by(Campaign.title)))
        return req.render("signup.html", {
            "nav": "signup", "choice": choice, "campaigns": campaigns, "error": error, "others": others,
            "signup_warning": signup_warnings(db, req.ctx.settings),
        }, status_code=status_code)


def signup_page(req: StaffRequest) -> Response:
    return _page(req)


def signup_set(req: StaffRequest) -> Response:
    slug = req.field("campaign").strip()
    tag = req.field("tag")
    form = req.field("form", DEFAULT_FORM).strip().lower() or DEFAULT_FORM
    where = "Sign-ups" if form == DEFAULT_FORM else f"Sign-ups on /subscribe?form={form}"
    try:
        with req.ctx.runtime.sessions.begin() as db:
            was = signup_choice(db, req.ctx.settings, form)
            set_signup_campaign(db, slug or None, req.now, form=form, tag=tag)
            choice = signup_choice(db, req.ctx.settings, form)
            before, after = changed({"campaign": was.slug, "tag": was.tag}, {"campaign": choice.slug, "tag": choice.tag})
            req.audit(db, "settings.signup", f"sign-up form {form}", before=before, after=after)
            message = (f"{where} now start “{choice.campaign.title}”." if choice.campaign is not None
                       else "Saved. " + choice.warning)
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    req.flash(message, "success" if choice.campaign is not None else "error")
    return req.redirect("staff:signup")
