"""PostgreSQL's connection budget: the processes the deploy and the sizing plan run, each within its pool
(``GRIDCASE_DB_POOL_SIZE`` kept open + up to ``GRIDCASE_DB_MAX_OVERFLOW`` more) plus one listening connection
per outbox relay and per escalation API process (its live feed's listener), must fit the server's
``max_connections`` as the deploy sets it (less the connections PostgreSQL reserves for superusers, and
pg_auto_failover's keeper). Computed here from the files themselves — deploy/local/postgres.sh,
deploy/postgres/pg-node.sh, docker-compose.yml, the example settings, shared/db.py and docs/scale.md's worked
example — so that none of them can drift from the others."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared import db
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
#: PostgreSQL's superuser_reserved_connections (default, not changed by the deploy) + pg_auto_failover's
#: keeper on each data node
RESERVED = 3 + 1
#: connections kept free for what runs beside the services: `gridcase` commands, migrations, monitoring
HEADROOM = 10


def max_connections(path: str) -> int:
    found = set(re.findall(r"max_connections = (\d+)", (ROOT / path).read_text()))
    assert len(found) == 1, f"{path}: one max_connections expected, found {found}"
    return int(found.pop())


def deploy_max_connections() -> int:
    local, compose = max_connections("deploy/local/postgres.sh"), max_connections("deploy/postgres/pg-node.sh")
    assert local == compose, "the local servers and compose's PostgreSQL allow different numbers of connections"
    return local


def per_process() -> int:
    assert (Settings.db_pool_size, Settings.db_max_overflow) == (db.POOL_SIZE, db.MAX_OVERFLOW)
    return db.POOL_SIZE + db.MAX_OVERFLOW


def test_the_local_and_compose_servers_allow_the_same_connections_and_compose_uses_the_default_pool():
    deploy_max_connections()
    escalation = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["escalation-api"]
    env = escalation["environment"]
    assert int(env["GRIDCASE_DB_POOL_SIZE"]) + int(env["GRIDCASE_DB_MAX_OVERFLOW"]) == per_process()


def test_compose_as_shipped_fits_max_connections():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    example = dict(line.split("=", 1) for line in (ROOT / "deploy/env/production.env.example").read_text().splitlines()
                   if "=" in line and not line.lstrip().startswith("#"))
    processes = relays = feeds = 0
    for service in compose.values():
        command = service.get("command") or []
        if command[:2] == ["gridcase", "serve"]:
            env = service.get("environment") or {}
            workers = int(env.get("GRIDCASE_WEB_WORKERS") or example.get("GRIDCASE_WEB_WORKERS") or 2)
            processes += workers
            feeds += workers if command[2] == "escalation" else 0  # each API process's live feed listens
        elif command[:2] == ["gridcase", "worker"]:
            processes += 1
            relays += command[2] in ("intake", "dispatch", "escalation")  # a service's worker runs its relay
    assert processes and relays == 3 and feeds
    budget = processes * per_process() + relays + feeds
    assert budget <= deploy_max_connections() - RESERVED - HEADROOM, \
        f"compose: {processes} processes × {per_process()} + {relays} relays + {feeds} live feeds = {budget}"


def test_the_sizing_plans_worked_example_fits_the_deploys_max_connections_and_its_arithmetic_is_right():
    text = (ROOT / "docs" / "scale.md").read_text()
    row = re.search(r"\| connections \| (\d+) API processes \(intake (\d+), dispatch (\d+), escalation (\d+)\) \+ "
                    r"(\d+) workers \+ (\d+) schedulers \+ (\d+) notifier = (\d+) processes × \((\d+) \+ (\d+)\), "
                    r"\+ the (\d+) workers' relay listeners \+ the (\d+) escalation API processes' "
                    r"live-feed listeners = (\d+) "
                    r"\| under `max_connections` = (\d+)", text)
    assert row, "docs/scale.md's worked example has no connections row in the expected form"
    (apis, intake, dispatch, escalation, workers, schedulers, notifier, processes, pool, overflow, relays, feeds,
     total, stated_max) = map(int, row.groups())
    assert apis == intake + dispatch + escalation
    assert processes == apis + workers + schedulers + notifier
    assert (pool, overflow) == (db.POOL_SIZE, db.MAX_OVERFLOW), "the plan counts the shipped pool"
    assert relays == workers, "every service worker runs its relay"
    assert feeds == escalation, "every escalation API process listens for its live feed"
    assert total == processes * (pool + overflow) + relays + feeds
    assert stated_max == deploy_max_connections(), "the plan names the deploy's max_connections"
    assert total <= stated_max - RESERVED - HEADROOM, f"{total} connections do not fit {stated_max}"
