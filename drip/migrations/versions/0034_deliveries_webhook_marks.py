"""deliveries.hooks_until / hooks_completed: email.sent (and enrollment.completed) events are
written by the webhook job from the ledger, not inside the sending record (webhooks/derived.py)

The record marks each sent row with the highest webhook endpoint id that wanted these events at
that moment (NULL: none did, nothing to write) and whether the send completed its enrollment;
the webhook job writes the outbox rows and clears the mark in one transaction. The partial index
holds only marked rows, so finding them never walks the ledger.

Revision ID: 0034
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0034'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default): no table rebuild on SQLite, no rewrite on PostgreSQL
    op.add_column('deliveries', sa.Column('hooks_until', sa.Integer(), nullable=True))
    op.add_column('deliveries', sa.Column('hooks_completed', sa.Boolean(), nullable=True))
    op.create_index('ix_deliveries_hooks_pending', 'deliveries', ['id'],
                    sqlite_where=sa.text('hooks_until IS NOT NULL'),
                    postgresql_where=sa.text('hooks_until IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_deliveries_hooks_pending', table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('hooks_completed')
        batch.drop_column('hooks_until')
