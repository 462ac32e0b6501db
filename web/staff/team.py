"""The team page (owners): staff users and their roles, invitations; and the invitation link itself.

An invitation is shown to the owner (to pass on by hand) and also sent by email through the
configured backend (the outbox by default). Every invite, role change and accepted invitation
is written to the audit log in the same transaction.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from delivery.backends import get_backend
from delivery.types import OutgoingMessage
from drip.audit import Actor, record
from drip.errors import InputError
from drip.models import StaffUser
from drip.permissions import ROLE_HELP, ROLE_NAMES
from web.staff.base import StaffRequest
from web.staff.invites import INVITE_LIFETIME, accept_invite, create_invite, find_invite, pending_invites, set_role

TEMPLATE = "team.html"
log = logging.getLogger("drip.staff")


def _page(req: StaffRequest, *, error: str = "", link: str = "", email: str = "", status_code: int = 200) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        users = list(db.scalars(select(StaffUser).order_by(StaffUser.email)))
        invites = pending_invites(db, req.now)
        return req.render(TEMPLATE, {
            "nav": "team", "users": users, "invites": invites, "roles": ROLE_NAMES, "role_help": ROLE_HELP,
            "error": error, "link": link, "invited": email,
        }, status_code=status_code)


def team_page(req: StaffRequest) -> Response:
    return _page(req)


def invite_url(req: StaffRequest, token: str) -> str:
    return req.ctx.settings.base_url.rstrip("/") + req.request.app.url_path_for("staff:invite", token=token)


def _send_invite(req: StaffRequest, to: str, role: str, link: str) -> str:
    """Email the link; '' when sent, else what went wrong (the owner still has the link on screen)."""
    clinic = req.ctx.settings.clinic
    hours = int(INVITE_LIFETIME.total_seconds() // 3600)
    text = (f"You have been invited to the patient email staff pages of {clinic.name} as {role}.\n\n"
            f"Set your password here (the link works once, for {hours} hours):\n{link}\n\n"
            "If you did not expect this, ignore this email.\n")
    from html import escape

    html = "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in text.strip().split("\n\n"))
    message = OutgoingMessage(
        delivery_id=0, to_email=to, to_name="", subject=f"Your staff account at {clinic.name}", html=html,
        text=text, from_email=clinic.from_email, from_name=clinic.from_name, reply_to=clinic.reply_to,
        unsubscribe_url=req.ctx.settings.base_url.rstrip("/") + "/staff/login", categories=("staff",),
    )
    try:
        with get_backend(req.ctx.settings) as backend:
            [result] = backend.send_batch([message])
    except Exception as exc:  # the invitation exists either way: the owner has the link on screen
        log.warning("invitation email not sent: %s", str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return "" if result.ok else (result.error or "the email backend refused it")


def team_invite(req: StaffRequest) -> Response:
    email, role = req.field("email").strip()[:320], req.field("role")
    try:
        with req.ctx.runtime.sessions.begin() as db:
            invite, token = create_invite(db, email, role, req.user.id if req.user else None, req.now)
            req.audit(db, "staff.invite", f"staff invite {invite.id}", after={"email": invite.email, "role": invite.role})
            to, role = invite.email, invite.role
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    link = invite_url(req, token)
    problem = _send_invite(req, to, role, link)
    if problem:
        req.flash(f"The invitation email could not be sent ({problem}); pass the link on yourself.", "error")
    return _page(req, link=link, email=to)


def team_role(req: StaffRequest) -> Response:
    user_id = int(req.request.path_params["id"])
    try:
        with req.ctx.runtime.sessions.begin() as db:
            user, old = set_role(db, user_id, req.field("role"))
            if old != user.role:
                req.audit(db, "staff.role", f"staff user {user.id}", before={"role": old},
                          after={"role": user.role, "email": user.email})
            message = f"{user.email} is now {user.role}."
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    req.flash(message)
    return req.redirect("staff:team")


def invite_accept(req: StaffRequest) -> Response:
    token = req.request.path_params["token"]
    if req.request.method == "GET":
        with req.ctx.runtime.read_sessions() as db:
            invite = find_invite(db, token, req.now)
            email = invite.email if invite else ""
        if invite is None:
            return _invalid(req)
        return req.render("invite.html", {"email": email, "error": "", "token": token})
    password, again = req.field("password"), req.field("password2")
    try:
        if password != again:
            raise InputError("the two passwords are not the same", where="password")
        with req.ctx.runtime.sessions.begin() as db:
            user = accept_invite(db, token, password, req.now)
            record(db, Actor("staff", user.id, user.email, req.ip), "staff.invite_accepted", f"staff user {user.id}",
                   after={"role": user.role}, at=req.now)
    except InputError as exc:
        with req.ctx.runtime.read_sessions() as db:
            invite = find_invite(db, token, req.now)
        if invite is None:
            return _invalid(req)
        return req.render("invite.html", {"email": invite.email, "token": token,
                                          "error": str(exc).split(": ", 1)[-1]}, status_code=400)
    req.flash("Your password is set. Please log in.", "success")
    return RedirectResponse(req.request.app.url_path_for("staff:login"), status_code=303)


def _invalid(req: StaffRequest) -> Response:
    return req.render("error.html", {
        "title": "Invitation not valid",
        "detail": "This invitation link was already used, has expired or was replaced. Ask the clinic's owner for a new one.",
    }, status_code=404)
