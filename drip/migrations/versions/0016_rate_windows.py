"""rate windows: provider rate limits counted in the database, shared by all workers

Revision ID: 0016
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import drip.models


revision = '0016'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_windows',
    sa.Column('backend', sa.String(length=64), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('period_start', drip.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('cap', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('backend', 'period', name=op.f('pk_rate_windows'))
    )


def downgrade() -> None:
    op.drop_table('rate_windows')
