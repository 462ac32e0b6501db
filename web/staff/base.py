"""What every staff page shares: login check, CSRF check, flash messages, rendering, headers.

A staff endpoint is a plain synchronous function `handler(req: StaffRequest) -> Response`,
wrapped by `StaffContext.page(...)`. The wrapper (async) does, in this order:
  1. login: no valid session -> 303 to /staff/login?next=<this path and query> (a POST goes to
     the login page without `next`: its data is not kept and its URL is not a page);
  2. permission: every route declares one (`perm=`, drip/permissions.py); a logged-in user whose
     role lacks it gets a 403 page, before any form is read or anything runs;
  3. for POST: reads the form (size-capped), then checks the origin headers and the CSRF token
     bound to the session id -> 403 page and nothing changes when either fails;
  4. runs the handler in the thread pool (it uses the database).
Every staff response is `no-store` (patient data), framed by nobody but our own pages, and sends
the Origin header on our own form posts (`Referrer-Policy: same-origin`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaigns.bulk import BulkJobs
from campaigns.documents import MAX_BYTES
from campaigns.render import Renderer
from drip.audit import Actor, record
from drip.config import secret_key
from drip.errors import NotFoundError
from drip.models import AuditEntry
from drip.permissions import Perm, allowed
from web.context import WebContext
from web.csrf import FormGuard, same_origin
from web.pages import render
from web.staff.auth import RevokedSessions, StaffIdentity, current_staff, ensure_sid
from web.staff.ratelimit import LoginLimiter

log = logging.getLogger("drip.staff")

# Staff pages: our own stylesheet only, no script at all, frames only from us (email previews).
STAFF_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data: https:; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STAFF_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": STAFF_CSP,
    "Referrer-Policy": "same-origin",
}
MAX_FORM_FIELDS = 300
MAX_UPLOAD = MAX_BYTES  # the largest article the readers take; CSVs get the same cap
FORM_OVERHEAD = 64 * 1024


class StaffStylesheet:
    """staff.css rendered once with the clinic colour; its hash versions the URL."""

    def __init__(self, env: jinja2.Environment) -> None:
        self.body = env.get_template("staff.css").render().encode("utf-8")
        self.version = hashlib.sha256(self.body).hexdigest()[:12]


@dataclass
class StaffRequest:
    request: Request
    ctx: WebContext
    staff: "StaffContext"
    user: StaffIdentity | None
    form: FormData | None = None

    @property
    def session(self) -> dict[str, Any]:
        return self.request.session

    @property
    def now(self) -> datetime:
        return self.ctx.clock()

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else default

    def upload(self, name: str) -> UploadFile | None:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, UploadFile) and value.filename else None

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def flash(self, message: str, kind: str = "success") -> None:
        messages = list(self.session.get("flash") or [])[-4:]  # the session is a cookie: keep it small
        messages.append([kind, message if len(message) <= 500 else message[:499] + "…"])
        self.session["flash"] = messages

    @property
    def ip(self) -> str:
        client = self.request.client
        return client.host if client else ""

    @property
    def actor(self) -> Actor:
        if self.user is None:
            return Actor("staff", None, "anonymous", self.ip)
        return Actor("staff", self.user.id, self.user.email, self.ip)

    def audit(self, db: Any, action: str, target: str = "", *, before: dict | None = None,
              after: dict | None = None) -> AuditEntry:
        """Record this staff action in `db`'s transaction (drip/audit.py)."""
        return record(db, self.actor, action, target, before=before, after=after, at=self.now)

    def redirect(self, name: str, **params: Any) -> Response:
        return RedirectResponse(self.request.app.url_path_for(name, **params), status_code=303)

    def render(self, template: str, context: Mapping[str, Any] | None = None, *, status_code: int = 200,
               headers: Mapping[str, str] | None = None) -> Response:
        return self.staff.render(self.request, template, context, user=self.user, status_code=status_code,
                                 headers=headers)


Handler = Callable[[StaffRequest], Response]


@dataclass
class StaffContext:
    """Built once per app by `web.staff.routes`; holds what the staff pages share."""

    ctx: WebContext
    forms: FormGuard
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    revoked: RevokedSessions = field(default_factory=RevokedSessions)
    renderer: Renderer | None = None
    stylesheet: StaffStylesheet | None = None
    bulk: BulkJobs = field(default_factory=BulkJobs)  # bulk enrollment runs (web/staff/bulk.py)

    @classmethod
    def build(cls, ctx: WebContext) -> "StaffContext":
        key = secret_key(ctx.settings)
        staff = cls(ctx=ctx, forms=FormGuard(key, salt="drip.staff.form"))
        staff.renderer = Renderer(ctx.settings.clinic, ctx.settings.base_url)
        staff.stylesheet = StaffStylesheet(ctx.templates.env)
        return staff

    @property
    def secure_cookies(self) -> bool:
        return self.ctx.settings.base_url.startswith("https://")

    # -- rendering

    def when(self, at: datetime | None, fmt: str = "%a %d %b %Y, %H:%M %Z") -> str:
        """A stored (UTC) time in the clinic's zone, for tables."""
        if at is None:
            return "—"
        return at.astimezone(ZoneInfo(self.ctx.settings.clinic.timezone)).strftime(fmt)

    @staticmethod
    def wall(at: datetime, fmt: str = "%a %d %b %Y, %H:%M %Z") -> str:
        """A time already in the zone it should be read in (a patient's own)."""
        return at.strftime(fmt)

    def render(self, request: Request, template: str, context: Mapping[str, Any] | None = None, *,
               user: StaffIdentity | None, status_code: int = 200,
               headers: Mapping[str, str] | None = None) -> Response:
        session = request.session
        sid = ensure_sid(session)
        flashes = session.pop("flash", None) or []
        assert self.stylesheet is not None
        full = {
            "user": user,
            "csrf": self.forms.issue(sid),
            "flashes": [(str(k), str(m)) for k, m in flashes if isinstance(k, str)],
            "staff_css": self.stylesheet.version,
            "nav": "",
            "signup_warning": "",
            "when": self.when,
            "can": (lambda perm: user is not None and allowed(user.role, perm)),
            "wall": self.wall,
            "sending_stopped": self.sending_stopped() if user is not None else "",
            "sending_limited": self.sending_limited() if user is not None else "",
            **(context or {}),
        }
        all_headers = dict(STAFF_HEADERS)
        all_headers.update(headers or {})
        return render(self.ctx.templates, request, f"staff/{template}", full, status_code=status_code,
                      headers=all_headers)

    def sending_stopped(self) -> str:
        """The banner every staff page shows when no worker is sending ("" while one is).

        Emails go out only while a worker runs (`drip run`, `drip serve --worker`); without this,
        nothing on the pages said that a campaign "published" an hour ago had sent nothing.
        """
        from delivery.heartbeat import worker_health
        from drip.models import Delivery, DeliveryStatus

        now = self.ctx.clock()
        try:
            with self.ctx.runtime.read_sessions() as db:
                health = worker_health(db, now, self.ctx.settings.worker_stale_seconds)
                if health.sending:
                    return ""
                waiting = db.scalar(select(func.count()).select_from(Delivery).where(
                    Delivery.status == DeliveryStatus.SCHEDULED.value, Delivery.due_at <= now)) or 0
        except Exception:  # a page must still render; /healthz reports the database itself
            log.exception("worker status could not be read")
            return ""
        if health.last_beat is None:
            since = "no worker has ever run"
        else:
            zone = ZoneInfo(self.ctx.settings.clinic.timezone)
            last, today = health.last_beat.astimezone(zone), now.astimezone(zone)
            since = f"no worker has run since {last:%H:%M}" if last.date() == today.date() else \
                f"no worker has run since {last:%a %d %b %Y, %H:%M}"
        due = f" {waiting} email{'s are' if waiting != 1 else ' is'} due and waiting." if waiting else ""
        return (f"Sending is stopped: {since}.{due} Emails go out only while `drip run` "
                f"(or `drip serve --worker`) is running.")

    def sending_limited(self) -> str:
        """ "limited: next sends at 14:05 (smtp: 30/minute used up)" while a provider rate limit
        (DRIP_RATE_LIMITS) holds emails back, else "". One query over a table of a few rows."""
        from delivery.ratelimit import limited_now, limited_text

        try:
            with self.ctx.runtime.read_sessions() as db:
                items = limited_now(db, self.ctx.clock())
        except Exception:  # a page must still render
            log.exception("rate limits could not be read")
            return ""
        return limited_text(items, ZoneInfo(self.ctx.settings.clinic.timezone))

    def refuse(self, request: Request, user: StaffIdentity | None) -> Response:
        return self.render(request, "error.html", {
            "title": "Please try again",
            "detail": "This form has expired or did not come from this site, so nothing was changed. "
                      "Go back, reload the page and submit it again.",
        }, user=user, status_code=403)

    # -- checks

    def same_origin(self, request: Request) -> bool:
        """Refuse posts the browser says came from another site (the CSRF token is checked too)."""
        return same_origin(request, self.ctx.settings.base_url)

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        sid = request.session.get("sid")
        token = form.get("csrf")
        return (isinstance(sid, str) and isinstance(token, str) and self.same_origin(request)
                and self.forms.valid(sid, token))

    def refresh_clinic(self) -> None:
        """Clinic settings saved since the last request (here or by another process): rebuild the renderer."""
        if self.ctx.runtime.refresh_settings() or self.renderer is None \
                or self.renderer.clinic is not self.ctx.settings.clinic:
            old = self.renderer.clinic.brand_color if self.renderer is not None else None
            self.renderer = Renderer(self.ctx.settings.clinic, self.ctx.settings.base_url)
            if old is not None and old != self.ctx.settings.clinic.brand_color:
                from web.pages import rebrand

                rebrand(self.ctx.templates, self.ctx.settings)
                self.stylesheet = StaffStylesheet(self.ctx.templates.env)

    def who(self, request: Request) -> StaffIdentity | None:
        self.refresh_clinic()
        with self.ctx.runtime.read_sessions() as db:
            return current_staff(db, request.session, self.ctx.clock(), self.revoked)

    # -- the wrapper

    def forbidden(self, request: Request, user: StaffIdentity, perm: Perm) -> Response:
        return self.render(request, "error.html", {
            "title": "Not allowed",
            "detail": f"Your role ({user.role}) does not include this ({perm.value}). "
                      "Ask the clinic's owner if you need it.",
        }, user=user, status_code=403)

    def page(self, handler: Handler, *, perm: Perm, uploads: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint for `handler`; `perm` is required: a route without a declaration cannot be made."""
        perm = Perm(perm)
        login = perm is not Perm.PUBLIC

        async def endpoint(request: Request) -> Response:
            user = await run_in_threadpool(self.who, request)
            if login and user is None:
                if request.method not in ("GET", "HEAD"):
                    return RedirectResponse("/staff/login", status_code=303)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/staff/login?next={quote(target, safe='/')}", status_code=303)
            if login and user is not None and not allowed(user.role, perm):
                return self.forbidden(request, user, perm)
            form = None
            if request.method == "POST":
                limit = MAX_UPLOAD + FORM_OVERHEAD if uploads else FORM_OVERHEAD * 4
                length = request.headers.get("content-length", "")
                if not length.isdigit():
                    return self.render(request, "error.html", {
                        "title": "Please try again", "detail": "The form was sent without its length.",
                    }, user=user, status_code=411)
                if int(length) > limit:
                    return self.render(request, "error.html", {
                        "title": "Too large",
                        "detail": f"Uploads can be at most {MAX_UPLOAD // (1024 * 1024)} MB.",
                    }, user=user, status_code=413)
                form = await request.form(max_files=1 if uploads else 0, max_fields=MAX_FORM_FIELDS,
                                          max_part_size=1024 * 1024)
                if not self.csrf_ok(request, form):
                    await form.close()
                    return self.refuse(request, user)
            req = StaffRequest(request=request, ctx=self.ctx, staff=self, user=user, form=form)
            try:
                return await run_in_threadpool(handler, req)
            except NotFoundError as exc:
                return self.render(request, "error.html", {
                    "title": "Not found", "detail": str(exc).split(": ", 1)[-1].capitalize() + ".",
                }, user=user, status_code=404)
            finally:
                if form is not None:
                    await form.close()

        endpoint.__name__ = getattr(handler, "__name__", "endpoint")
        endpoint.permission = perm  # type: ignore[attr-defined]  # read by the route-table test
        return endpoint
