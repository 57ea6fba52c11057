"""The closed loop: a case's full state (frozen time policy, timer token, verification, rework,
extensions, suspension, revision), the report it came from, timeline steps as {type, level,
scheduled_at}, escalations keyed by the deadline that fired them, and the hash-chained audit trail.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("cases") as batch:
        batch.alter_column("hours", new_column_name="policy")  # TimePolicy.from_dict reads the old hours
        batch.add_column(sa.Column("verification_overdue", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("triage", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("candidates", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("resolved_level", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reworks", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("extensions", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("pending_extension", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("held_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("time_left", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("timer_token", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lon", sa.Float(), nullable=True))
        batch.add_column(sa.Column("lat", sa.Float(), nullable=True))
        batch.add_column(sa.Column("reporter", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_cases_due", ["due_at"], postgresql_where=sa.text("due_at IS NOT NULL"),
                           sqlite_where=sa.text("due_at IS NOT NULL"))
    # Before the closed loop an open case was due at its deadline, unless flagged overdue at level 4.
    op.execute("UPDATE cases SET due_at = deadline_at WHERE status = 'open' AND NOT overdue")

    with op.batch_alter_table("timeline") as batch:
        batch.add_column(sa.Column("type", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("level", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE timeline SET type = action, level = coalesce(to_level, from_level, 4)")
    with op.batch_alter_table("timeline") as batch:
        batch.alter_column("type", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("level", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("action")
        batch.drop_column("from_level")
        batch.drop_column("to_level")

    op.create_table(
        "escalations_0003",
        sa.Column("case_id", sa.String(length=36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "level", "scheduled_at"),
    )
    op.execute("INSERT INTO escalations_0003 (case_id, level, scheduled_at, fired_at) "
               "SELECT case_id, level, at, at FROM escalations")
    op.drop_table("escalations")
    op.rename_table("escalations_0003", "escalations")


def downgrade():
    raise NotImplementedError("the closed loop's state cannot be folded back into the open-only schema")
