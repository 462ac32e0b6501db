"""campaign cadence: business-day spacing and a fixed local send time

Revision ID: 0018
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('business_days', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('send_time', sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('send_time')
        batch.drop_column('business_days')
