"""indexes for a ledger of millions of rows (issue 15, "flat cost at a million")

- ix_deliveries_due gains `id`: the claim orders by (due_at, id); PostgreSQL otherwise sorts every
  row due now to find the oldest hundred (SQLite's index already ends in the rowid).
- ix_deliveries_step_id becomes (step_id, status, outcome): the campaign list and page count by
  step, status and outcome from the index alone (an index-only scan, not the table).
- deliveries.sent_at (the dashboard's "sent today / this week", retention),
  deliveries.provider_message_id (bounce reports name the provider's id), events.type
  (unsubscribe events of a campaign), suppressions.created_at (the dashboard's recent returns).

Revision ID: 0029
Revises: 0001
"""
from alembic import op


revision = '0029'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_deliveries_due', table_name='deliveries')
    op.create_index('ix_deliveries_due', 'deliveries', ['status', 'due_at', 'id'])
    op.drop_index('ix_deliveries_step_id', table_name='deliveries')
    op.create_index('ix_deliveries_step_status', 'deliveries', ['step_id', 'status', 'outcome'])
    op.create_index('ix_deliveries_sent_at', 'deliveries', ['sent_at'])
    op.create_index('ix_deliveries_provider_message_id', 'deliveries', ['provider_message_id'])
    op.create_index('ix_events_type', 'events', ['type'])
    op.create_index('ix_suppressions_created_at', 'suppressions', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_suppressions_created_at', table_name='suppressions')
    op.drop_index('ix_events_type', table_name='events')
    op.drop_index('ix_deliveries_provider_message_id', table_name='deliveries')
    op.drop_index('ix_deliveries_sent_at', table_name='deliveries')
    op.drop_index('ix_deliveries_step_status', table_name='deliveries')
    op.create_index('ix_deliveries_step_id', 'deliveries', ['step_id'])
    op.drop_index('ix_deliveries_due', table_name='deliveries')
    op.create_index('ix_deliveries_due', 'deliveries', ['status', 'due_at'])
