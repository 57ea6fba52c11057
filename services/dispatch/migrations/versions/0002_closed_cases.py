"""Remember which dispatched cases are closed: a new area version re-routes only open ones.

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True)))


def downgrade():
    with op.batch_alter_table("dispatches") as batch:
        batch.drop_column("closed_at")
