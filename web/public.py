"""Public patient pages: unsubscribe (incl. RFC 8058 one-click) and email preferences.

Authentication is the signed token in the URL (subscribers/tokens.py): it reaches only the
inbox it was mailed to. There is no login.

- `GET /u/{token}` shows a confirmation page and changes NOTHING: mail scanners and link
  previewers fetch every link in an email, and must not unsubscribe anyone.
- `POST /u/{token}` with body `List-Unsubscribe=One-Click` is RFC 8058 one-click, sent by the
  mail client's own "Unsubscribe" button, with no page and no CSRF token possible (the token
  in the URL is the authentication). It unsubscribes the address from ALL email: the mail client
  tells the patient "you will not get email from this sender", so that is what we honour.
  With `scope=campaign|all` (the confirmation page's buttons) it does that scope. These forms
  carry no CSRF token on purpose: anyone who can forge them already holds the token and could
  send the one-click POST instead, and unsubscribing is the safe direction.
- `GET/POST /preferences/{token}`: pause/resume, choose lists, resubscribe. These POSTs can
  *start* mail again, so they need a CSRF token: a hidden field signed with the secret key and
  bound to this link's token (web/csrf.py), plus a same-origin check (Origin, Sec-Fetch-Site).

Invalid, altered, expired or wrong-purpose tokens get a 400 page and change nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from drip.errors import InputError
from drip.models import Campaign, Subscriber, SubscriberStatus
from subscribers.tokens import InvalidToken, LinkClaims
from subscribers.unsubscribe import (
    PreferenceError,
    can_resubscribe,
    is_opted_out,
    public_lists,
    resubscribe,
    set_preferences,
    unsubscribe,
)
from web.context import WebContext, web_context
from web.csrf import same_origin
from web.pages import render

MAX_TOKEN_LENGTH = 512
MAX_FORM_FIELDS = 200  # one per list checkbox, plus a few


def mask_email(address: str) -> str:
    """a***@example.org: enough for the patient to recognise, little for a forwarded link to leak."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def _claims(ctx: WebContext, token: str) -> LinkClaims:
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("this link is not valid")
    return ctx.signer.read_unsubscribe(token)


def _invalid(ctx: WebContext, request: Request, exc: InvalidToken) -> Response:
    reason = "It has expired." if "expired" in str(exc) else "It may have been copied incompletely or changed."
    return render(ctx.templates, request, "invalid_link.html", {"reason": reason}, status_code=400, private=True)


def _error(ctx: WebContext, request: Request, status: int, title: str, detail: str) -> Response:
    return render(ctx.templates, request, "error.html", {"title": title, "detail": detail}, status_code=status,
                  private=True)


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=64 * 1024)


# -- unsubscribe

def _unsubscribe_view(ctx: WebContext, claims: LinkClaims) -> dict[str, Any]:
    """Read-only: everything the confirmation page shows."""
    with ctx.runtime.read_sessions() as s:
        sub = s.get(Subscriber, claims.subscriber_id)
        if sub is None:
            return {"found": False}
        campaign = s.get(Campaign, claims.campaign_id) if claims.campaign_id is not None else None
        return {
            "found": True,
            "masked_email": mask_email(sub.email),
            "already_all": sub.status == SubscriberStatus.UNSUBSCRIBED.value,
            "campaign_title": campaign.title if campaign else None,
            "offer_campaign": campaign is not None and not is_opted_out(s, sub.id, campaign.id),
        }


def _do_unsubscribe(ctx: WebContext, claims: LinkClaims, scope: str, source: str) -> dict[str, Any]:
    with ctx.runtime.sessions.begin() as s:
        result = unsubscribe(s, claims, scope, now=ctx.clock(), source=source)  # type: ignore[arg-type]
        sub = s.get(Subscriber, claims.subscriber_id)
        return {
            "found": result.found,
            "scope": result.scope,
            "campaign_title": result.campaign_title,
            "masked_email": mask_email(sub.email) if sub else "",
        }


async def unsubscribe_endpoint(request: Request) -> Response:
    ctx = web_context(request)
    token = request.path_params["token"]
    try:
        claims = _claims(ctx, token)
    except InvalidToken as exc:
        return _invalid(ctx, request, exc)

    if request.method in ("GET", "HEAD"):
        view = await run_in_threadpool(_unsubscribe_view, ctx, claims)
        context = {"token": token, "masked_email": "", "already_all": False, "campaign_title": None,
                   "offer_campaign": False, **view}
        return render(ctx.templates, request, "unsubscribe.html", context, private=True)

    form = await _form(request)
    if str(form.get("List-Unsubscribe", "")).strip().lower() == "one-click":
        scope, source = "all", "one-click"
    elif form.get("scope") in ("campaign", "all"):
        scope, source = str(form["scope"]), "unsubscribe-page"
    else:
        return _error(ctx, request, 400, "Please choose an option",
                      "Go back to the previous page and press one of the unsubscribe buttons.")
    if scope == "campaign" and claims.campaign_id is None:
        return _error(ctx, request, 400, "Please choose an option",
                      "This email is not part of a series; you can unsubscribe from all emails instead.")
    try:
        done = await run_in_threadpool(_do_unsubscribe, ctx, claims, scope, source)
    except InputError as exc:
        return _error(ctx, request, 400, "Please choose an option", str(exc))
    return render(ctx.templates, request, "unsubscribed.html", {"token": token, **done}, private=True)


# -- preferences

def _same_origin(ctx: WebContext, request: Request) -> bool:
    return same_origin(request, ctx.settings.base_url)


def _preferences_view(ctx: WebContext, claims: LinkClaims, token: str) -> dict[str, Any]:
    with ctx.runtime.read_sessions() as s:
        sub = s.get(Subscriber, claims.subscriber_id)
        if sub is None:
            return {"found": False}
        return {
            "found": True,
            "masked_email": mask_email(sub.email),
            "status": sub.status,
            "can_resubscribe": can_resubscribe(s, sub),
            "lists": public_lists(s, sub),
            "csrf": ctx.forms.issue(token),
        }


def _list_ids(form: FormData) -> list[int] | None:
    ids = []
    for value in form.getlist("list"):
        if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
            return None
        ids.append(int(value))
    return ids


def _apply_preferences(ctx: WebContext, claims: LinkClaims, action: str, lists: list[int]) -> str:
    """Returns the message to show. Raises PreferenceError when the status does not allow it."""
    with ctx.runtime.sessions.begin() as s:
        sub = s.get(Subscriber, claims.subscriber_id)
        if sub is None:
            return ""
        now = ctx.clock()
        if action == "pause":
            set_preferences(s, sub, paused=True, now=now)
            return "Your preferences are saved."
        if action == "resume":
            set_preferences(s, sub, paused=False, now=now)
            return "Welcome back: emails are on again."
        if action == "resubscribe":
            resubscribe(s, sub, now=now, source="preferences-page")
            return "You're subscribed again."
        change = set_preferences(s, sub, lists=lists, now=now)
        return "Your choices are saved." if change.changed else "No changes: your choices were already saved."


async def preferences_endpoint(request: Request) -> Response:
    ctx = web_context(request)
    token = request.path_params["token"]
    try:
        claims = _claims(ctx, token)
    except InvalidToken as exc:
        return _invalid(ctx, request, exc)

    message = error = None
    status_code = 200
    if request.method == "POST":
        form = await _form(request)
        if not _same_origin(ctx, request) or not ctx.forms.valid(token, _str(form.get("csrf"))):
            return _error(ctx, request, 403, "Please try again",
                          "This form has expired or did not come from our page. Reload the page and try again.")
        action = form.get("action")
        lists = _list_ids(form)
        if action not in ("pause", "resume", "resubscribe", "lists") or lists is None:
            return _error(ctx, request, 400, "Please try again", "That choice was not understood.")
        try:
            message = await run_in_threadpool(_apply_preferences, ctx, claims, str(action), lists)
        except PreferenceError as exc:
            error = str(exc).split(": ", 1)[-1]
            status_code = 409

    view = await run_in_threadpool(_preferences_view, ctx, claims, token)
    context = {"token": token, "message": message, "error": error, "masked_email": "", "status": "",
               "can_resubscribe": False, "lists": [], "csrf": "", **view}
    return render(ctx.templates, request, "preferences.html", context, status_code=status_code, private=True)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def routes(ctx: WebContext) -> list[BaseRoute]:
    return [
        Route("/u/{token}", unsubscribe_endpoint, methods=["GET", "POST"], name="unsubscribe"),
        Route("/preferences/{token}", preferences_endpoint, methods=["GET", "POST"], name="preferences"),
    ]
