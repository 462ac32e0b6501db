"""Log in and out. One generic message for every failed login; too many failures -> 429."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from drip.audit import Actor, record
from web.staff.auth import authenticate, end_session, safe_next, start_session
from web.staff.base import StaffRequest

LOGIN_FAILED = "That email and password do not match an account."


def _client_ip(req: StaffRequest) -> str:
    client = req.request.client
    return client.host if client else "unknown"


def login(req: StaffRequest) -> Response:
    next_path = safe_next(req.query("next") or req.field("next"))
    if req.request.method == "GET":
        if req.user is not None:
            return RedirectResponse(next_path, status_code=303)
        return req.render("login.html", {"next": next_path, "email": "", "error": ""})

    email = req.field("email").strip()[:320]
    password = req.field("password")
    ip = _client_ip(req)
    limiter = req.staff.limiter
    wait = limiter.retry_after(email, ip, req.now)
    if wait is not None:
        minutes = max(1, round(wait / 60))
        return req.render("login.html", {
            "next": next_path, "email": email,
            "error": f"Too many failed attempts. Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again.",
        }, status_code=429, headers={"Retry-After": str(wait)})

    with req.ctx.runtime.sessions.begin() as db:
        user = authenticate(db, email, password)
        if user is not None:
            start_session(req.session, user, req.now)
            record(db, Actor("staff", user.id, user.email, ip), "staff.login", f"staff user {user.id}", at=req.now)
        else:  # the address as typed (it may be no account at all): who tried is what the log is for
            record(db, Actor("staff", None, email or "(empty)", ip), "staff.login_failed", at=req.now)
    if user is None:
        limiter.failed(email, ip, req.now)
        return req.render("login.html", {"next": next_path, "email": email, "error": LOGIN_FAILED})
    limiter.succeeded(email, ip)
    return RedirectResponse(next_path, status_code=303)


def logout(req: StaffRequest) -> Response:
    with req.ctx.runtime.sessions.begin() as db:
        req.audit(db, "staff.logout", f"staff user {req.user.id}" if req.user else "")
    end_session(req.session, req.staff.revoked)
    req.flash("You are logged out.", "info")
    return req.redirect("staff:login")
