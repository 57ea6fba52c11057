"""The production topology files agree with each other: docker-compose.yml validates, the gateway routes
to services that exist on the port they serve, the env file carries the settings the services read, and
the RabbitMQ definitions hold the objects and the password the env file uses.

`docker-compose config` validates without a Docker engine. Without the binary the check skips, except
under CI=true, where .ci/run has installed it and a skip would hide a broken file.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from shared.config import database_hosts

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"
ENV_EXAMPLE = ROOT / "deploy" / "env" / "production.env.example"
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
SERVICES = ("intake", "dispatch", "escalation")


def _compose_binary() -> str:
    path = shutil.which("docker-compose")
    if path:
        return path
    reason = "docker-compose is not installed (apt-get install docker-compose)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI=true", pytrace=False)
    pytest.skip(reason)


def _compose_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDCASE_SECRET", "GRIDCASE_AUDIT_KEY",
                                                            "GRIDCASE_ENV_FILE")}
    env.update(extra)
    return env


def _run_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_compose_binary(), "-f", str(COMPOSE), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE.open() as f:
        return yaml.safe_load(f)       # PyYAML's safe loader resolves the `<<` merge keys


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    # drop comments, so that examples in them are not taken for configuration
    return "\n".join(line.split("#", 1)[0] for line in NGINX.read_text().splitlines())


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_compose_file_validates():
    result = _run_compose("config", "-q", env=_compose_env(GRIDCASE_SECRET="compose-test-secret-of-at-least-32-bytes",
                                                           GRIDCASE_AUDIT_KEY="compose-test-audit-key-of-32-bytes!"))
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stdout}\n{result.stderr}"


def test_compose_refuses_to_run_without_an_audit_key():
    result = _run_compose("config", "-q", env=_compose_env(GRIDCASE_SECRET="compose-test-secret-of-at-least-32-bytes"))
    assert result.returncode != 0
    assert "GRIDCASE_AUDIT_KEY" in result.stderr


def test_compose_refuses_to_run_without_a_signing_secret():
    result = _run_compose("config", "-q", env=_compose_env())
    assert result.returncode != 0
    assert "GRIDCASE_SECRET" in result.stderr


def test_compose_has_the_production_topology(compose):
    expected = {"rabbitmq", "pg-monitor", "pg-1", "pg-2", "gateway", "scheduler", "notify"}
    expected |= {f"{s}-{role}" for s in SERVICES for role in ("api", "worker")}
    assert set(compose["services"]) == expected
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown service {dependency}"
    for service in ("rabbitmq", "pg-monitor", "pg-1", "pg-2", *(f"{s}-api" for s in SERVICES)):
        assert "healthcheck" in compose["services"][service], f"{service} has no healthcheck"


def test_gateway_upstreams_are_compose_services_on_the_port_they_serve(compose, nginx_conf):
    upstreams = dict(re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", nginx_conf))
    assert upstreams, "no upstream blocks in deploy/nginx.conf"
    servers = {name: re.findall(r"^\s*server\s+([\w.-]+):(\d+)", body, re.M) for name, body in upstreams.items()}

    services = set(compose["services"])
    for name, hosts in servers.items():
        assert hosts, f"upstream {name} has no server"
        for host, port in hosts:
            assert host in services, f"nginx upstream {name} names {host}, not a compose service"
            command = compose["services"][host].get("command", [])
            assert "--port" in command and command[command.index("--port") + 1] == port, (
                f"{host} does not serve on port {port} (command: {command})")

    targets = re.findall(r"proxy_pass\s+https?://([\w.-]+)", nginx_conf)
    assert targets
    for target in targets:
        assert target in upstreams or target in services, f"proxy_pass to unknown {target}"


def test_gateway_routes_each_prefix_to_its_service(nginx_conf):
    routes = dict(re.findall(r"location\s+(?:[=~]\s+)?(\S+)\s*\{[^}]*?proxy_pass\s+http://([\w.-]+)", nginx_conf))
    upstream_host = {name: re.search(r"server\s+([\w.-]+):", body).group(1)
                     for name, body in re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", nginx_conf)}
    resolved = {prefix: upstream_host.get(target, target) for prefix, target in routes.items()}
    assert resolved == {
        "/intake/": "intake-api",
        "/open311/": "intake-api",
        "/dispatch/": "dispatch-api",
        "/escalation/": "escalation-api",
        "/healthz": "intake-api",
        # the web pages
        "/app/": "intake-api",
        "/board/": "escalation-api",
        "/desk/": "escalation-api",
        "/wall/": "escalation-api",
        # the routes with large bodies (their own client_max_body_size)
        "/dispatch/v1/areas": "dispatch-api",
        "^/intake/v1/reports/[^/]+/photos$": "intake-api",
        "/escalation/v1/stats/replay": "escalation-api",
    }
    # prefixes are passed on unchanged: proxy_pass without a URI part
    assert not re.search(r"proxy_pass\s+http://[\w.-]+(:\d+)?/", nginx_conf)


def test_env_example_carries_the_settings_the_services_read():
    env = _env_file(ENV_EXAMPLE)
    broker = urlsplit(env["GRIDCASE_BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port, broker.path) == ("amqp", "rabbitmq", 5672, "/%2F")
    for service in SERVICES:
        raw = env[f"GRIDCASE_{service.upper()}_DATABASE_URL"]
        url = urlsplit(raw)
        assert (url.scheme, url.path) == ("postgresql+psycopg", f"/{service}")
        assert database_hosts(raw) == ("pg-1:5432", "pg-2:5432"), "both data nodes, so clients find the primary"
    assert float(env["GRIDCASE_TIME_SCALE"]) == 1
    assert "GRIDCASE_SECRET" not in env, "the signing secret must come from the environment, not a file"


def test_postgres_init_creates_one_database_per_service():
    sql = (ROOT / "deploy" / "postgres" / "init.sql").read_text()
    assert re.search(r"CREATE DATABASE %I OWNER gridcase", sql)
    created = set(re.findall(r"'(\w+)'", re.search(r"ARRAY\[([^\]]*)\]", sql).group(1)))
    assert created == set(SERVICES)


def test_rabbitmq_definitions_match_the_broker_url():
    definitions = json.loads(DEFINITIONS.read_text())
    exchanges = {e["name"]: e for e in definitions["exchanges"]}
    assert exchanges["gridcase.events"]["type"] == "topic" and exchanges["gridcase.events"]["durable"]
    assert exchanges["gridcase.dead"]["type"] == "fanout" and exchanges["gridcase.dead"]["durable"]
    queues = {q["name"]: q for q in definitions["queues"]}
    assert queues["gridcase.dead-letter"]["durable"]
    assert queues["gridcase.dead-letter"]["arguments"] == {"x-queue-type": "quorum", "x-delivery-limit": -1}
    # a dead-letter queue declared before (without the argument) loses its default limit of 20 by policy
    [policy] = [p for p in definitions["policies"] if p["definition"].get("delivery-limit") == -1]
    assert re.fullmatch(policy["pattern"], "gridcase.dead-letter") and policy["apply-to"] == "quorum_queues"
    assert not re.search(policy["pattern"], "gridcase.dispatch.locate")
    assert definitions["rabbitmq_version"].startswith("4.")
    assert {"source": "gridcase.dead", "destination": "gridcase.dead-letter"} in [
        {"source": b["source"], "destination": b["destination"]} for b in definitions["bindings"]]

    broker = urlsplit(_env_file(ENV_EXAMPLE)["GRIDCASE_BROKER_URL"])
    users = {u["name"]: u for u in definitions["users"]}
    user = users[broker.username]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    raw = base64.b64decode(user["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert hashlib.sha256(salt + broker.password.encode()).digest() == digest, (
        "definitions.json's password hash does not match the password in the broker URL")
    assert any(p["user"] == broker.username and p["vhost"] == "/" for p in definitions["permissions"])


def test_the_gateway_does_not_compress_the_escalation_api_so_its_etags_stay_strong(nginx_conf):
    # nginx's gzip weakens an ETag it compresses ("3" -> W/"3"), and If-Match compares strongly (RFC 9110 §13.1.1)
    assert not re.search(r"\bgzip\s+on\s*;", nginx_conf), "gzip on somewhere in deploy/nginx.conf"
    [escalation] = re.findall(r"location\s+/escalation/\s*\{([^}]*)\}", nginx_conf)
    assert re.search(r"\bgzip\s+off\s*;", escalation), "location /escalation/ must say gzip off"
