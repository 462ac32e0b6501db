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
from drip.i18n import LANGUAGES, N_, normalize_language
from campaigns.service import title_in
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
from web.pages import page_language, render

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
    reason = N_("It has expired.") if "expired" in str(exc) else N_("It may have been copied incompletely or changed.")
    return render(ctx.templates, request, "invalid_link.html", {"reason": reason}, status_code=400, private=True,
                  language=page_language(request))


def _error(ctx: WebContext, request: Request, status: int, title: str, detail: str,
           language: str | None = None) -> Response:
    """`title` and `detail` are msgids (marked with N_): the page translates them."""
    return render(ctx.templates, request, "error.html", {"title": title, "detail": detail}, status_code=status,
                  private=True, language=language or page_language(request))


def _stored_language(ctx: WebContext, claims: LinkClaims) -> str | None:
    with ctx.runtime.read_sessions() as s:
        sub = s.get(Subscriber, claims.subscriber_id)
        return sub.language if sub is not None else None


async def _patient_error(ctx: WebContext, request: Request, claims: LinkClaims, status: int, title: str,
                         detail: str) -> Response:
    """An error page behind a valid link: in the patient's own language."""
    stored = await run_in_threadpool(_stored_language, ctx, claims)
    return _error(ctx, request, status, title, detail, page_language(request, stored))


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
            "campaign_title": title_in(campaign, sub.language) if campaign else None,
            "offer_campaign": campaign is not None and not is_opted_out(s, sub.id, campaign.id),
            "language": sub.language,
        }


def _title(s, claims: LinkClaims, sub: Subscriber | None, title: str | None) -> str | None:
    """The series' title in the patient's language (when staff uploaded the article in it)."""
    campaign = s.get(Campaign, claims.campaign_id) if claims.campaign_id is not None and title else None
    return title_in(campaign, sub.language if sub else None) if campaign is not None else title


def _do_unsubscribe(ctx: WebContext, claims: LinkClaims, scope: str, source: str) -> dict[str, Any]:
    with ctx.runtime.sessions.begin() as s:
        result = unsubscribe(s, claims, scope, now=ctx.clock(), source=source)  # type: ignore[arg-type]
        sub = s.get(Subscriber, claims.subscriber_id)
        return {
            "found": result.found,
            "scope": result.scope,
            "campaign_title": _title(s, claims, sub, result.campaign_title),
            "masked_email": mask_email(sub.email) if sub else "",
            "language": sub.language if sub else None,
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
        language = page_language(request, context.pop("language", None))
        return render(ctx.templates, request, "unsubscribe.html", context, private=True, language=language)

    form = await _form(request)
    if str(form.get("List-Unsubscribe", "")).strip().lower() == "one-click":
        scope, source = "all", "one-click"
    elif form.get("scope") in ("campaign", "all"):
        scope, source = str(form["scope"]), "unsubscribe-page"
    else:
        return await _patient_error(ctx, request, claims, 400, N_("Please choose an option"),
                      N_("Go back to the previous page and press one of the unsubscribe buttons."))
    if scope == "campaign" and claims.campaign_id is None:
        return await _patient_error(ctx, request, claims, 400, N_("Please choose an option"),
                      N_("This email is not part of a series; you can unsubscribe from all emails instead."))
    try:
        done = await run_in_threadpool(_do_unsubscribe, ctx, claims, scope, source)
    except InputError:
        return await _patient_error(ctx, request, claims, 400, N_("Please choose an option"),
                      N_("This email is not part of a series; you can unsubscribe from all emails instead."))
    language = page_language(request, done.pop("language", None))
    return render(ctx.templates, request, "unsubscribed.html", {"token": token, **done}, private=True,
                  language=language)


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
            "language": sub.language,
        }


def _list_ids(form: FormData) -> list[int] | None:
    ids = []
    for value in form.getlist("list"):
        if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
            return None
        ids.append(int(value))
    return ids


def _apply_preferences(ctx: WebContext, claims: LinkClaims, action: str, lists: list[int],
                       language: str | None = None) -> str:
    """Returns the message to show (a msgid). Raises PreferenceError when the status does not allow it."""
    with ctx.runtime.sessions.begin() as s:
        sub = s.get(Subscriber, claims.subscriber_id)
        if sub is None:
            return ""
        now = ctx.clock()
        if action == "pause":
            set_preferences(s, sub, paused=True, now=now)
            return N_("Your preferences are saved.")
        if action == "resume":
            set_preferences(s, sub, paused=False, now=now)
            return N_("Welcome back: emails are on again.")
        if action == "resubscribe":
            resubscribe(s, sub, now=now, source="preferences-page")
            return N_("You're subscribed again.")
        if action == "language":
            if sub.status not in (SubscriberStatus.ACTIVE.value, SubscriberStatus.PAUSED.value):
                raise PreferenceError(f"this address is {sub.status}; preferences cannot be changed", where="status")
            if sub.language == language:
                return N_("No changes: your choices were already saved.")
            sub.language, sub.updated_at = language, now
            return N_("Your language is saved.")
        change = set_preferences(s, sub, lists=lists, now=now)
        return N_("Your choices are saved.") if change.changed else N_("No changes: your choices were already saved.")


def _preference_error(exc: PreferenceError) -> str:
    """The patient's message (a msgid) for a change their status does not allow."""
    if "contact the clinic" in str(exc):
        return N_("This address can't receive email at the moment; please contact the clinic to receive email again.")
    return N_("Preferences can't be changed for this address at the moment.")


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
            return await _patient_error(ctx, request, claims, 403, N_("Please try again"),
                          N_("This form has expired or did not come from our page. Reload the page and try again."))
        action = form.get("action")
        lists = _list_ids(form)
        language = None
        if action == "language":
            try:
                language = normalize_language(_str(form.get("language")))
            except InputError:
                language = None
            if language is None:
                return await _patient_error(ctx, request, claims, 400, N_("Please try again"), N_("That choice was not understood."))
        if action not in ("pause", "resume", "resubscribe", "lists", "language") or lists is None:
            return await _patient_error(ctx, request, claims, 400, N_("Please try again"), N_("That choice was not understood."))
        try:
            message = await run_in_threadpool(_apply_preferences, ctx, claims, str(action), lists, language)
        except PreferenceError as exc:
            error = _preference_error(exc)
            status_code = 409

    view = await run_in_threadpool(_preferences_view, ctx, claims, token)
    context = {"token": token, "message": message, "error": error, "masked_email": "", "status": "",
               "can_resubscribe": False, "lists": [], "csrf": "", "languages": LANGUAGES, **view}
    language = page_language(request, context.pop("language", None))
    return render(ctx.templates, request, "preferences.html", context, status_code=status_code, private=True,
                  language=language)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def routes(ctx: WebContext) -> list[BaseRoute]:
    return [
        Route("/u/{token}", unsubscribe_endpoint, methods=["GET", "POST"], name="unsubscribe"),
        Route("/preferences/{token}", preferences_endpoint, methods=["GET", "POST"], name="preferences"),
    ]
