"""schemathesis against each service's own OpenAPI, over real HTTP: no 5xx, and every response (errors
included, as problem+json) matches what the spec says. Semantic rejections of schema-valid input — an
unknown category, a FeatureCollection that is not one — are the API's job and not counted as failures.

``--mode all`` generates negative data too (wrong types, strings where numbers go, out-of-range values,
unknown parameters, NUL bytes with ``--generation-allow-x00``), and ``negative_data_rejection`` requires
each such request to be refused with a 4xx (413 included: ``schemathesis.toml`` beside this file): the
schema's limits and character rules are the API's."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.system import ROOT, embedded_system, token

#: The checks' settings: a body over an operation's size limit refused with 413 is a rejection too.
CONFIG = ROOT / "tests" / "e2e" / "schemathesis.toml"

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,"
          "missing_required_header,ignored_auth")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz")
    with embedded_system(data) as base:
        yield base, token(data, "admin")


@pytest.mark.parametrize("service", ["intake", "dispatch", "escalation"])
def test_every_endpoint_survives_generated_requests_and_answers_as_documented(system, service):
    base, admin = system
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
         f"{base}/{service}/openapi.json", "--url", base,
         "-H", f"Authorization: Bearer {admin}", "--checks", CHECKS, "--mode", "all", "--generation-allow-x00", "true",
         "--max-examples", "25", "--seed", "7", "--no-color"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:]
