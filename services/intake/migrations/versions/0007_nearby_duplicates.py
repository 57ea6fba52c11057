"""nearby duplicates

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duplicate_of', sa.String(length=36), nullable=True))
        batch_op.create_index('ix_reports_category_reported_at', ['category', 'reported_at'], unique=False)



def downgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_category_reported_at')
        batch_op.drop_column('duplicate_of')

