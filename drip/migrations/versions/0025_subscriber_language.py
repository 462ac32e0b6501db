"""a patient's language (a short code such as "en" or "es"; None: the clinic's default)

Revision ID: 0025
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0025'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscribers') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_column('language')
