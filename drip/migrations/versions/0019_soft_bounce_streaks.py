"""soft bounce streaks: soft bounces in a row per address, read from the bounce mailbox

Revision ID: 0019
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import drip.models


revision = '0019'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('soft_bounce_streaks',
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('last_delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=False),
    sa.Column('updated_at', drip.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email_key', name=op.f('pk_soft_bounce_streaks'))
    )


def downgrade() -> None:
    op.drop_table('soft_bounce_streaks')
