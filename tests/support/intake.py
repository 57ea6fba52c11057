"""intake's service built in this process for integration tests, on SQLite or on a PostgreSQL database of
its own."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.servers import create_database, drop_database
from services.intake import bootstrap
from shared.clock import Clock
from shared.config import Settings
from tests.support.system import required_server


@contextmanager
def intake_service(engine: str, tmp_path: Path, clock: Clock, tag: str) -> Iterator[bootstrap.Service]:
    """intake without its web app, on ``engine`` ("sqlite": a file in ``tmp_path``; "postgres": a database
    named ``gridcase_{tag}_…`` created on ``GRIDCASE_TEST_POSTGRES_URL`` and dropped after), with ``clock``
    and a nearby-duplicate radius of 50 m."""
    database = None
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path}/intake.db"
    else:
        admin, database = required_server("GRIDCASE_TEST_POSTGRES_URL"), f"gridcase_{tag}_{uuid.uuid4().hex[:10]}"
        url = create_database(admin, database)
    service = bootstrap.build(Settings(database_urls={"intake": url}, secret="x" * 40, data_dir=tmp_path,
                                       duplicate_radius_m=50), clock, web=False)
    try:
        yield service
    finally:
        service.engine.dispose()
        if database:
            drop_database(admin, database)
