"""Cases and their timelines, with the outbox and inbox.

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
        "cases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("owner_area_id", sa.String(64), nullable=False),
        sa.Column("grid_id", sa.String(64)),
        sa.Column("station_id", sa.String(64)),
        sa.Column("subcenter_id", sa.String(64)),
        sa.Column("hq_id", sa.String(64), nullable=False),
        sa.Column("areas", sa.JSON, nullable=False),
        sa.Column("hours", sa.JSON, nullable=False),
        sa.Column("overdue", sa.Boolean, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The scheduler reads only due rows: its cost follows the cases that are due, not those open.
    op.create_index("ix_cases_deadline", "cases", ["deadline_at"],
                    postgresql_where=sa.text("deadline_at IS NOT NULL"),
                    sqlite_where=sa.text("deadline_at IS NOT NULL"))
    op.create_index("ix_cases_status_level", "cases", ["status", "level"])
    op.create_table(
        "timeline",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("from_level", sa.Integer),
        sa.Column("to_level", sa.Integer),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "escalations",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("escalations")
    op.drop_table("timeline")
    op.drop_table("cases")
