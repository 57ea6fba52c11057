"""Area hierarchy versions, areas and dispatch records, with the outbox and inbox.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

from shared.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    create_messaging_tables(op)
    op.create_table(
        "area_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
    )
    op.create_table(
        "areas",
        sa.Column("version", sa.Integer, sa.ForeignKey("area_versions.id"), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent", sa.String(64)),
        sa.Column("geometry", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "dispatches",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("start_level", sa.String(16), nullable=False),
        sa.Column("grid_id", sa.String(64)),
        sa.Column("station_id", sa.String(64)),
        sa.Column("subcenter_id", sa.String(64)),
        sa.Column("hq_id", sa.String(64), nullable=False),
        sa.Column("triage", sa.Boolean, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("dispatches")
    op.drop_table("areas")
    op.drop_table("area_versions")
