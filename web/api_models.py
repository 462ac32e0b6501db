"""Request and response bodies of the REST API (pydantic), i.e. its OpenAPI document.

Bounds are part of the contract, not decoration: every string has a maximum length, every id and
offset a maximum value (PostgreSQL integers are 32-bit; a bigger number would be a driver error,
not a 404), and every text field refuses NUL and lone surrogates, which PostgreSQL and UTF-8 cannot store.
The domain functions (subscribers/service.py) still do the real checks (address syntax, IANA
zone, tag names); what they refuse becomes a 422 naming the same field.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from drip.models import MAX_ID

MAX_OFFSET = 10**9


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must be valid Unicode (no lone surrogates)")
    return value


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value.strip()))


def _text(max_length: int, min_length: int = 0) -> object:
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_storable)]


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Slug = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")]
EmailText = _text(320, 1)
NameText = _text(200)
ZoneText = _text(64)
LanguageText = _text(20)
SearchText = _text(200)
TagName = _text(100, 1)
SourceText = _text(64, 1)
VersionText = _text(32, 1)
SubscriberStatusName = Literal["pending", "active", "paused", "unsubscribed", "bounced", "complained"]
DeliveryStatusName = Literal["scheduled", "sending", "sent", "failed", "cancelled"]


AttributeKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
AttributeValue = Annotated[bool, Field(strict=True)] | int | float | _text(1000) | None  # type: ignore[operator]
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(
    max_length=50, description="Custom attributes the clinic defined (`drip attributes define`), e.g. "
                               '{"first_visit": "2027-01-12"}; null or "" removes one.')]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422, not silently ignored


class ConsentIn(_In):
    source: SourceText = Field(description="Where the patient agreed, e.g. 'front-desk', 'booking-form'.")
    text_version: VersionText = Field(description="Version of the consent wording they agreed to.")
    ip: Annotated[str, Field(max_length=64), AfterValidator(_ip)] | None = Field(
        None, description="The patient's IP address, if they agreed online.")


class SubscriberIn(_In):
    email: EmailText
    name: NameText | None = None
    tz: ZoneText | None = Field(None, description="IANA time zone, e.g. America/New_York; the clinic's when empty.")
    language: LanguageText | None = Field(  # type: ignore[valid-type]
        None, description="The patient's language for pages and emails: 'en' or 'es'; the clinic's when empty.")
    tags: list[TagName] = Field(default_factory=list, max_length=50)
    enroll: Slug | None = Field(None, description="Campaign slug to enroll the subscriber in at once, e.g. 'onboarding'.")
    consent: ConsentIn | None = None
    attributes: Attributes = Field(default_factory=dict)


class SubscriberPatch(_In):
    name: NameText | None = None
    tz: ZoneText | None = Field(None, description="IANA zone; an empty string resets it to the clinic's zone.")
    language: LanguageText | None = Field(  # type: ignore[valid-type]
        None, description="'en' or 'es'; an empty string resets it to the clinic's language.")
    status: Literal["active", "paused", "unsubscribed"] | None = Field(
        None, description="'unsubscribed' also suppresses the address and cancels scheduled mail.")
    add_tags: list[TagName] = Field(default_factory=list, max_length=50)
    remove_tags: list[TagName] = Field(default_factory=list, max_length=50)
    attributes: Attributes = Field(default_factory=dict)


class EnrollmentIn(_In):
    campaign: Slug


EventName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class StopIn(_In):
    reason: _text(500, 1) = Field(description="Why the enrollment stops (recorded), e.g. 'booked by phone'.")  # type: ignore[valid-type]


class EventIn(_In):
    name: EventName = Field(description="What happened, e.g. 'appointment_booked'; campaigns with this "
                                        "event as an exit condition stop for the patient.")
    source: SourceText | None = Field(None, description="Which system reports it, e.g. 'booking-system'.")
class BulkEnrollmentIn(_In):
    """Who to enroll: a list of subscriber ids, or every member of a tag (exactly one of the two)."""
    subscriber_ids: list[Id] | None = Field(None, min_length=1, max_length=10_000)
    tag: TagName | None = None
    @model_validator(mode="after")
    def _one_of(self) -> "BulkEnrollmentIn":
        if (self.subscriber_ids is None) == (self.tag is None):
            raise ValueError("give either subscriber_ids or tag")
        return self
class BulkEnrollmentOut(BaseModel):
    campaign: str
    enrolled: int = Field(description="Enrollments made by this call.")
    skipped: dict[str, int] = Field(description=(
        "Patients passed over, by reason: missing (no such subscriber), inactive, suppressed, "
        "opted_out (unsubscribed from this campaign), enrolled (already enrolled)."))


class Consent(BaseModel):
    source: str | None
    at: datetime | None
    text_version: str | None
    ip: str | None


class EnrollmentOut(BaseModel):
    id: int
    campaign: str
    state: str
    enrolled_at: datetime
    scheduled: int = Field(description="Deliveries of this enrollment still waiting to go out.")
    next_due_at: datetime | None = Field(description="When the next of them is due (UTC).")
    exited_at: datetime | None = Field(None, description="When it was stopped (state 'exited').")
    exit_reason: str = Field("", description="Why it was stopped.")


class EventOut(BaseModel):
    id: int
    subscriber_id: int
    name: str
    occurred_at: datetime
    exited: list[EnrollmentOut] = Field(description="Enrollments this event stopped (exit conditions).")


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str
    tz: str | None
    language: str | None = Field(None, description="'en', 'es', or null: the clinic's language.")
    status: SubscriberStatusName
    tags: list[str]
    attributes: dict[str, bool | int | float | str] = Field(default_factory=dict)
    consent: Consent
    created_at: datetime
    updated_at: datetime


class SubscriberCreated(SubscriberOut):
    created: bool = Field(description="False when the address was already there (the call is idempotent).")
    enrollment: EnrollmentOut | None = None


class SubscriberPage(BaseModel):
    items: list[SubscriberOut]
    total: int
    limit: int
    offset: int
    next_after: int | None = Field(None, description="Pass as `after` for the next page (which may be empty); null when this page is not full.")


class AttributeOut(BaseModel):
    key: str
    label: str
    type: Literal["text", "number", "date", "yesno", "choice"]
    choices: list[str]


class CampaignOut(BaseModel):
    id: int
    slug: str
    title: str
    status: str
    steps: int
    send_window: str
    created_at: datetime


class DeliveryOut(BaseModel):
    id: int
    subscriber_id: int
    campaign: str | None
    step: int | None = Field(description="Position of the step in its campaign.")
    newsletter: str | None
    due_at: datetime
    status: DeliveryStatusName
    attempts: int
    sent_at: datetime | None
    outcome: str | None
    last_error: str


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    limit: int
    offset: int


class ErrorOut(BaseModel):
    detail: str | list[dict]
