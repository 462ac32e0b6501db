"""draft tools: text staff excluded from a draft, and the undo history of its structure changes

Revision ID: 0021
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import drip.models


revision = "0021"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "excluded_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("from_position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("section", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("preheader", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_excluded_texts_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_excluded_texts")),
    )
    op.create_index(op.f("ix_excluded_texts_campaign_id"), "excluded_texts", ["campaign_id"])
    op.create_table(
        "draft_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("undone", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", drip.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_draft_changes_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_changes")),
    )
    op.create_index(op.f("ix_draft_changes_campaign_id"), "draft_changes", ["campaign_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_draft_changes_campaign_id"), table_name="draft_changes")
    op.drop_table("draft_changes")
    op.drop_index(op.f("ix_excluded_texts_campaign_id"), table_name="excluded_texts")
    op.drop_table("excluded_texts")
