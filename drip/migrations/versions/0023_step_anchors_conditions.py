"""steps: date anchors ("3 days before {first_visit}") and send-time conditions

Revision ID: 0023
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('steps') as batch:
        batch.add_column(sa.Column('anchor_attribute', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('anchor_offset_minutes', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('condition', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('steps') as batch:
        batch.drop_column('condition')
        batch.drop_column('anchor_offset_minutes')
        batch.drop_column('anchor_attribute')
