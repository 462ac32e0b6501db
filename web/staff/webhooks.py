"""Webhooks page: endpoints (add, rotate the secret, disable/enable) and the delivery log with replay.

Each change is audited (`webhook.add`, `.rotate`, `.disable`, `.enable`, `.replay`): an endpoint
is where patients' events go. The URL is logged without its query or user info, never a secret.

A new or rotated secret is shown once, in the page that answers the POST (not in a flash: that
would keep it in the session cookie). Private and loopback URLs are
refused here unless DRIP_WEBHOOK_ALLOW_PRIVATE is set (webhooks/targets.py).
"""

from __future__ import annotations

from starlette.responses import Response

from drip.audit import url_for_log
from drip.errors import InputError
from web.staff.base import StaffRequest
from webhooks.endpoints import (
    add_endpoint, counts_by_status, delivery_log, get_endpoint, list_endpoints, replay, rotate_secret, set_active,
)
from webhooks.outbox import TYPES

STATUSES = ("pending", "sending", "delivered", "failed")


def _page(req: StaffRequest, *, error: str = "", secret: tuple[int, str] | None = None,
          status_code: int = 200) -> Response:
    status = req.query("status") or None
    if status not in STATUSES:
        status = None
    with req.ctx.runtime.read_sessions() as db:
        endpoints = [(ep, counts_by_status(db, ep.id)) for ep in list_endpoints(db)]
        log = delivery_log(db, status=status, limit=100)
        return req.render("webhooks.html", {
            "nav": "settings", "endpoints": endpoints, "log": log, "types": TYPES, "error": error,
            "secret": secret, "status": status, "statuses": STATUSES,
            "allow_private": req.ctx.settings.webhook_allow_private, "now": req.now,
        }, status_code=status_code)


def webhooks_page(req: StaffRequest) -> Response:
    return _page(req)


def webhook_add(req: StaffRequest) -> Response:
    url = req.field("url")
    chosen = [v for v in req.form.getlist("events") if isinstance(v, str)] if req.form is not None else []
    try:
        with req.ctx.runtime.sessions.begin() as db:
            ep = add_endpoint(db, url, chosen, req.now,
                              allow_private=req.ctx.settings.webhook_allow_private,
                              description=req.field("description"))
            shown = (ep.id, ep.secret)
            req.audit(db, "webhook.add", f"webhook {ep.id}", after={
                "url": url_for_log(ep.url), "events": list(ep.events) or "all", "description": ep.description})
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    return _page(req, secret=shown)


def _endpoint_id(req: StaffRequest) -> int:
    return int(req.request.path_params["id"])


def webhook_rotate(req: StaffRequest) -> Response:
    try:
        with req.ctx.runtime.sessions.begin() as db:
            ep = get_endpoint(db, _endpoint_id(req))
            shown = (ep.id, rotate_secret(db, ep, req.now))
            req.audit(db, "webhook.rotate", f"webhook {ep.id}", after={"old_secret_until": ep.previous_until})
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    return _page(req, secret=shown)


def webhook_active(req: StaffRequest) -> Response:
    active = req.field("active") == "1"
    try:
        with req.ctx.runtime.sessions.begin() as db:
            ep = get_endpoint(db, _endpoint_id(req))
            was = ep.active
            set_active(db, ep, active)
            if was != active:
                req.audit(db, "webhook.enable" if active else "webhook.disable", f"webhook {ep.id}",
                          before={"active": was}, after={"active": active})
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    req.flash(f"Webhook {_endpoint_id(req)} {'enabled' if active else 'disabled'}.", "success")
    return req.redirect("staff:webhooks")


def webhook_replay(req: StaffRequest) -> Response:
    did = int(req.request.path_params["delivery"])
    try:
        with req.ctx.runtime.sessions.begin() as db:
            row = replay(db, did, req.now)
            req.audit(db, "webhook.replay", f"webhook delivery {did}", after={"endpoint": row.endpoint_id})
    except InputError as exc:
        return _page(req, error=str(exc).split(": ", 1)[-1], status_code=400)
    req.flash(f"Delivery {did} is due again; the worker posts it within seconds.", "success")
    return req.redirect("staff:webhooks")
