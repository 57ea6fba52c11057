"""Every operation of every service's OpenAPI names the ``shared.access`` action it performs, so the one
policy decides it (before its query or body is read)."""
from __future__ import annotations

import pytest

from shared.access import ACTIONS
from shared.config import Settings
from shared.web import _api_view


@pytest.mark.parametrize("service", ["intake", "dispatch", "escalation"])
def test_every_operation_of_every_service_names_its_access_action(tmp_path, service):
    import importlib

    bootstrap = importlib.import_module(f"services.{service}.bootstrap")
    built = bootstrap.build(Settings(data_dir=tmp_path, secret="s" * 32), migrate=True)
    try:
        operations = {(rule.rule, method): _api_view(built.app, rule.endpoint, method)
                      for rule in built.app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}
        operations = {key: view for key, view in operations.items() if view is not None}
        assert len(operations) >= 3
        assert [key for key, view in operations.items() if getattr(view, "_access", None) not in ACTIONS] == []
    finally:
        built.engine.dispose()
