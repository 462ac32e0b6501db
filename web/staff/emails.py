"""Emails as staff see them: the real rendered HTML for the preview frame, and "send a test to me".

The preview is rendered by the same `Renderer` the dispatcher uses, for a sample patient, so
what staff look at is what patients get. The compile cache key includes a digest of the
content: a draft's steps are edited in place without a new version number.

A test email goes through the configured backend (the outbox by default) to the logged-in staff
address only, with "[TEST] " before the subject. It is not a delivery: it has no ledger row and
carries delivery id 0 (the outbox keeps the newest test as 0.eml / 0.html). Each one is audited
(`email.test`: who, which email, sent or not).
"""

from __future__ import annotations

import hashlib

from campaigns.preview import sample_recipient
from campaigns.render import EmailContent, RenderedEmail, Renderer
from delivery.backends import get_backend
from delivery.types import OutgoingMessage
from drip.config import Settings
from drip.errors import SendError
from drip.models import Broadcast, Campaign, Step, StepVersion

TEST_PREFIX = "[TEST] "
SAMPLE_NAME = "Alex Morgan"
TEST_DELIVERY_ID = 0

# The preview document: inline styles (it is an email), no script, no plugins, no forms; only our
# own staff pages may frame it. `sandbox` keeps it in an opaque origin even when opened directly.
PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; font-src https: data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _key(kind: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]
    return f"staff-preview:{kind}:{digest}"


def step_content(campaign: Campaign, step: Step, version: StepVersion, total: int) -> EmailContent:
    from campaigns.service import title_in

    # the series' title as the patient reads it: the Spanish article's for a Spanish version (the dispatcher's)
    title = title_in(campaign, version.language)
    # the preview's footer in the version's language (a campaign written in Spanish: Spanish)
    language = version.language or campaign.language or ""
    fields = (version.title, version.subject, version.preheader, version.body, version.section, step.kind,
              step.position, total, version.template, title, language)
    return EmailContent(
        key=_key("step", step.id, *fields), title=version.title, subject=version.subject,
        preheader=version.preheader, body=version.body, section=version.section, kind=step.kind,
        position=step.position, total=total, template=version.template, campaign_title=title,
        language=language,
    )


def broadcast_content(b: Broadcast) -> EmailContent:
    return EmailContent(
        key=_key("broadcast", b.id, b.title, b.subject, b.preheader, b.body, b.template), title=b.title,
        subject=b.subject, preheader=b.preheader, body=b.body, template=b.template, kind="broadcast",
    )


def render_sample(renderer: Renderer, content: EmailContent, base_url: str) -> RenderedEmail:
    return renderer.render(content, sample_recipient(SAMPLE_NAME, base_url))


def send_test(settings: Settings, renderer: Renderer, content: EmailContent, to_email: str) -> str:
    """Send one test email to `to_email`; returns the backend's message id. Raises SendError on failure."""
    recipient = sample_recipient("", settings.base_url)
    rendered = renderer.render(content, recipient)
    clinic = settings.clinic
    message = OutgoingMessage(
        delivery_id=TEST_DELIVERY_ID, to_email=to_email, to_name="", subject=TEST_PREFIX + rendered.subject,
        html=rendered.html, text=rendered.text, from_email=clinic.from_email, from_name=clinic.from_name,
        reply_to=clinic.reply_to, unsubscribe_url=recipient.unsubscribe_url, preheader=rendered.preheader,
        categories=("test",),
    )
    with get_backend(settings) as backend:
        [result] = backend.send_batch([message])
    if not result.ok:
        raise SendError(result.error or "the email backend refused the test email")
    return result.message_id or ""


def audit_test_email(req, target: str, sent: bool, *, language: str = "") -> None:
    """Audit a test email (`email.test`): who asked (the actor, also its recipient), which email,
    and whether the backend took it. Never the address or the error text (it may echo a key)."""
    after: dict = {"sent": sent}
    if language:
        after["language"] = language
    with req.ctx.runtime.sessions.begin() as db:
        req.audit(db, "email.test", target, after=after)
