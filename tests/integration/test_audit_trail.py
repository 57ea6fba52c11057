"""The audit trail in the database: ``gridcase audit verify`` names the first edited, deleted or reordered
row, and a chain rewritten from the start is caught by a checkpoint — on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gridcase.cli import main
from services.escalation import bootstrap, handlers
from services.escalation.store import audit_log
from shared import audit
from shared.clock import FakeClock
from shared.config import Settings
from shared.messages import events
from shared.vocabulary import Level
from tests.support.cases import CALENDAR_HOURS_POLICY

OWNERS = events.Owners(grid=events.AreaRef("G1", "g"), station=events.AreaRef("S1", "s"),
                       subcenter=events.AreaRef("C1", "c"), hq=events.AreaRef("HQ", "h"))


@pytest.fixture(params=["sqlite", "postgres"])
def trail(request, tmp_path):
    """An escalation database with five cases opened and escalated once: ten audit rows."""
    url = f"sqlite:///{tmp_path}/escalation.db" if request.param == "sqlite" else request.getfixturevalue(
        "postgres_url")
    clock = FakeClock()
    service = bootstrap.build(Settings(
        database_urls={"escalation": url}, secret="x", policy_file=str(CALENDAR_HOURS_POLICY)), clock, web=False)
    service.run(handlers.open_cases, [events.CaseDispatched(
        case_id=f"c{i}", number=str(i), category="street_light", severity="normal", reported_at=clock.now(),
        areas_version=1, start_level=Level.GRID, owners=OWNERS) for i in range(5)])
    clock.advance(timedelta(hours=4))
    service.run(handlers.escalate_due, 500)
    yield service, {"GRIDCASE_ESCALATION_DATABASE_URL": url, "GRIDCASE_SECRET": "audit-test-secret-" * 2}
    service.engine.dispose()


def gridcase(env, *args):
    return CliRunner().invoke(main, list(args), env=env)


def test_an_untouched_chain_verifies(trail):
    _, env = trail
    result = gridcase(env, "audit", "verify")
    assert result.exit_code == 0 and "intact: 10 row(s)" in result.output


def test_an_edited_row_is_named(trail):
    service, env = trail
    with service.engine.begin() as db:
        db.execute(audit_log.update().where(audit_log.c.seq == 4).values(actor="someone else"))
    result = gridcase(env, "audit", "verify")
    assert result.exit_code == 1 and "seq 4: edited" in result.output


def test_a_deleted_row_is_named(trail):
    service, env = trail
    with service.engine.begin() as db:
        db.execute(audit_log.delete().where(audit_log.c.seq == 7))
    result = gridcase(env, "audit", "verify")
    assert result.exit_code == 1 and "seq 7: missing" in result.output


def test_two_rows_swapped_are_caught(trail):
    service, env = trail
    with service.engine.begin() as db:
        rows = {r.seq: r for r in db.execute(sa.select(audit_log).where(audit_log.c.seq.in_([2, 3])))}
        for seq, other in ((2, 3), (3, 2)):
            values = {k: v for k, v in rows[other]._asdict().items() if k != "seq"}
            db.execute(audit_log.update().where(audit_log.c.seq == seq).values(**values))
    result = gridcase(env, "audit", "verify")
    assert result.exit_code == 1 and "seq 2" in result.output


def test_a_chain_rewritten_from_the_start_is_caught_by_an_earlier_checkpoint(trail, tmp_path):
    service, env = trail
    checkpoint = gridcase(env, "audit", "checkpoint")
    assert checkpoint.exit_code == 0
    (tmp_path / "checkpoint.json").write_text(checkpoint.output)
    assert json.loads(checkpoint.output)["seq"] == 10
    with service.engine.begin() as db:  # forge every row with fresh, consistent hashes
        rows = db.execute(sa.select(audit_log).order_by(audit_log.c.seq)).all()
        db.execute(audit_log.delete())
        previous = None
        for row in rows:
            previous = audit.append(previous, at=row.at, actor="forger", action=row.action, case_id=row.case_id,
                                    detail=row.detail)
            db.execute(audit_log.insert().values(**vars(previous)))
    assert gridcase(env, "audit", "verify").exit_code == 0, "consistent in itself"
    result = gridcase(env, "audit", "verify", "--checkpoint", str(tmp_path / "checkpoint.json"))
    assert result.exit_code == 1 and "checkpoint" in result.output
