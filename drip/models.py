"""The database: every piece of state drip has. The delivery ledger (`deliveries`) is the truth.

Times are stored in UTC (`UTCDateTime` returns aware datetimes on both SQLite and PostgreSQL).
Local times exist only at the edges: the subscriber's IANA zone is applied when a due time is
computed and when a table is shown.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

MAX_ID = 2**31 - 1  # the largest id an INTEGER primary key holds (PostgreSQL's int4)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Plain string enums: readable in SQL, portable between SQLite and PostgreSQL.
class SubscriberStatus(str, enum.Enum):
    PENDING = "pending"  # signed up, not yet confirmed (double opt-in)
    ACTIVE = "active"
    PAUSED = "paused"  # patient paused all mail from the preference page
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class CampaignStatus(str, enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"
    PAUSED = "paused"
    ARCHIVED = "archived"


class EnrollmentState(str, enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXITED = "exited"  # stopped by staff, the API or an exit condition; reason in exit_reason


class DeliveryStatus(str, enum.Enum):
    SCHEDULED = "scheduled"  # waiting for due_at
    SENDING = "sending"  # claimed by a worker until lease_until
    SENT = "sent"  # accepted by the backend
    FAILED = "failed"  # permanent failure, reason in last_error
    CANCELLED = "cancelled"  # unsubscribed / suppressed / enrollment or broadcast cancelled


class BroadcastStatus(str, enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    PAUSED = "paused"  # held by staff: its rows are not claimed, a recurring one does not fire


class Subscriber(Base):
    __tablename__ = "subscribers"
    # Ids go into signed links; SQLite must never hand a deleted subscriber's id to someone new.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased: unique case-insensitively
    name: Mapped[str] = mapped_column(String(200), default="")
    tz: Mapped[str | None] = mapped_column(String(64), nullable=True)  # IANA zone; clinic zone when None
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)  # "en", "es"; clinic default when None
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.ACTIVE.value, index=True)
    consent_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_text_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    consent_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    tags: Mapped[list["Tag"]] = relationship(secondary="subscriber_tags", back_populates="subscribers")


class Tag(Base):
    """A list or tag. With `campaign_id` set, joining it enrolls the subscriber in that campaign."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    # In the preference centre only when shown and described (the description is its label there).
    shown: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    subscribers: Mapped[list[Subscriber]] = relationship(secondary="subscriber_tags", back_populates="tags")


class SubscriberTag(Base):
    __tablename__ = "subscriber_tags"

    __table_args__ = (Index("ix_subscriber_tags_tag_subscriber", "tag_id", "subscriber_id"),)  # migration 0033

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value)
    source_name: Mapped[str] = mapped_column(String(300), default="")
    # send window in the subscriber's zone, e.g. "mon-fri 09:00-17:00" (campaigns.schedule.parse_window)
    send_window: Mapped[str] = mapped_column(String(64), default="mon-fri 09:00-17:00")
    # Cadence (campaigns.schedule.Cadence): steps' days count Mon-Fri only; each goes at this local time.
    business_days: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    send_time: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "09:30"; None: the enrollment's time
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    paused_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Clinician sign-off (campaigns/signoff.py): "" | submitted | returned, and the approver's comment.
    review_state: Mapped[str] = mapped_column(String(16), default="", server_default="")
    review_comment: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The language its steps were written in (drip/i18n.py); None: the clinic's. Other languages'
    # versions of the steps are StepVersion rows with their `language` (migration 0031).
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    titles: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # its title in those languages: {"es": ...}

    steps: Mapped[list["Step"]] = relationship(back_populates="campaign", order_by="Step.position")


class Step(Base):
    """One email of a campaign. Content lives in versions; the newest version is what goes out."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # intro | item | outro
    slug: Mapped[str] = mapped_column(String(80))
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)  # after enrollment
    # "3 days before {first_visit}": a date attribute and a signed offset (campaigns/anchors.py)
    anchor_attribute: Mapped[str | None] = mapped_column(String(64), nullable=True)
    anchor_offset_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    condition: Mapped[str | None] = mapped_column(String(300), nullable=True)  # "tag:back-pain" (campaigns/conditions.py)

    campaign: Mapped[Campaign] = relationship(back_populates="steps")
    versions: Mapped[list["StepVersion"]] = relationship(back_populates="step", order_by="StepVersion.version")


class StepVersion(Base):
    """One version of a step's text. `language` "": the campaign's own language (what every patient
    gets unless there is one in theirs); "es": the Spanish version staff uploaded to the campaign.
    Versions count up per step and language."""

    __tablename__ = "step_versions"
    __table_args__ = (UniqueConstraint("step_id", "language", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    section: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(200))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)  # plain text with blank-line paragraphs
    template: Mapped[str] = mapped_column(String(100), default="step")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # An edit to a published step that waits for an approver: never sent until approved.
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    language: Mapped[str] = mapped_column(String(8), default="", server_default="")

    step: Mapped[Step] = relationship(back_populates="versions")


class ExcludedText(Base):
    """Text staff dropped from a draft (campaigns/draft_tools.py): kept, shown, restorable, never sent."""

    __tablename__ = "excluded_texts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    from_position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    section: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(200))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DraftChange(Base):
    """One structure change of a draft, with the steps and excluded text before it (JSON), for undo."""

    __tablename__ = "draft_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    snapshot: Mapped[str] = mapped_column(Text)
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        # No second *active* enrollment of one subscriber in one campaign.
        Index(
            "uq_enrollments_active",
            "subscriber_id",
            "campaign_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default=EnrollmentState.ACTIVE.value)
    source: Mapped[str] = mapped_column(String(64), default="cli")
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exit_reason: Mapped[str] = mapped_column(Text, default="", server_default="")


class ExitKind(str, enum.Enum):
    TAG_ADDED = "tag-added"
    TAG_REMOVED = "tag-removed"
    ATTRIBUTE_CHANGED = "attribute-changed"
    EVENT = "event"


class CampaignExit(Base):
    """An exit condition: when it happens to an enrolled patient, their enrollment stops."""

    __tablename__ = "campaign_exits"
    __table_args__ = (
        UniqueConstraint("campaign_id", "kind", "value", name="uq_campaign_exits_condition"),
        Index("ix_campaign_exits_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))  # ExitKind
    value: Mapped[str] = mapped_column(String(100))  # tag name, attribute key or event name
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriberEvent(Base):
    """Something the clinic's other systems reported about a patient (e.g. appointment_booked)."""

    __tablename__ = "subscriber_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64), default="api")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignupForm(Base):
    """Which campaign a sign-up form starts (name "default" is /subscribe), and the list it adds to."""

    __tablename__ = "signup_forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True)
    tag: Mapped[str | None] = mapped_column(String(100), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AttributeType(str, enum.Enum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    YESNO = "yesno"
    CHOICE = "choice"


class AttributeDefinition(Base):
    """A custom field the clinic defined (e.g. first_visit: date)."""

    __tablename__ = "attribute_definitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(16))  # AttributeType
    choices: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriberAttribute(Base):
    """One patient's value of one attribute, stored canonically as text (see subscribers/attributes.py)."""

    __tablename__ = "subscriber_attributes"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    attribute_id: Mapped[int] = mapped_column(
        ForeignKey("attribute_definitions.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Broadcast(Base):
    """A newsletter to a list: once at `send_at` (UTC, or local wall time per subscriber), or on a cron."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(200))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(String(100), default="step")
    tag_id: Mapped[int | None] = mapped_column(ForeignKey("tags.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.DRAFT.value)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    local_time: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "09:00" in each zone
    cron: Mapped[str | None] = mapped_column(String(100), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One email to one subscriber. Unique per (enrollment, step) and per (broadcast, subscriber)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", name="uq_deliveries_enrollment_step"),
        UniqueConstraint("broadcast_id", "subscriber_id", name="uq_deliveries_broadcast_subscriber"),
        # migration 0029: the claim's order (due_at, id); the per-step counts from the index alone
        Index("ix_deliveries_due", "status", "due_at", "id"),
        Index("ix_deliveries_step_status", "step_id", "status", "outcome"),
        # migration 0034: only rows whose email.sent / enrollment.completed are still to be written
        Index("ix_deliveries_hooks_pending", "id", sqlite_where=text("hooks_until IS NOT NULL"),
              postgresql_where=text("hooks_until IS NOT NULL")),
        {"sqlite_autoincrement": True},  # delivery ids go into links and provider custom_args: never reused
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), nullable=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"), nullable=True)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.SCHEDULED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    step_version_id: Mapped[int | None] = mapped_column(ForeignKey("step_versions.id"), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # delivered/bounced/... from events
    # Set when recorded sent while a webhook endpoint wanted email.sent or enrollment.completed:
    # the highest such endpoint id then (endpoints added later get no event for this send), and
    # whether this send completed its enrollment. The webhook job writes those events and clears
    # the mark in one transaction (webhooks/derived.py).
    hooks_until: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hooks_completed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class WebhookEndpoint(Base):
    """A clinic-configured receiver of signed events (Standard Webhooks). See webhooks/.

    `secret` signs every message; after a rotation `previous_secret` signs too (a second `v1,`
    signature) until `previous_until`, so the receiver can switch keys without dropping events.
    `events` lists the event types sent (empty: all).
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    events: Mapped[list] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """The outbox: one event, written in the transaction of the change it reports. `payload` is the
    exact body signed and sent (a replay sends the same bytes under the same webhook-id)."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_... (the webhook-id)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WebhookDelivery(Base):
    """One event to one endpoint: pending -> sending (claimed with a lease) -> delivered | failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Suppression(Base):
    """Addresses that must never be sent to again (bounce, complaint, unsubscribe-all, staff)."""

    __tablename__ = "suppressions"

    email_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SoftBounceStreak(Base):
    """Soft bounces in a row per address (delivery/bounces/apply.py): N of them suppress it."""

    __tablename__ = "soft_bounce_streaks"

    email_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_delivery_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=True)
    last_status: Mapped[str] = mapped_column(String(16), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignOptOut(Base):
    """Unsubscribed from one campaign only (the patient still gets other mail)."""

    __tablename__ = "campaign_optouts"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """A provider event (SendGrid webhook), normalised, with the raw payload kept."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    delivery_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    email_key: Mapped[str] = mapped_column(String(320), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raw: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    role: Mapped[str] = mapped_column(String(16), default="owner", server_default="owner")  # drip/permissions.py


class StaffInvite(Base):
    """A one-time link for a new staff member to set their password (only its digest is stored)."""

    __tablename__ = "staff_invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Base):
    """One row per staff, API or command-line action (drip/audit.py). Append-only: triggers on both
    databases refuse UPDATE and DELETE; nothing in drip changes a row once written."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_kind: Mapped[str] = mapped_column(String(8))  # staff | token | cli
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(320))  # staff email, token name, "cli" (kept after deletes)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")


class ClinicSetting(Base):
    """A clinic identity value set in the web app (drip/clinic_settings.py); overrides env/drip.toml."""

    __tablename__ = "clinic_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ClinicAsset(Base):
    """An uploaded file the emails link to (the logo), served from our own URL."""

    __tablename__ = "clinic_assets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    scopes: Mapped[str | None] = mapped_column(String(200), nullable=True)  # NULL: made before scopes, holds all


class RateWindow(Base):
    """A provider rate limit's count in its current window, shared by all workers
    (delivery/ratelimit.py): one row per (backend, period), reset when a new window starts."""

    __tablename__ = "rate_windows"

    backend: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # second | minute | hour | day
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)  # the current window's start (UTC-aligned)
    used: Mapped[int] = mapped_column(Integer, default=0)  # emails reserved in this window
    cap: Mapped[int] = mapped_column(Integer)  # the limit the last worker applied


class WorkerHeartbeat(Base):
    """One row per worker process (`drip run`, `drip serve --worker`): is anything sending?

    Written by delivery/heartbeat.py every few seconds; read by /healthz and the staff pages,
    which say plainly when no worker has beaten recently. `stopped_at` is set on a clean exit.
    """

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # = deliveries.claimed_by
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16), default="run")  # run | once | serve
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_beat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_sent: Mapped[int] = mapped_column(Integer, default=0)  # emails sent by the latest tick
    sent_total: Mapped[int] = mapped_column(BigInteger, default=0)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StatsCache(Base):
    """The staff pages' counts of a large ledger, as the worker last counted them
    (delivery/counts.py): one row per page part, e.g. "campaigns", "steps:12", "home"."""

    __tablename__ = "stats_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
