"""The double opt-in email: rendered with the campaign renderer (templates/email/confirm.*) and sent
through the configured backend (outbox by default), like every other email.

It is not a row in the delivery ledger (it belongs to no campaign or newsletter), so its
`delivery_id` is the subscriber id made negative: the outbox names files by delivery id, and the
minus keeps `-12.eml` apart from ledger rows while a second request from the same patient
replaces their earlier, unused confirmation email. Provider events for it carry no ledger id and
are applied by address only (a bounce still suppresses). It carries `List-Unsubscribe` with a
normal unsubscribe token, so "never email me" works from the very first email.
"""

from __future__ import annotations

import logging

from campaigns.render import EmailContent, Recipient, Renderer
from delivery.backends import get_backend
from delivery.types import OutgoingMessage
from drip.config import Settings
from drip.i18n import LANGUAGES, N_, gettext_for
from subscribers.signup import SignupOutcome
from subscribers.tokens import CONFIRM_MAX_AGE, TokenSigner

log = logging.getLogger("drip.signup")

BODY = N_(
    "Thank you for signing up for educational emails from {clinic}. Please confirm that this is "
    "your address by pressing the button below. The link works for {days} days."
)
BODY_END = N_("Until you confirm, we will not send you anything else.")
TITLE = N_("Please confirm your subscription")
SUBJECT = N_("Confirm your subscription to {clinic}")
PREHEADER = N_("One click and you are on the list. If you did not sign up, ignore this email.")


def confirmation_content(settings: Settings, language: str | None = None) -> EmailContent:
    """The confirmation email in the patient's language (the one chosen on the form), else the clinic's."""
    clinic = settings.clinic.name
    language = language if language in LANGUAGES else settings.clinic.language
    _ = gettext_for(language)
    return EmailContent(
        key="signup-confirm:v1",
        title=_(TITLE),
        subject=_(SUBJECT).format(clinic=clinic),
        preheader=_(PREHEADER),
        body=_(BODY).format(clinic=clinic, days=CONFIRM_MAX_AGE // 86400) + "\n\n" + _(BODY_END),
        kind="confirm",
        template="confirm",
        language="" if language == settings.clinic.language else language,
    )


def confirmation_message(settings: Settings, renderer: Renderer, signer: TokenSigner, to: SignupOutcome) -> OutgoingMessage:
    assert to.subscriber_id is not None
    base = settings.base_url.rstrip("/")
    unsubscribe_url = f"{base}/u/{signer.unsubscribe_token(to.subscriber_id)}"
    confirm_url = f"{base}/confirm/{signer.confirm_token(to.subscriber_id)}"
    recipient = Recipient(name=to.name, email=to.email, unsubscribe_url=unsubscribe_url, preferences_url=confirm_url)
    rendered = renderer.render(confirmation_content(settings, to.language), recipient)
    clinic = settings.clinic
    return OutgoingMessage(
        delivery_id=-to.subscriber_id,
        to_email=to.email,
        to_name=to.name,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        from_email=clinic.from_email,
        from_name=clinic.from_name,
        reply_to=clinic.reply_to,
        unsubscribe_url=unsubscribe_url,
        preheader=rendered.preheader,
        categories=("signup-confirm",),
    )


def send_confirmation(settings: Settings, renderer: Renderer, signer: TokenSigner, to: SignupOutcome) -> bool:
    """Render and send; a failure is logged, not raised (the patient already saw "check your inbox")."""
    try:
        message = confirmation_message(settings, renderer, signer, to)
        with get_backend(settings) as backend:
            result = backend.send_batch([message])[0]
    except Exception:  # any backend or template failure: the log has it, the page cannot change now
        log.exception("confirmation email to subscriber %s could not be sent", to.subscriber_id)
        return False
    if not result.ok:
        log.error("confirmation email to subscriber %s failed: %s", to.subscriber_id, result.error)
    return result.ok
