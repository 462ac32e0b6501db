"""worker heartbeats: which workers are alive, for /healthz and the staff pages

Revision ID: 0012
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import drip.models


revision = '0012'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('worker_heartbeats',
    sa.Column('worker_id', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('started_at', drip.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_beat_at', drip.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sent', sa.Integer(), nullable=False),
    sa.Column('sent_total', sa.BigInteger(), nullable=False),
    sa.Column('stopped_at', drip.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_worker_heartbeats'))
    )
    op.create_index(op.f('ix_worker_heartbeats_last_beat_at'), 'worker_heartbeats', ['last_beat_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_worker_heartbeats_last_beat_at'), table_name='worker_heartbeats')
    op.drop_table('worker_heartbeats')
