"""report accuracy, client time, unverified location

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accuracy_m', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('client_time', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('location_unverified', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.alter_column('lon',
               existing_type=sa.FLOAT(),
               nullable=True)
        batch_op.alter_column('lat',
               existing_type=sa.FLOAT(),
               nullable=True)
        batch_op.create_index('ix_reports_reporter_seq', ['reporter', 'seq'], unique=False)



def downgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_reporter_seq')
        batch_op.alter_column('lat',
               existing_type=sa.FLOAT(),
               nullable=False)
        batch_op.alter_column('lon',
               existing_type=sa.FLOAT(),
               nullable=False)
        batch_op.drop_column('location_unverified')
        batch_op.drop_column('client_time')
        batch_op.drop_column('accuracy_m')

