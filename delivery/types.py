"""The values that cross the backend boundary. No I/O here.

`OutgoingMessage` is one email to one recipient. Backends that send a whole group in one request
(SendGrid, up to 1,000 personalizations) use `shared` + `substitutions` instead of the
per-recipient `html`/`text`: applying `substitutions` to `shared.html`/`shared.text` by plain string
replacement gives exactly the per-recipient body (the renderer guarantees it; a test checks it).

`OutgoingMessage` and `SendResult` are made once per recipient of every send, so they are slotted
and not frozen (a frozen dataclass sets each field through `object.__setattr__`: 1.5 against
0.5 us for a message). Treat them as values all the same: nothing changes one after it is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class SharedContent:
    """One step version (or broadcast) rendered once, with substitution keys where recipient data goes."""

    key: str  # e.g. "step:12:v3" - messages with the same key can share one provider request
    subject: str
    html: str
    text: str


@dataclass(slots=True)
class OutgoingMessage:
    """One email to one recipient. The field order is part of the interface: the dispatcher builds
    these positionally (a test pins the order)."""

    delivery_id: int
    to_email: str
    to_name: str
    subject: str
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str
    unsubscribe_url: str  # RFC 8058 one-click target (POST) and the List-Unsubscribe header
    preheader: str = ""
    categories: tuple[str, ...] = ()  # opaque ids only (provider_categories), never slugs or patient data
    shared: SharedContent | None = None
    substitutions: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SendResult:
    delivery_id: int
    ok: bool
    message_id: str | None = None
    error: str = ""
    transient: bool = False  # True: leave the row due and retry later
    retry_after: float | None = None  # seconds the provider asked us to wait
    # True: the backend failed, not this recipient (connection refused, timeout, 421, a 4xx for
    # every recipient, disk full, provider 5xx/401): the row is released as it was and the
    # dispatcher's circuit breaker holds the backend. Never fails a row, never counts to auto-pause.
    server: bool = False
    # True: a hard bounce (e.g. SMTP 550 5.1.1 at RCPT): the address is suppressed, like a provider's
    # bounce event.
    bounce: bool = False


@runtime_checkable
class EmailBackend(Protocol):
    """One sending loop per provider. `send_batch` never raises for a per-message failure:
    it reports it in that message's `SendResult`. Configuration errors do raise."""

    name: str
    uses_shared_content: bool
    sends_groups: bool

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> "EmailBackend": ...

    def __exit__(self, *exc: object) -> None: ...


# The only words a provider sees as categories: kinds of email, none of which hints at a condition.
GENERIC_CATEGORIES = ("newsletter", "signup-confirm", "test")


def provider_categories(*, campaign_id: int | None = None, step_id: int | None = None,
                        broadcast_id: int | None = None) -> tuple[str, ...]:
    """What a provider may group statistics by: opaque database ids, never a slug or a title.

    A campaign's slug ("acupuncture-pain-relief") tells the provider what a patient is likely
    treated for; an id tells it nothing, and staff map ids back to names in drip's own pages.
    """
    if broadcast_id is not None:
        return ("newsletter", f"n{int(broadcast_id)}")
    out: list[str] = []
    if campaign_id is not None:
        out.append(f"c{int(campaign_id)}")
        if step_id is not None:
            out.append(f"c{int(campaign_id)}:s{int(step_id)}")
    return tuple(out)
