"""patient journeys: sign-up forms, enrollment exits, subscriber events, custom attributes

Revision ID: 0013
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import drip.models


revision = "0013"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("exited_at", drip.models.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("exit_reason", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "campaign_exits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("created_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_exits_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_exits")),
        sa.UniqueConstraint("campaign_id", "kind", "value", name="uq_campaign_exits_condition"),
    )
    op.create_index("ix_campaign_exits_kind_value", "campaign_exits", ["kind", "value"])
    op.create_table(
        "subscriber_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_subscriber_events_subscriber_id_subscribers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_events")),
    )
    op.create_index(op.f("ix_subscriber_events_subscriber_id"), "subscriber_events", ["subscriber_id"])
    op.create_table(
        "signup_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("tag", sa.String(length=100), nullable=True),
        sa.Column("updated_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_signup_forms_campaign_id_campaigns"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_forms")),
        sa.UniqueConstraint("name", name=op.f("uq_signup_forms_name")),
    )
    op.create_table(
        "attribute_definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("created_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribute_definitions")),
        sa.UniqueConstraint("key", name=op.f("uq_attribute_definitions_key")),
    )
    op.create_table(
        "subscriber_attributes",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("attribute_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["attribute_id"], ["attribute_definitions.id"],
                                name=op.f("fk_subscriber_attributes_attribute_id_attribute_definitions"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_subscriber_attributes_subscriber_id_subscribers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", "attribute_id", name=op.f("pk_subscriber_attributes")),
    )
    op.create_index(op.f("ix_subscriber_attributes_attribute_id"), "subscriber_attributes", ["attribute_id"])


def downgrade() -> None:
    op.drop_table("subscriber_attributes")
    op.drop_table("attribute_definitions")
    op.drop_table("signup_forms")
    op.drop_table("subscriber_events")
    op.drop_table("campaign_exits")
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("exit_reason")
        batch.drop_column("exited_at")
