"""a version of each step per language: step_versions.language ("" = the campaign's own language),
versions unique per (step, language, version); campaigns.language (the language its steps were
written in; NULL = the clinic's) and campaigns.titles (its title in the other languages, JSON)

Revision ID: 0031
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0031'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('step_versions') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default=''))
        batch.drop_constraint('uq_step_versions_step_id', type_='unique')
        batch.create_unique_constraint('uq_step_versions_step_id', ['step_id', 'language', 'version'])
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))
        batch.add_column(sa.Column('titles', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('titles')
        batch.drop_column('language')
    op.execute("DELETE FROM step_versions WHERE language <> ''")  # other languages' versions go with it
    with op.batch_alter_table('step_versions') as batch:
        batch.drop_constraint('uq_step_versions_step_id', type_='unique')
        batch.create_unique_constraint('uq_step_versions_step_id', ['step_id', 'version'])
        batch.drop_column('language')
