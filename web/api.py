"""The REST API for machines (the clinic's booking system): FastAPI, mounted at /api/v1.

- Every endpoint needs `Authorization: Bearer <token>` (tokens from `drip api-token create`);
  a missing, unknown or revoked token is a 401 with `WWW-Authenticate: Bearer`.
- Every endpoint declares the scope it needs (`needs(...)`, drip/permissions.py SCOPES); a token
  without it gets 403 and nothing happens. Tokens made before scopes existed hold every scope.
- Every write is recorded in the audit log (drip/audit.py) in its own transaction, with the
  token's name and the caller's IP.
- Plain `def` endpoints: FastAPI runs them in its thread pool, where the synchronous SQLAlchemy
  session lives; each request opens its own session and transaction, which commits only if the
  whole request succeeded (a 4xx after a partial write leaves nothing behind).
- Errors: request bodies and parameters that do not fit the schema are 422 with the field (FastAPI);
  the domain's own checks (address syntax, IANA zone, tag names) are 422 in the same shape; an
  unknown subscriber or campaign is 404; a state conflict (already enrolled, unsubscribed, campaign
  not published) is 409. Bounds in web/api_models.py keep every input away from a 500.
- `POST /subscribers` is idempotent: the same address again is a 200 with the stored subscriber
  (new tags added, a given name/zone updated) and, with `enroll`, the enrollment that already runs.
  API subscribers are `active` at once: the clinic collected consent (it says so in `consent`).
  A web sign-up still waiting for its confirmation email (`pending`) becomes active when the
  clinic posts it with a `consent` record; without one it stays pending.
- `PATCH /subscribers/{id}` never undoes an unsubscribe or a suppression (409): only the patient's
  own opt-in does (the preference page, from a link in an email they received).
- `DELETE /subscribers/{id}` erases the patient's data and keeps the suppression entry
  (subscribers/erasure.py says exactly what).

`/api/v1/openapi.json` is the contract (tests fuzz the API against it with schemathesis);
`/api/v1/docs` is Swagger UI from drip's own copy of its files (fastapi-offline), under a strict CSP.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Iterator

import fastapi_offline
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased
from starlette.routing import BaseRoute, Mount

from campaigns.enrollment import NotEnrollable, enroll, enroll_many
from campaigns.exits import record_event, stop_in_campaign
from campaigns.service import get_campaign, list_campaigns
from drip.i18n import normalize_language
from drip.errors import InputError, NotFoundError
from drip.models import (
    Broadcast,
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Step,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    Tag,
)
from subscribers.attributes import definitions, set_attributes, typed_values
from subscribers.erasure import erase_subscriber
from subscribers.service import ErasedAddress
from subscribers.service import (
    clean_name,
    clean_tag,
    count_subscribers,
    list_subscribers,
    tag_subscribers,
    tags_of,
    untag_subscribers,
    upsert_subscriber,
    validate_zone,
)
from subscribers.suppression import is_suppressed
from subscribers.tokens import LinkClaims
from subscribers.unsubscribe import PreferenceError, set_preferences, unsubscribe
from web.api_models import (
    MAX_ID,
    MAX_OFFSET,
    AttributeOut,
    BulkEnrollmentIn,
    BulkEnrollmentOut,
    CampaignOut,
    Consent,
    DeliveryPage,
    DeliveryStatusName,
    EnrollmentIn,
    EnrollmentOut,
    ErrorOut,
    EventIn,
    EventOut,
    SearchText,
    Slug,
    StopIn,
    SubscriberCreated,
    SubscriberIn,
    SubscriberOut,
    SubscriberPage,
    SubscriberPatch,
    SubscriberStatusName,
    TagName,
)
from drip.audit import Actor, record
from web.api_tokens import TokenInfo, find_token, touch_token
from web.context import WebContext

log = logging.getLogger("drip.web.api")

API_PREFIX = "/api/v1"
_CHALLENGE = 'Bearer realm="drip"'
_ERRORS = {401: {"model": ErrorOut, "description": "Missing, unknown or revoked token"},
           403: {"model": ErrorOut, "description": "The token lacks the scope this endpoint needs"},
           404: {"model": ErrorOut, "description": "Unknown subscriber or campaign"},
           409: {"model": ErrorOut, "description": "Not possible in the current state"}}

bearer = HTTPBearer(auto_error=False, description="A token from `drip api-token create NAME`.")


# --------------------------------------------------------------------------- plumbing


def api_context(request: Request) -> WebContext:
    return request.app.state.web


def require_token(request: Request, background: BackgroundTasks,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> TokenInfo:
    """Every endpoint depends on this: 401 unless the bearer token is live."""
    if credentials is None:
        raise HTTPException(401, "missing API token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": _CHALLENGE})
    ctx = api_context(request)
    now = ctx.clock()
    # A read session: checking a token must not wait for SQLite's writer (a long import).
    with ctx.runtime.read_sessions() as s:
        info, stale = find_token(s, credentials.credentials, now)
    if info is None:
        raise HTTPException(401, "invalid or revoked API token",
                            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'})
    if stale:  # recorded after the response is sent: a busy database delays the record, not the call
        background.add_task(_record_use, ctx, info.id, now)
    return info


def needs(scope: str):  # -> a FastAPI dependency
    """The dependency an endpoint declares: 403 unless the token holds `scope`."""
    from drip.permissions import SCOPES

    if scope not in SCOPES:
        raise ValueError(f"unknown API scope {scope!r}")

    def check(token: Annotated[TokenInfo, Depends(require_token)]) -> TokenInfo:
        if not token.has(scope):
            raise HTTPException(403, f"this API token does not have the scope {scope!r} "
                                     f"(`drip api-token create NAME --scope {scope}`)")
        return token

    check.scope = scope  # type: ignore[attr-defined]  # read by the route-table test
    return Depends(check)


def api_actor(request: Request, token: Annotated[TokenInfo, Depends(require_token)]) -> Actor:
    client = request.client
    return Actor("token", token.id, token.name, client.host if client else "")


def _record_use(ctx: WebContext, token_id: int, now: datetime) -> None:
    try:
        with ctx.runtime.sessions.begin() as s:
            touch_token(s, token_id, now)
    except OperationalError as exc:  # locked past the busy timeout: the next call records it
        log.warning("API token %d: last use not recorded (%s)", token_id, str(exc).splitlines()[0][:200])


Ctx = Annotated[WebContext, Depends(api_context)]
Who = Annotated[Actor, Depends(api_actor)]
Token = Annotated[TokenInfo, Depends(require_token)]
SubscriberId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _message(exc: InputError) -> str:
    text = str(exc)
    prefix = f"{exc.where}: " if exc.where else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


@contextmanager
def domain_errors(location: str = "body", fields: dict[str, str] | None = None) -> Iterator[None]:
    """The domain's exceptions as HTTP answers. `fields` renames a CLI-flavoured `where` ("--campaign")."""
    try:
        yield
    except NotFoundError as exc:
        raise HTTPException(404, _message(exc)) from exc
    except (NotEnrollable, PreferenceError, ErasedAddress) as exc:
        raise HTTPException(409, _message(exc)) from exc
    except InputError as exc:
        where = (exc.where or "").lstrip("-")
        field = (fields or {}).get(exc.where or "", where)
        raise HTTPException(422, [{"loc": [location, field], "msg": _message(exc), "type": "value_error"}]) from exc


def _subscriber(s: Session, subscriber_id: int) -> Subscriber:
    sub = s.get(Subscriber, subscriber_id)
    if sub is None:
        raise HTTPException(404, f"no subscriber {subscriber_id}")
    return sub


def _campaign(s: Session, slug: str) -> Campaign:
    """The campaign with this slug; a 404 that says where the slugs are (a fresh install has none)."""
    campaign = s.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        raise HTTPException(404, f"no campaign {slug!r}: GET {API_PREFIX}/campaigns lists the slugs; staff create "
                                 "one by uploading an article on /staff/campaigns or with "
                                 f"`drip import FILE --campaign {slug} --publish`")
    return campaign


def _subscriber_out(sub: Subscriber, tags: list[str], attributes: dict | None = None) -> dict:
    return {
        "id": sub.id, "email": sub.email, "name": sub.name, "tz": sub.tz, "language": sub.language,
        "status": sub.status, "tags": tags,
        "attributes": attributes or {},
        "consent": Consent(source=sub.consent_source, at=sub.consent_at, text_version=sub.consent_text_version,
                           ip=sub.consent_ip),
        "created_at": sub.created_at, "updated_at": sub.updated_at,
    }


def _enrollment_out(s: Session, enrollment: Enrollment, slug: str) -> EnrollmentOut:
    count, next_due = s.execute(
        select(func.count(Delivery.id), func.min(Delivery.due_at)).where(
            Delivery.enrollment_id == enrollment.id, Delivery.status == DeliveryStatus.SCHEDULED.value)
    ).one()
    return EnrollmentOut(id=enrollment.id, campaign=slug, state=enrollment.state, enrolled_at=enrollment.enrolled_at,
                         scheduled=count, next_due_at=next_due, exited_at=enrollment.exited_at,
                         exit_reason=enrollment.exit_reason or "")


def _active_enrollment(s: Session, subscriber_id: int, campaign_id: int) -> Enrollment | None:
    return s.scalar(select(Enrollment).where(
        Enrollment.subscriber_id == subscriber_id, Enrollment.campaign_id == campaign_id,
        Enrollment.state == EnrollmentState.ACTIVE.value))


# --------------------------------------------------------------------------- subscribers

router = APIRouter(dependencies=[Depends(require_token)], responses={401: _ERRORS[401], 403: _ERRORS[403]})
READ, SUBSCRIBERS_WRITE, ERASE = needs("read"), needs("subscribers:write"), needs("subscribers:erase")
ENROLLMENTS_WRITE, EVENTS_WRITE = needs("enrollments:write"), needs("events:write")


@router.post("/subscribers", response_model=SubscriberCreated, status_code=201, tags=["subscribers"],
             responses={200: {"model": SubscriberCreated, "description": "The address was already there"},
                        404: _ERRORS[404], 409: _ERRORS[409]}, dependencies=[SUBSCRIBERS_WRITE])
def create_subscriber(body: SubscriberIn, ctx: Ctx, response: Response, who: Who, token: Token) -> dict:
    """Add a patient (or update the one with this address), optionally enrolling them in a campaign."""
    now = ctx.clock()
    clinic_tz = ctx.settings.clinic.timezone
    with ctx.runtime.sessions.begin() as s, domain_errors(fields={"--campaign": "enroll"}):
        if body.enroll and not token.has("enrollments:write"):
            raise HTTPException(403, "this API token does not have the scope 'enrollments:write' needed for `enroll`")
        campaign = _campaign(s, body.enroll) if body.enroll else None  # 404 before anything is written
        source = body.consent.source if body.consent else "api"
        language = normalize_language(body.language)  # a bad value is a 422 before anything is written
        sub, created = upsert_subscriber(s, body.email, body.name or "", body.tz, body.tags, source, now,
                                         clinic_tz=clinic_tz)
        if language is not None and sub.language != language:
            sub.language, sub.updated_at = language, now
        if body.consent and (created or sub.status == SubscriberStatus.PENDING.value):
            # The clinic vouches for consent: record it; a pending web sign-up needs no more confirming.
            sub.status = SubscriberStatus.ACTIVE.value
            sub.consent_source, sub.consent_at = body.consent.source, now
            sub.consent_text_version, sub.consent_ip = body.consent.text_version, body.consent.ip
            sub.updated_at = now
        if body.attributes:
            set_attributes(s, sub.id, body.attributes, now, clinic_tz=ctx.settings.clinic.timezone)
        enrollment_out = None
        if campaign is not None:
            enrollment = _active_enrollment(s, sub.id, campaign.id)  # a retry of the same call
            if enrollment is None:
                enrollment = enroll(s, sub, campaign, now, clinic_tz=clinic_tz, source="api")
            enrollment_out = _enrollment_out(s, enrollment, campaign.slug)
        s.flush()
        record(s, who, "api.subscriber.create" if created else "api.subscriber.update", f"subscriber {sub.id}",
               after={"enroll": campaign.slug} if campaign is not None else None, at=now)
        out = _subscriber_out(sub, tags_of(s, [sub.id]).get(sub.id, []), typed_values(s, [sub.id]).get(sub.id))
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"{API_PREFIX}/subscribers/{out['id']}"
    return {**out, "created": created, "enrollment": enrollment_out}


@router.get("/subscribers", response_model=SubscriberPage, tags=["subscribers"], responses={404: _ERRORS[404]}, dependencies=[READ])
def get_subscribers(
    ctx: Ctx,
    search: Annotated[SearchText | None, Query(description="Part of the address or name.")] = None,
    status: SubscriberStatusName | None = None,
    tag: Annotated[TagName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Only ids above this: the previous page's "
                                       "`next_after`. Costs the same on every page, where a deep offset reads "
                                       "every row before it.")] = None,
) -> dict:
    """Subscribers in id order, filtered by a substring of address or name, a status, a tag."""
    with ctx.runtime.read_sessions() as s, domain_errors("query", {"--tag": "tag"}):
        subs = list_subscribers(s, search=search, tag=tag, status=status, limit=limit, offset=offset, after=after)
        total = count_subscribers(s, search=search, tag=tag, status=status)
        tags = tags_of(s, [x.id for x in subs])
        attrs = typed_values(s, [x.id for x in subs])
        items = [_subscriber_out(x, tags.get(x.id, []), attrs.get(x.id)) for x in subs]
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_after": subs[-1].id if len(subs) == limit else None}


@router.get("/subscribers/{subscriber_id}", response_model=SubscriberOut, tags=["subscribers"],
            responses={404: _ERRORS[404]}, dependencies=[READ])
def get_one_subscriber(subscriber_id: SubscriberId, ctx: Ctx) -> dict:
    with ctx.runtime.read_sessions() as s:
        sub = _subscriber(s, subscriber_id)
        return _subscriber_out(sub, tags_of(s, [sub.id]).get(sub.id, []), typed_values(s, [sub.id]).get(sub.id))


@router.patch("/subscribers/{subscriber_id}", response_model=SubscriberOut, tags=["subscribers"],
              responses={404: _ERRORS[404], 409: _ERRORS[409]}, dependencies=[SUBSCRIBERS_WRITE])
def patch_subscriber(subscriber_id: SubscriberId, body: SubscriberPatch, ctx: Ctx, who: Who) -> dict:
    """Change name, zone, tags or status. The address is the patient's identity and cannot change."""
    now = ctx.clock()
    with ctx.runtime.sessions.begin() as s, domain_errors():
        sub = _subscriber(s, subscriber_id)
        status_before = sub.status
        if body.name is not None:
            sub.name = clean_name(body.name)
        if body.tz is not None:
            sub.tz = validate_zone(body.tz)
        if body.language is not None:
            sub.language = normalize_language(body.language)
        remove = sorted({clean_tag(t) for t in body.remove_tags})
        add = [clean_tag(t) for t in body.add_tags]
        if remove:
            untag_subscribers(s, sub.id, remove, now)  # applies the campaigns' tag-removed exits
        if add:
            tag_subscribers(s, [sub.id], add, now, clinic_tz=ctx.settings.clinic.timezone)
        if body.attributes:
            set_attributes(s, sub.id, body.attributes, now, clinic_tz=ctx.settings.clinic.timezone)
        if body.status is not None:
            _change_status(s, sub, body.status, now)
        sub.updated_at = now
        s.flush()
        action = "api.subscriber.unsubscribe" if sub.status == SubscriberStatus.UNSUBSCRIBED.value != status_before \
            else "api.subscriber.update"
        record(s, who, action, f"subscriber {sub.id}",
               before={"status": status_before} if sub.status != status_before else None,
               after={"status": sub.status, "fields": sorted(body.model_dump(exclude_unset=True))}, at=now)
        return _subscriber_out(sub, tags_of(s, [sub.id]).get(sub.id, []), typed_values(s, [sub.id]).get(sub.id))


def _change_status(s: Session, sub: Subscriber, target: str, now: datetime) -> None:
    """Status changes through the same functions the patient's own links use (suppression, cancelling).

    Nothing here takes a patient off the suppression list: only the patient's own confirmed opt-in
    (the preference page, from a link in their email) undoes an unsubscribe. A caller holding an API
    token is the clinic, not the patient, so "active" for an unsubscribed or suppressed address is 409.
    """
    if target == sub.status:
        return
    if target == SubscriberStatus.UNSUBSCRIBED.value:
        unsubscribe(s, LinkClaims(sub.id), "all", now=now, source="api")  # updates `sub` (same session)
        return
    if sub.status == SubscriberStatus.UNSUBSCRIBED.value:
        raise PreferenceError("this patient unsubscribed; only they can opt in again, from the preference "
                              "link in an email they received", where="status")
    if sub.status in (SubscriberStatus.BOUNCED.value, SubscriberStatus.COMPLAINED.value):
        raise PreferenceError(f"this address is {sub.status}; preferences cannot be changed", where="status")
    if is_suppressed(s, sub.email_key):
        raise PreferenceError("this address is on the suppression list; it cannot be made to receive email "
                              "through the API", where="status")
    if sub.status == SubscriberStatus.PENDING.value and target == SubscriberStatus.ACTIVE.value:
        sub.status = target  # the clinic confirms for the patient
    elif sub.status == SubscriberStatus.PENDING.value:
        raise PreferenceError("this subscriber has not confirmed yet; it can only be made active", where="status")
    else:
        set_preferences(s, sub, paused=target == SubscriberStatus.PAUSED.value, now=now)


@router.delete("/subscribers/{subscriber_id}", status_code=204, tags=["subscribers"], responses={404: _ERRORS[404]}, dependencies=[ERASE])
def delete_subscriber(subscriber_id: SubscriberId, ctx: Ctx, who: Who) -> Response:
    """Erase the patient's data (row, tags, enrollments, deliveries, events); keep their suppression entry."""
    with ctx.runtime.sessions.begin() as s:
        erase_subscriber(s, _subscriber(s, subscriber_id), ctx.clock())
        record(s, who, "api.subscriber.erase", f"subscriber {subscriber_id}", at=ctx.clock())
    return Response(status_code=204)


@router.post("/subscribers/{subscriber_id}/enrollments", response_model=EnrollmentOut, status_code=201,
             tags=["subscribers"], responses={404: _ERRORS[404], 409: _ERRORS[409]}, dependencies=[ENROLLMENTS_WRITE])
def create_enrollment(subscriber_id: SubscriberId, body: EnrollmentIn, ctx: Ctx, who: Who) -> EnrollmentOut:
    """Enroll in a published campaign. 409 if already enrolled, unsubscribed, suppressed or not active."""
    now = ctx.clock()
    with ctx.runtime.sessions.begin() as s, domain_errors(fields={"--campaign": "campaign"}):
        sub = _subscriber(s, subscriber_id)
        campaign = _campaign(s, body.campaign)
        enrollment = enroll(s, sub, campaign, now, clinic_tz=ctx.settings.clinic.timezone, source="api")
        record(s, who, "api.enrollment.create", f"subscriber {sub.id}", after={"campaign": campaign.slug}, at=now)
        return _enrollment_out(s, enrollment, campaign.slug)


@router.post("/subscribers/{subscriber_id}/enrollments/{campaign}/stop", response_model=EnrollmentOut,
             tags=["subscribers"], responses={404: _ERRORS[404]}, dependencies=[ENROLLMENTS_WRITE])
def stop_enrollment_endpoint(subscriber_id: SubscriberId, campaign: Annotated[Slug, Path()], body: StopIn,
                             ctx: Ctx, who: Who) -> EnrollmentOut:
    """Stop the patient's active enrollment in this campaign: its scheduled emails are cancelled, with the reason."""
    now = ctx.clock()
    with ctx.runtime.sessions.begin() as s, domain_errors(fields={"--reason": "reason", "--campaign": "campaign"}):
        _subscriber(s, subscriber_id)
        found = _campaign(s, campaign)
        done = stop_in_campaign(s, subscriber_id, found, body.reason, now)
        record(s, who, "api.enrollment.stop", f"subscriber {subscriber_id}",
               after={"campaign": found.slug, "reason": body.reason}, at=now)
        enrollment = s.get(Enrollment, done.enrollment_id)
        s.refresh(enrollment)
        return _enrollment_out(s, enrollment, found.slug)


@router.post("/subscribers/{subscriber_id}/events", response_model=EventOut, status_code=201,
             tags=["subscribers"], responses={404: _ERRORS[404]}, dependencies=[EVENTS_WRITE])
def post_event(subscriber_id: SubscriberId, body: EventIn, ctx: Ctx, who: Who) -> dict:
    """Report what happened to a patient (e.g. `appointment_booked`); campaigns with it as an exit condition stop."""
    now = ctx.clock()
    with ctx.runtime.sessions.begin() as s, domain_errors(fields={"value": "name"}):
        _subscriber(s, subscriber_id)
        event, exited = record_event(s, subscriber_id, body.name, now, source=body.source or "api")
        record(s, who, "api.event", f"subscriber {subscriber_id}",
               after={"event": event.name, "stopped": [d.campaign_slug for d in exited]}, at=now)
        stopped = []
        for done in exited:
            enrollment = s.get(Enrollment, done.enrollment_id)
            s.refresh(enrollment)
            stopped.append(_enrollment_out(s, enrollment, done.campaign_slug))
        return {"id": event.id, "subscriber_id": subscriber_id, "name": event.name, "occurred_at": event.occurred_at,
                "exited": stopped}


# --------------------------------------------------------------------------- campaigns, deliveries


@router.get("/campaigns", response_model=list[CampaignOut], tags=["campaigns"], dependencies=[READ])
def get_campaigns(ctx: Ctx) -> list[dict]:
    with ctx.runtime.read_sessions() as s:
        counts = dict(s.execute(select(Step.campaign_id, func.count(Step.id)).group_by(Step.campaign_id)).all())
        return [{"id": c.id, "slug": c.slug, "title": c.title, "status": c.status, "steps": counts.get(c.id, 0),
                 "send_window": c.send_window, "created_at": c.created_at} for c in list_campaigns(s)]


@router.get("/attributes", response_model=list[AttributeOut], tags=["campaigns"], dependencies=[READ])
def get_attributes(ctx: Ctx) -> list[dict]:
    """The custom attributes this clinic defined: keys and types to use in `attributes`."""
    with ctx.runtime.read_sessions() as s:
        return [{"key": d.key, "label": d.label, "type": d.type, "choices": list(d.choices or [])}
                for d in definitions(s).values()]


@router.post("/campaigns/{slug}/enrollments", response_model=BulkEnrollmentOut, tags=["campaigns"],
             responses={404: _ERRORS[404], 409: _ERRORS[409]}, dependencies=[ENROLLMENTS_WRITE])
def create_enrollments(slug: Annotated[Slug, Path()], body: BulkEnrollmentIn, ctx: Ctx, who: Who) -> dict:
    """Enroll many patients at once (ids, or every member of a tag); who cannot be enrolled is counted by reason.

    The same checks as one enrollment, set-based (campaigns.enrollment.enroll_many). 409 if the
    campaign is not published, 404 for an unknown campaign or tag.
    """
    now = ctx.clock()
    with ctx.runtime.sessions.begin() as s, domain_errors(fields={"--campaign": "slug", "tags": "tag"}):
        campaign = get_campaign(s, slug)
        target: list[int] | Select = body.subscriber_ids or []
        if body.tag is not None:
            name = clean_tag(body.tag)
            tag_id = s.scalar(select(Tag.id).where(Tag.name == name))
            if tag_id is None:
                raise HTTPException(404, f"no tag {name!r}")
            target = select(SubscriberTag.subscriber_id).where(SubscriberTag.tag_id == tag_id)
        outcome = enroll_many(s, target, campaign, now, clinic_tz=ctx.settings.clinic.timezone, source="api")
        record(s, who, "api.enrollment.bulk", f"campaign {slug}",
               after={"enrolled": outcome.enrolled, "tag": body.tag, "ids": len(body.subscriber_ids or [])}, at=now)
    return {"campaign": slug, "enrolled": outcome.enrolled, "skipped": {k: n for k, n in sorted(outcome.skipped.items()) if n}}


@router.get("/deliveries", response_model=DeliveryPage, tags=["deliveries"], responses={404: _ERRORS[404]}, dependencies=[READ])
def get_deliveries(
    ctx: Ctx,
    subscriber_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    campaign: Annotated[Slug | None, Query(description="Campaign slug.")] = None,
    status: DeliveryStatusName | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict:
    """The delivery ledger: one row per email (campaign step or newsletter), in id order."""
    step_campaign = aliased(Campaign)
    query = (
        select(Delivery, step_campaign.slug, Step.position, Broadcast.slug)
        .outerjoin(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .outerjoin(step_campaign, step_campaign.id == Enrollment.campaign_id)
        .outerjoin(Step, Step.id == Delivery.step_id)
        .outerjoin(Broadcast, Broadcast.id == Delivery.broadcast_id)
    )
    with ctx.runtime.read_sessions() as s, domain_errors("query", {"--campaign": "campaign"}):
        if subscriber_id is not None:
            query = query.where(Delivery.subscriber_id == subscriber_id)
        if campaign is not None:
            query = query.where(Enrollment.campaign_id == get_campaign(s, campaign).id)
        if status is not None:
            query = query.where(Delivery.status == status)
        rows = s.execute(query.order_by(Delivery.id).limit(limit).offset(offset)).all()
        items = [
            {"id": d.id, "subscriber_id": d.subscriber_id, "campaign": slug, "step": position, "newsletter": newsletter,
             "due_at": d.due_at, "status": d.status, "attempts": d.attempts, "sent_at": d.sent_at,
             "outcome": d.outcome, "last_error": d.last_error}
            for d, slug, position, newsletter in rows
        ]
    return {"items": items, "limit": limit, "offset": offset}


# --------------------------------------------------------------------------- app


def _script_hashes(page: str) -> str:
    """CSP source expressions for the inline scripts of a page (Swagger UI has one)."""
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'" for body in scripts
    )


#: Swagger UI's own files (as fastapi-offline packages them), served under the API: the docs page
#: loads no script from a third party, which on the staff app's origin could read CSRF tokens.
SWAGGER_DIR = FilePath(fastapi_offline.__file__).resolve().parent / "static"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def create_api(ctx: WebContext) -> FastAPI:
    api = FastAPI(
        title=f"drip API ({ctx.settings.clinic.name})",
        version="1",
        description="Subscribers, enrollments, campaigns and the delivery ledger. "
                    "Authenticate with `Authorization: Bearer <token>` (`drip api-token create NAME`).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.state.web = ctx
    api.include_router(router)

    @api.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        files = f"{root}/docs/files"
        page = get_swagger_ui_html(
            openapi_url=root + (api.openapi_url or ""), title=api.title,
            swagger_js_url=f"{files}/swagger-ui-bundle.js", swagger_css_url=f"{files}/swagger-ui.css",
            swagger_favicon_url=f"{files}/favicon.png",
        )
        csp = (f"default-src 'none'; script-src 'self' {_script_hashes(page.body.decode())}; "
               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        page.headers["Content-Security-Policy"] = csp
        return page

    @api.get("/docs/files/{name}", include_in_schema=False)
    def docs_file(name: str) -> FileResponse:
        if name not in SWAGGER_FILES:  # a fixed list: nothing else of the package is reachable
            raise HTTPException(404, "not found")
        return FileResponse(SWAGGER_DIR / name, headers={"Cache-Control": "public, max-age=86400"})

    return api


def routes(ctx: WebContext) -> list[BaseRoute]:
    return [Mount(API_PREFIX, app=create_api(ctx))]
