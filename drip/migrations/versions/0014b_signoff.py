"""clinician sign-off: pending step versions, a campaign's review state and comment

Existing versions are live (pending false): they were already going out.

Revision ID: 0014b
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = "0014b"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("step_versions") as batch:
        batch.add_column(sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("review_state", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("review_comment", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("review_comment")
        batch.drop_column("review_state")
    with op.batch_alter_table("step_versions") as batch:
        batch.drop_column("pending")
