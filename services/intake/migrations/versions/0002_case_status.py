"""What intake knows of a case after it left: its level and owner, from escalation and dispatch events.

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("level", sa.Integer))
        batch.add_column(sa.Column("owner_area_id", sa.String(64)))


def downgrade():
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("owner_area_id")
        batch.drop_column("level")
