"""Public sign-up with double opt-in: `GET/POST /subscribe`, `GET/POST /confirm/{token}`.

The rules about who may change what are in subscribers/signup.py; this module is the web side.

- CSRF: there is no session, so `GET /subscribe` sets a random nonce in an HttpOnly, SameSite=Strict
  cookie (`__Host-` prefixed when the site is https, so a sibling subdomain cannot plant one) and
  puts a FormGuard token bound to that nonce in the form. A POST needs both, and they must match:
  another site can neither read the cookie nor mint a token for it without the secret key.
  Fetch metadata / Origin are checked as well (web.csrf.same_origin). Missing or wrong: 403.
- Bots: a honeypot field (`website`) hidden from people; when it is filled the request is
  answered exactly like a real one and nothing happens. A sliding-window limit per IP (and per
  address, so nobody can flood one inbox from many IPs) answers 429 with Retry-After.
- No account enumeration: every accepted POST redirects to the same "check your inbox" page,
  whether the address was new, pending, active, unsubscribed or suppressed. The email itself is
  sent in a background task after the response, and recording costs every address the same
  statements (two reads, one single-row write: subscribers/signup.py), so the answer does not take
  longer, or shorter, for a known address (measured: known/new 0.44 before, 1.04 after).
- `GET /confirm/{token}` only shows a button: mail scanners fetch every link and must not confirm
  anyone. `POST /confirm/{token}` (with a form token bound to the link) confirms. A forged,
  altered or expired token is a 400 page and changes nothing.
- The time-zone field defaults to the clinic's zone and a small inline script picks the browser's
  (Intl.DateTimeFormat().resolvedOptions().timeZone); the server validates it with zoneinfo. The
  page's Content-Security-Policy allows exactly that script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import zoneinfo
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache, partial
from typing import Any

from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from campaigns.render import Renderer
from drip.config import secret_key
from drip.errors import InputError
from drip.i18n import LANGUAGES, N_, normalize_language
from drip.models import Subscriber, SubscriberStatus
from subscribers.signup import (
    ConfirmOutcome,
    SignupOutcome,
    SignupRequest,
    check_signup,
    confirm_signup,
    request_signup,
)
from subscribers.signup_forms import form_of, known_form, signup_choice
from subscribers.tokens import InvalidToken
from web.confirm_email import send_confirmation
from web.context import WebContext, web_context
from web.csrf import FORM_MAX_AGE, FormGuard
from web.pages import page_language, render
from web.public import MAX_TOKEN_LENGTH, _same_origin, mask_email
from web.ratelimit import SlidingWindowLimiter
from web.security import CSP

HONEYPOT = "website"
MAX_FIELD = 400
PER_IP = (20, timedelta(hours=1))  # a clinic tablet in the waiting room signs up many patients
PER_ADDRESS = (3, timedelta(hours=1))  # confirmation emails to one inbox

# The only script on the page. The CSP below allows it by hash, so keep the text byte-exact.
TZ_SCRIPT = Markup(
    "(function(){var f=document.getElementById('tz');if(!f||f.hasAttribute('data-keep'))return;"
    "var z='';try{z=Intl.DateTimeFormat().resolvedOptions().timeZone||'';}catch(e){}"
    "for(var i=0;i<f.options.length;i++){if(f.options[i].value===z){f.value=z;break;}}})();"
)
_TZ_HASH = base64.b64encode(hashlib.sha256(str(TZ_SCRIPT).encode("utf-8")).digest()).decode()
FORM_CSP = f"{CSP}; script-src 'sha256-{_TZ_HASH}'"


class Signup:
    """What the sign-up routes share: the form guard, the limiters, the email renderer."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        key = secret_key(ctx.settings)
        self.forms = FormGuard(key, salt="drip.signup.form")
        self.per_ip = SlidingWindowLimiter(*PER_IP)
        self.per_address = SlidingWindowLimiter(*PER_ADDRESS)
        self._renderer = Renderer(ctx.settings.clinic, base_url=ctx.settings.base_url)
        secure = ctx.settings.base_url.startswith("https://")
        self.cookie = "__Host-drip-signup" if secure else "drip-signup"
        self.secure = secure
        self.zones = tuple(sorted(set(zone_choices()) | {ctx.settings.clinic.timezone}))  # the default must be listed


    @property
    def renderer(self) -> Renderer:
        """The confirmation email's renderer, rebuilt when the clinic settings changed (web/staff/settings.py)."""
        clinic = self.ctx.settings.clinic
        if self._renderer.clinic is not clinic and self._renderer.clinic != clinic:
            self._renderer = Renderer(clinic, base_url=self.ctx.settings.base_url)
        return self._renderer


@lru_cache(maxsize=1)
def zone_choices() -> tuple[str, ...]:
    """Region/City zones people recognise (no Etc/GMT+5 or legacy aliases), plus UTC."""
    legacy = ("Etc/", "SystemV/", "US/", "posix/", "right/", "Canada/", "Brazil/", "Mexico/", "Chile/")
    zones = {z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(legacy)}
    return tuple(sorted(zones | {"UTC"}))


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=20, max_part_size=16 * 1024)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _client_ip(request: Request) -> str:
    # Behind a proxy, set DRIP_TRUSTED_PROXIES so this is the patient's address (web/security.py).
    return request.client.host if request.client else "unknown"


# --------------------------------------------------------------------------- /subscribe


def _subscribe_page(
    request: Request,
    signup: Signup,
    nonce: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    ctx = signup.ctx
    values = values or {}
    language = _form_language(request, values)
    context: dict[str, Any] = {
        "csrf": signup.forms.issue(nonce),
        "values": {"name": values.get("name", ""), "email": values.get("email", ""),
                   "tz": values.get("tz") or ctx.settings.clinic.timezone, "consent": values.get("consent", ""),
                   "language": language},
        "keep_tz": bool(values.get("tz")),
        "errors": {"email": "", "tz": "", "consent": "", "language": "", **(errors or {})},
        "has_errors": bool(errors),
        "zones": signup.zones,
        "consent_text": consent_text(ctx.settings.clinic.consent_text, language),
        "languages": LANGUAGES,
        "form_name": _form_name(values.get("form") or request.query_params.get("form", "")),
        "honeypot": HONEYPOT,
        "tz_script": TZ_SCRIPT,
    }
    response = render(ctx.templates, request, "subscribe.html", context, status_code=status_code, private=True,
                      headers={"Content-Security-Policy": FORM_CSP}, language=language)
    response.set_cookie(signup.cookie, nonce, max_age=FORM_MAX_AGE, path="/", secure=signup.secure,
                        httponly=True, samesite="strict")
    return response


#: The default consent wording (drip.config.Clinic), marked for translation: a clinic that wrote
#: its own keeps its own words in every language (the consent record names the version shown).
DEFAULT_CONSENT = N_("I agree to receive educational emails from the clinic. "
                     "I can unsubscribe at any time with one click.")


def consent_text(text: str, language: str) -> str:
    from drip.i18n import gettext_for

    return gettext_for(language)(DEFAULT_CONSENT) if text == DEFAULT_CONSENT else text


def consent_version(version: str, language: str | None, default: str) -> str:
    """The consent wording's version as recorded: a translation is another wording ("2026-11:es")."""
    shown = language or default
    return version[:32] if shown == "en" else f"{version[:29]}:{shown}"


def _form_language(request: Request, values: dict[str, str]) -> str:
    """The sign-up page's language: the one chosen on the form, else `?lang=`, else the browser's, else the clinic's."""
    for candidate in (values.get("language"), request.query_params.get("lang")):
        try:
            code = normalize_language((candidate or "")[:20])
        except InputError:
            code = None
        if code:
            return code
    return page_language(request)


def _problem(request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None,
             language: str | None = None) -> Response:
    """`title`/`detail`: msgids (N_), translated by the page."""
    ctx = web_context(request)
    return render(ctx.templates, request, "error.html", {"title": title, "detail": detail}, status_code=status,
                  private=True, headers=headers, language=language or page_language(request))


async def subscribe_endpoint(request: Request, *, signup: Signup) -> Response:
    ctx = signup.ctx
    nonce = request.cookies.get(signup.cookie, "")
    if request.method in ("GET", "HEAD"):
        if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
            nonce = secrets.token_urlsafe(24)
        return _subscribe_page(request, signup, nonce)

    form = await _form(request)
    if not nonce or not _same_origin(ctx, request) or not signup.forms.valid(nonce, _field(form, "csrf")):
        return _problem(request, 403, N_("Please try again"),
                        N_("This form has expired or did not come from our page. Reload the page and try again."))
    wait = signup.per_ip.hit(_client_ip(request), ctx.clock())
    if wait is not None:
        return _problem(request, 429, N_("Too many sign-ups"), N_("Please wait a little and try again."),
                        headers={"Retry-After": str(wait)})
    shown = _form_language(request, {"language": _field(form, "language")})
    query = f"?lang={shown}" if shown != ctx.settings.clinic.language else ""
    sent = RedirectResponse(f"{request.app.url_path_for('subscribe_sent')}{query}", status_code=303)
    if _field(form, HONEYPOT):  # a bot: answer like a person, do nothing
        return sent

    values = {k: _field(form, k) for k in ("name", "email", "tz", "consent", "form", "language")}
    errors: dict[str, str] = {}
    req = None
    try:
        req = check_signup(values["email"], values["name"], values["tz"], values["language"])
    except InputError as exc:
        errors[exc.where or "email"] = {
            "email": N_("Please enter a valid email address."),
            "language": N_("Please choose a language from the list."),
        }.get(exc.where or "email", N_("Please choose your time zone from the list."))
        if exc.where == "language":
            values["language"] = ""
    if values["consent"] != "yes":
        errors["consent"] = N_("Please tick the box to agree to receive our emails.")
    if req is None or errors:
        return _subscribe_page(request, signup, nonce, values=values, errors=errors, status_code=400)

    if signup.per_address.hit(req.email_key, ctx.clock()) is not None:
        return sent  # the same answer: a limit hit must not reveal anything either
    outcome = await run_in_threadpool(_record, ctx, req, _client_ip(request), _form_name(values["form"]))
    if outcome.subscriber_id is not None:
        sent.background = BackgroundTask(send_confirmation, ctx.settings, signup.renderer, ctx.signer, outcome)
    return sent


def _form_name(value: str) -> str:
    """A sign-up form's name as a request gives it (`?form=` / the hidden field); checked against
    the database when the sign-up is recorded (unknown: the default form)."""
    value = value.strip()[:50]
    return value if value and all(c.isascii() and (c.isalnum() or c == "-") for c in value) else ""


def _record(ctx: WebContext, req: SignupRequest, ip: str, form: str = "") -> SignupOutcome:
    with ctx.runtime.sessions.begin() as s:
        req = replace(req, form=known_form(s, form.lower()))
        clinic = ctx.settings.clinic
        version = consent_version(clinic.consent_version, req.language, clinic.language)
        return request_signup(s, req, now=ctx.clock(), ip=ip, consent_version=version)


async def subscribe_sent(request: Request) -> Response:
    # The sign-up's language travels in the redirect (?lang=): the page knows no patient.
    try:
        language = normalize_language(request.query_params.get("lang", "")[:20]) or page_language(request)
    except InputError:
        language = page_language(request)
    return render(web_context(request).templates, request, "subscribe_sent.html", private=True, language=language)


# --------------------------------------------------------------------------- /confirm/{token}


def _invalid(request: Request, reason: str, language: str | None = None) -> Response:
    ctx = web_context(request)
    return render(ctx.templates, request, "confirm_invalid.html", {"reason": reason}, status_code=400, private=True,
                  language=language or page_language(request))


def _pending_view(ctx: WebContext, subscriber_id: int) -> dict[str, Any] | None:
    with ctx.runtime.read_sessions() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None:
            return None
        # The page promises emails only if confirming starts a published campaign for this form.
        starts = (sub.status == SubscriberStatus.PENDING.value
                  and signup_choice(s, ctx.settings, form_of(sub.consent_source)).starts_emails)
        return {"masked_email": mask_email(sub.email), "status": sub.status, "starts_emails": starts,
                "language": sub.language}


def _confirm(ctx: WebContext, subscriber_id: int) -> ConfirmOutcome:
    with ctx.runtime.sessions.begin() as s:
        return confirm_signup(s, subscriber_id, now=ctx.clock(), settings=ctx.settings)


async def confirm_endpoint(request: Request, *, signup: Signup) -> Response:
    ctx = signup.ctx
    token = request.path_params["token"]
    try:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("this link is not valid")
        claims = ctx.signer.read_confirm(token)
    except InvalidToken as exc:
        reason = N_("It has expired.") if "expired" in str(exc) else N_("It may have been copied incompletely or changed.")
        return _invalid(request, reason)

    if request.method in ("GET", "HEAD"):
        view = await run_in_threadpool(_pending_view, ctx, claims.subscriber_id)
        if view is None:
            return _invalid(request, N_("We have no sign-up for it any more."))
        language = page_language(request, view.pop("language"))
        pending = view["status"] == SubscriberStatus.PENDING.value
        context = {"token": token, "pending": pending, "csrf": signup.forms.issue(token) if pending else "", **view}
        return render(ctx.templates, request, "confirm.html", context, private=True, language=language)

    form = await _form(request)
    if not _same_origin(ctx, request) or not signup.forms.valid(token, _field(form, "csrf")):
        view = await run_in_threadpool(_pending_view, ctx, claims.subscriber_id)
        return _problem(request, 403, N_("Please try again"),
                        N_("This page has expired or the request did not come from it. Open the link in the email again."),
                        language=page_language(request, view["language"] if view else None))
    outcome = await run_in_threadpool(_confirm, ctx, claims.subscriber_id)
    if outcome.state == "gone":
        return _invalid(request, N_("We have no sign-up for it any more."))
    context = {"state": outcome.state, "masked_email": mask_email(outcome.email), "enrolled_in": outcome.enrolled_in}
    return render(ctx.templates, request, "confirm_done.html", context, private=True,
                  language=page_language(request, outcome.language))


def routes(ctx: WebContext) -> list[BaseRoute]:
    signup = Signup(ctx)
    return [
        Route("/subscribe", partial(subscribe_endpoint, signup=signup), methods=["GET", "POST"], name="subscribe"),
        Route("/subscribe/check-your-inbox", subscribe_sent, methods=["GET"], name="subscribe_sent"),
        Route("/confirm/{token}", partial(confirm_endpoint, signup=signup), methods=["GET", "POST"], name="confirm"),
    ]
