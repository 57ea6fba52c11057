"""Revoked tokens over real HTTP: after `gridcase token revoke` (by token or by person), every service —
embedded, and in the production topology with several gunicorn workers on PostgreSQL — answers 401 to the
revoked token within the stated bound (``shared.revocations.REFRESH_SECONDS``), and keeps accepting every
other token."""
from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from shared.revocations import REFRESH_SECONDS
from tests.support.system import GRIDCASE, ROOT, auth, embedded_system, token

#: One endpoint per service that any signed-in role may read.
PATHS = ("/intake/v1/reports?mine=1", "/dispatch/v1/areas?level=hq", "/escalation/v1/cases?page_size=1")


def statuses(urls: dict[str, str], token_: str, times: int = 1) -> dict[str, set[int]]:
    """service → the set of statuses of ``times`` GETs of its endpoint with ``token_``."""
    out = {}
    for path in PATHS:
        service = path.split("/")[1]
        out[service] = {requests.get(urls[service] + path, headers=auth(token_), timeout=10).status_code
                        for _ in range(times)}
    return out


def revoke(data, env, *args) -> None:
    subprocess.run([*GRIDCASE, "token", "revoke", *args, "--data-dir", str(data)], cwd=ROOT, check=True,
                   env=env, capture_output=True, text=True)


def walk(urls: dict[str, str], data, env, mint, times: int = 1) -> None:
    """The scenario, the same in both modes: one token revoked, then every token of a person."""
    victim, sibling, bystander = mint("li"), mint("li"), mint("zhao")
    everywhere = {service: {200} for service in urls}
    assert statuses(urls, victim, times) == everywhere
    revoke(data, env, "--token", victim, "--note", "phone lost")
    time.sleep(REFRESH_SECONDS)  # the stated bound: any request from now on is checked against it
    assert statuses(urls, victim, times) == {service: {401} for service in urls}
    refused = requests.get(urls["escalation"] + PATHS[2], headers=auth(victim), timeout=10)
    assert refused.json()["detail"] == "invalid token: the token has been revoked"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert statuses(urls, sibling, times) == everywhere, "another token of the same person still works"

    revoke(data, env, "--user", "li")
    time.sleep(REFRESH_SECONDS)  # also more than a second: a token issued now is newer than the revocation
    assert statuses(urls, sibling, times) == {service: {401} for service in urls}
    assert statuses(urls, bystander, times) == everywhere
    assert statuses(urls, mint("li"), times) == everywhere, "a token issued after the revocation works"


def test_a_revoked_token_is_refused_by_every_service_embedded(tmp_path):
    with embedded_system(tmp_path) as base:
        urls = {service: base for service in ("intake", "dispatch", "escalation")}
        env = dict(os.environ)
        walk(urls, tmp_path, env, lambda user: token(tmp_path, "command", user=user))


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_a_revoked_token_is_refused_by_every_gunicorn_worker_of_every_service(production):
    """Each service's API here runs three gunicorn workers: each keeps its own copy of the list."""
    data, env = production.data, {**os.environ, **production.env}
    urls = {}
    for service in ("intake", "dispatch", "escalation"):
        urls[service] = production.processes.serve(
            f"serve-{service}-3", GRIDCASE + ["serve", service, "--workers", "3", "--data-dir", str(data)],
            production.env)
        production.processes.wait_ready(f"serve-{service}-3", f"{urls[service]}/{service}/readyz")
    # 12 requests per check: a fresh connection each, spread over the workers by the kernel's accept
    walk(urls, data, env, lambda user: production.token("command", user=user), times=12)
