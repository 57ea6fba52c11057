"""followed revisions: per column of a report, the revision key of the escalation event that set it last,
and the key a verification was claimed at

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followed_revisions', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('verification_revision', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('verification_revision_step', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('verification_revision_step')
        batch_op.drop_column('verification_revision')
        batch_op.drop_column('followed_revisions')
