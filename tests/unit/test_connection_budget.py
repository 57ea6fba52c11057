"""Each process's connection budget to its database: ``GRIDCASE_DB_POOL_SIZE`` kept open, up to
``GRIDCASE_DB_MAX_OVERFLOW`` more; a value that is not a whole number in range is refused, naming it."""
from __future__ import annotations

import pytest

from shared.config import from_env
from shared.db import make_engine


@pytest.mark.parametrize("name, value", [("GRIDCASE_DB_POOL_SIZE", "0"), ("GRIDCASE_DB_POOL_SIZE", "five"),
                                         ("GRIDCASE_DB_POOL_SIZE", "-3"), ("GRIDCASE_DB_MAX_OVERFLOW", "-1"),
                                         ("GRIDCASE_DB_MAX_OVERFLOW", "2.5"), ("GRIDCASE_DB_POOL_SIZE", "١٢")])
def test_a_budget_that_is_not_a_whole_number_in_range_is_refused_naming_its_variable(tmp_path, name, value):
    with pytest.raises(ValueError, match=name):
        from_env(tmp_path, env={name: value})


def test_the_budget_reaches_the_pool(tmp_path):
    settings = from_env(tmp_path, env={"GRIDCASE_DB_POOL_SIZE": "3", "GRIDCASE_DB_MAX_OVERFLOW": "0"})
    assert (settings.db_pool_size, settings.db_max_overflow) == (3, 0)
    engine = make_engine("postgresql+psycopg://u@127.0.0.1:1/x", pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow)
    assert (engine.pool.size(), engine.pool._max_overflow) == (3, 0)
    defaults = from_env(tmp_path, env={})
    assert (defaults.db_pool_size, defaults.db_max_overflow) == (5, 10)
