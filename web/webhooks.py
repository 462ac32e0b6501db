"""`POST /webhooks/sendgrid`: SendGrid's signed Event Webhook.

Order matters: the signature is checked before the body is parsed, so unsigned or forged input
never reaches the JSON parser or the database.

1. No public key configured (SENDGRID_WEBHOOK_PUBLIC_KEY) or an unreadable one: 503 and a logged
   configuration error. Unsigned events are never accepted, not even "for now".
2. Missing/forged signature, or a body that was altered after signing: 403.
3. Timestamp more than 5 minutes old or ahead of our clock: 403 (a captured, correctly signed
   request replayed later). Replays inside the window are caught by sg_event_id dedupe.
4. Not a JSON list of objects: 400 (SendGrid retries non-2xx; a malformed batch never improves).
5. Apply in one transaction (delivery/events.py) and answer 200 with the counts.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256; the signature header is base64
DER and the key from the dashboard is base64 DER SubjectPublicKeyInfo (no PEM armour), which is
what `sendgrid.helpers.eventwebhook.EventWebhook` expects.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from delivery.events import EventCounts, apply_events, normalize_sendgrid
from drip.metrics import observe_webhook
from web.context import WebContext

log = logging.getLogger("drip.web.webhooks")

TOLERANCE = timedelta(minutes=5)
MAX_BODY = 8 * 1024 * 1024  # SendGrid batches are well under this; anything bigger is not SendGrid


class SignatureChecker:
    """The SendGrid library's verifier, built once from the configured public key."""

    def __init__(self, public_key: str) -> None:
        try:
            self._hook = EventWebhook(public_key.strip())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER EC public key: {exc}") from exc

    def verify(self, body: bytes, signature: str, timestamp: str) -> bool:
        try:
            # The library takes text and re-encodes it as UTF-8; SendGrid sends UTF-8 JSON.
            payload = body.decode("utf-8")
            return bool(self._hook.verify_signature(payload, signature, timestamp))
        except (ValueError, TypeError):  # undecodable body, bad base64 (binascii.Error), odd DER
            return False


def _problem(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class SendGridWebhook:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.checker: SignatureChecker | None = None
        self.config_error = ""
        key = ctx.settings.sendgrid_webhook_public_key
        if not key.strip():
            self.config_error = "SENDGRID_WEBHOOK_PUBLIC_KEY is not set; the SendGrid event webhook refuses all events"
            if ctx.settings.backend != "sendgrid":
                # Not a fault when SendGrid is not the backend: nothing should post events here.
                # An event that does arrive is still logged as an error (see `handle`).
                log.info("SendGrid event webhook off (backend %s, no SENDGRID_WEBHOOK_PUBLIC_KEY)",
                         ctx.settings.backend)
                return
        else:
            try:
                self.checker = SignatureChecker(key)
            except ValueError as exc:
                self.config_error = str(exc)
        if self.config_error:
            log.error("configuration error: %s", self.config_error)

    async def _body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _fresh(self, timestamp: str) -> bool:
        try:
            ts = int(timestamp)
        except ValueError:
            return False
        now = self.ctx.clock().timestamp()
        return abs(now - ts) <= TOLERANCE.total_seconds()

    async def handle(self, request: Request) -> Response:
        if self.checker is None:
            log.error("configuration error: %s", self.config_error)
            return _problem("webhook not configured", 503)
        body = await self._body(request)
        if body is None:
            return _problem("body too large", 413)
        signature = request.headers.get(EventWebhookHeader.SIGNATURE, "")
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP, "")
        if not signature or not timestamp or not self.checker.verify(body, signature, timestamp):
            log.warning("sendgrid webhook: signature check failed")
            return _problem("invalid signature", 403)
        if not self._fresh(timestamp):
            log.warning("sendgrid webhook: stale or future timestamp %r", timestamp[:20])
            return _problem("stale timestamp", 403)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return _problem("body is not JSON", 400)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            return _problem("body must be a JSON list of event objects", 400)
        counts = await run_in_threadpool(self._apply, data)
        observe_webhook("sendgrid", counts.by_type, counts.duplicates)
        return JSONResponse(counts.as_dict())

    def _apply(self, data: list[dict]) -> EventCounts:
        now = self.ctx.clock()
        events = [normalize_sendgrid(item, now=now) for item in data]
        with self.ctx.runtime.sessions.begin() as s:
            return apply_events(s, events, self.ctx.settings, now)


def routes(ctx: WebContext) -> list[BaseRoute]:
    hook = SendGridWebhook(ctx)
    return [Route("/webhooks/sendgrid", hook.handle, methods=["POST"], name="sendgrid_webhook")]
