"""Broker and database URLs that list several nodes: how they are read and checked, what gridcase adds to a
PostgreSQL connection, which node a fresh publisher tries first, and the dead-letter queue's arguments per
RabbitMQ version."""
from __future__ import annotations

import pytest

from shared import bus
from shared.config import broker_nodes, database_hosts, from_env, redact
from shared.db import STATEMENT_TIMEOUT_MS, client_parameters
from shared.pika_publisher import NodeRing

A, B, C = (f"amqp://gridcase:secret@rmq{i}:5672/%2F" for i in (1, 2, 3))


def test_a_broker_url_lists_nodes_separated_by_semicolons_blanks_ignored():
    assert broker_nodes(f"{A};{B}; {C} ;") == (A, B, C)
    assert broker_nodes(A) == (A,)
    assert broker_nodes("memory://localhost/") == ("memory://localhost/",)


@pytest.mark.parametrize("url, says", [
    (" ; ", "no broker node"),
    (f"{A};memory://localhost/", "is not an AMQP URL"),
    (f"{A};rmq2:5672", "is not an AMQP URL"),
    ("redis://localhost:6379/0", "is not an AMQP URL"),
])
def test_a_bad_broker_url_is_refused_naming_the_variable_and_hiding_passwords(tmp_path, url, says):
    with pytest.raises(ValueError, match=f"GRIDCASE_BROKER_URL: .*{says}") as raised:
        from_env(tmp_path, env={"GRIDCASE_BROKER_URL": url})
    assert "secret" not in str(raised.value)


def test_settings_give_the_broker_nodes_in_the_order_listed(tmp_path):
    settings = from_env(tmp_path, env={"GRIDCASE_BROKER_URL": f"{C};{A}"})
    assert settings.broker_nodes == (C, A) and settings.broker_url == f"{C};{A}"


def test_redact_hides_the_password_of_a_url_and_leaves_others_alone():
    assert redact(A) == "amqp://gridcase:***@rmq1:5672/%2F"
    assert redact("amqp://rmq1:5672/") == "amqp://rmq1:5672/"
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"


@pytest.mark.parametrize("url, hosts", [
    ("postgresql+psycopg://u@/gridcase_intake?host=pg1:5432&host=pg2:5433&target_session_attrs=read-write",
     ("pg1:5432", "pg2:5433")),
    ("postgresql://u@/db?host=pg1,pg2&port=5432,6432", ("pg1:5432", "pg2:6432")),
    ("postgresql://u:p@pg1:5444/db", ("pg1:5444",)),
    ("postgresql://u@pg1/db", ("pg1:5432",)),
    ("sqlite:////tmp/x.db", ()),
])
def test_database_urls_name_one_host_or_several_in_libpq_form(url, hosts):
    assert database_hosts(url) == hosts


@pytest.mark.parametrize("url", ["postgresql://u@/db?host=pg1:port", "postgresql://u@/db?host=:5432&host=pg2",
                                 "postgresql://u@/db?host=pg1:99999", "not a url"])
def test_a_bad_database_url_is_refused_naming_its_variable(tmp_path, url):
    with pytest.raises(ValueError, match="GRIDCASE_ESCALATION_DATABASE_URL: "):
        from_env(tmp_path, env={"GRIDCASE_ESCALATION_DATABASE_URL": url})


def test_gridcase_adds_timeouts_keepalives_and_for_several_hosts_the_read_write_target():
    one = client_parameters("postgresql://u@pg1/db")
    assert one["connect_timeout"] == "5" and one["keepalives"] == "1" and int(one["tcp_user_timeout"]) > 0
    assert one["options"] == f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    assert "target_session_attrs" not in one  # one host: whatever it is
    several = client_parameters("postgresql+psycopg://u@/db?host=pg1:5432&host=pg2:5432")
    assert several["target_session_attrs"] == "read-write"
    assert client_parameters("postgresql://u@/db?host=pg1,pg2")["target_session_attrs"] == "read-write"
    assert client_parameters("sqlite:///x.db") == {}


def test_what_the_url_sets_itself_wins():
    own = client_parameters("postgresql://u@/db?host=pg1&host=pg2&connect_timeout=2&target_session_attrs=primary"
                            "&options=-c%20work_mem%3D8MB")
    assert "connect_timeout" not in own and "target_session_attrs" not in own
    assert own["options"] == f"-c work_mem=8MB -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    assert "options" not in client_parameters("postgresql://u@h/db?options=-c%20statement_timeout%3D5s")


def test_a_fresh_publisher_starts_at_the_node_after_the_one_the_last_connection_used():
    ring = NodeRing(f"{A};{B};{C}")
    assert ring.order() == [A, B, C]
    ring.used(A)  # that connection later failed (nack, lost): the next one tries B first
    assert ring.order() == [B, C, A]
    ring.used(C)
    assert ring.order() == [A, B, C]


@pytest.mark.parametrize("version, limit", [(None, None), ("3.10.8", None), ("3.13.7", None), ("4.0.9", -1),
                                            ("4.2.1", -1), (b"4.3.0", -1), ("5.0.0", -1)])
def test_the_dead_letter_queue_has_no_delivery_limit_on_rabbitmq_4_and_no_argument_before(version, limit):
    arguments = bus.dead_letter_queue("amqp://rmq1//", version).queue_arguments
    assert arguments["x-queue-type"] == "quorum"
    assert arguments.get("x-delivery-limit") == limit  # on 3.x, -1 would dead-letter a letter at its first return
    assert bus.dead_letter_queue("memory://", "4.0.0").queue_arguments == {}


def test_heartbeats_are_at_most_15_seconds():
    assert 0 < bus.HEARTBEAT <= 15
    assert bus.connect(A).heartbeat == bus.HEARTBEAT
    assert bus.connect(f"{A};{B}").alt == [A, B]
