"""clinic settings edited in the web app; the clinic logo; a list's 'shown to patients' flag

Revision ID: 0024
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'clinic_settings',
        sa.Column('key', sa.String(length=64), primary_key=True),
        sa.Column('value', sa.Text(), nullable=False),
    )
    op.create_table(
        'clinic_assets',
        sa.Column('name', sa.String(length=32), primary_key=True),
        sa.Column('content_type', sa.String(length=32), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
    )
    with op.batch_alter_table('tags') as batch:
        batch.add_column(sa.Column('shown', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('tags') as batch:
        batch.drop_column('shown')
    op.drop_table('clinic_assets')
    op.drop_table('clinic_settings')
