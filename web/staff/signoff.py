"""Clinician sign-off pages (campaigns/signoff.py): submit (editors), the review page with each
step's diff, approve or send back with a comment (approvers and owners). Each is audited."""

from __future__ import annotations

from markupsafe import Markup
from starlette.responses import Response

from campaigns import signoff
from drip.errors import InputError, NotFoundError
from drip.i18n import ENGLISH_NAMES
from web.staff.base import StaffRequest
from web.staff.campaigns import _campaign


def _act(req: StaffRequest, work, action: str) -> Response:
    slug = req.request.path_params["slug"]
    try:
        with req.ctx.runtime.sessions.begin() as db:
            campaign = _campaign(db, slug)
            message, after = work(db, campaign)
            req.audit(db, action, f"campaign {campaign.slug}", after=after)
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).split(": ", 1)[-1], "error")
        return req.redirect("staff:campaign_review" if action != "review.submit" else "staff:campaign", slug=slug)
    req.flash(message)
    return req.redirect("staff:campaign", slug=slug)


def campaign_submit(req: StaffRequest) -> Response:
    def work(db, campaign):
        signoff.submit(db, campaign)
        message = "Sent for approval: an approver reviews each change before it goes out."
        return message, {"pending": signoff.pending_steps(db, campaign)}
    return _act(req, work, "review.submit")


def campaign_review(req: StaffRequest) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        campaign = _campaign(db, req.request.path_params["slug"])
        diffs = signoff.diffs(db, campaign)
        waiting = signoff.needs_review(db, campaign)
        from campaigns.service import review_campaign

        warnings = review_campaign(db, campaign) if campaign.status == "draft" else []
        return req.render("review.html", {
            "nav": "campaigns", "campaign": campaign, "waiting": waiting, "warnings": warnings,
            "diffs": [(d.position, d.changed, Markup(d.html)) for d in diffs],  # noqa: S704 (difflib escapes content)
            "translation_diffs": [(ENGLISH_NAMES.get(language, language), language,
                                   [(d.position, Markup(d.html)) for d in ds])  # noqa: S704 (difflib escapes content)
                                  for language, ds in signoff.translation_diffs(db, campaign)],
        })


def campaign_approve(req: StaffRequest) -> Response:
    def work(db, campaign):
        was = campaign.status
        if was == "draft" and req.field("confirm") != "1":
            from campaigns.service import review_campaign

            open_warnings = len(review_campaign(db, campaign))
            if open_warnings:  # as the Publish button asks (campaigns/review.py)
                raise InputError(f"{open_warnings} review warning{'s' if open_warnings != 1 else ''} still open: "
                                 "tick “I have reviewed the warnings” to approve and publish anyway")
        n = signoff.approve(db, campaign, req.now)
        done = "is approved and published" if was == "draft" else f"is approved: {n} changed email{'s' if n != 1 else ''} now go out"
        return f"“{campaign.title}” {done}.", {"status": campaign.status, "edits_live": n}
    return _act(req, work, "review.approve")


def campaign_return(req: StaffRequest) -> Response:
    def work(db, campaign):
        signoff.send_back(db, campaign, req.field("comment"))
        return "Sent back to the editor with your comment.", {"comment": campaign.review_comment}
    return _act(req, work, "review.return")
