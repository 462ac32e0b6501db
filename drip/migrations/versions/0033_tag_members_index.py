"""subscriber_tags (tag_id, subscriber_id): a tag's patients in id order from the index alone

The staff list filtered by a tag walked every patient in id order and probed the tag for each
(a tag held by 100 of a million patients read the million). With this index the tag's rows drive
the query in id order and stop at the page's last row; it replaces the index on tag_id alone,
which it covers.

Revision ID: 0033
Revises: 0001
"""
from alembic import op


revision = '0033'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_subscriber_tags_tag_subscriber', 'subscriber_tags', ['tag_id', 'subscriber_id'])
    op.drop_index('ix_subscriber_tags_tag_id', table_name='subscriber_tags')


def downgrade() -> None:
    op.create_index('ix_subscriber_tags_tag_id', 'subscriber_tags', ['tag_id'])
    op.drop_index('ix_subscriber_tags_tag_subscriber', table_name='subscriber_tags')
