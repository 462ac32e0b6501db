"""stats_cache: the staff pages' counts of a large ledger, refreshed by the worker (delivery/counts.py)

Revision ID: 0035
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

import drip.models


revision = '0035'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stats_cache',
        sa.Column('key', sa.String(length=64), primary_key=True),
        sa.Column('value', sa.JSON(), nullable=False),
        sa.Column('computed_at', drip.models.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('stats_cache')
