"""Where a city's hierarchy comes from: ``demo`` (generated), a directory, or one JSON file of levels."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from services.dispatch import handlers
from services.dispatch.citygen import generate_city
from services.dispatch.domain.geojson import read_city_dir, read_level_file
from shared.fields import LIMITS

log = logging.getLogger("gridcase")
#: Findings quoted in a ``CityError`` message; the rest are counted.
QUOTED = 10


class CityError(click.ClickException, ValueError):
    """A city that cannot be used: click prints the message (which names files, features and
    problems) and exits 1 — no traceback."""


def load_levels(city: str) -> dict[str, dict]:
    """``demo`` → the generated demo city (1 / 6 / 40 / 1,500); a directory → its level files;
    a file → ``{"hq": FC, "subcenter": FC, "station": FC, "grid": FC}`` (optionally under ``"levels"``).
    Files that cannot be read raise ``CityError`` naming them."""
    if city == "demo":
        return generate_city()
    path = Path(city)
    if path.is_dir():
        levels, findings = read_city_dir(path)
        if findings:
            raise CityError(f"--city {city}: " + _quote(findings))
        return levels
    if path.is_file():
        data, findings = read_level_file(path, "city")
        if findings:
            raise CityError(f"--city {city}: " + _quote(findings))
        if isinstance(data, dict) and isinstance(data.get("levels"), dict):
            data = data["levels"]
        if not isinstance(data, dict):
            raise CityError(f"--city {city}: {path.name} is not an object of levels "
                            '({"hq": FeatureCollection, "subcenter": …, "station": …, "grid": …})')
        return data
    raise CityError(f"--city {city!r}: not 'demo', a directory or a file")


def _quote(findings) -> str:
    quoted = "; ".join(f"{f.level} {f.feature_id or ''} {f.problem}: {f.detail}".replace("  ", " ")
                       for f in findings[:QUOTED])
    return quoted + (f"; and {len(findings) - QUOTED} more" if len(findings) > QUOTED else "")


#: The demo city's departments (the generated city has no folder of its own).
DEMO_DEPARTMENTS = Path(handlers.__file__).with_name("demo") / "departments.toml"


def departments_file(city: str) -> Path | None:
    """The departments file of ``city``: the demo's, ``DIR/departments.toml``, or the one beside a city
    file; None when the city has none."""
    if city == "demo":
        return DEMO_DEPARTMENTS
    path = Path(city)
    found = (path if path.is_dir() else path.parent) / "departments.toml"
    return found if found.is_file() else None


def ensure_departments(dispatch, city: str) -> int | None:
    """Import the city's departments file unless the city has departments already; the new version, or
    None. A file with problems raises ``CityError`` naming its lines — except when its only problem is
    categories the running policy does not have (a city started with a policy of its own,
    ``GRIDCASE_POLICY_FILE``): then nothing is imported and each line is logged as a warning."""
    from gridcase.departments_cli import import_file

    path = departments_file(city)
    if path is None:
        return None
    with dispatch.uow() as uow:
        if uow.store.departments():
            return None
    result = import_file(dispatch, path)
    if result.version is None:
        if all("unknown category" in f.problem for f in result.findings):
            for finding in result.findings:
                log.warning("departments not imported: %s (the policy has no such category)", finding)
            return None
        raise CityError(f"the departments of {city!r} do not import: " + "; ".join(map(str, result.findings[:QUOTED])))
    return result.version


def ensure_city(dispatch, city: str) -> int | None:
    """Import ``city`` into the dispatch service (``shared.bootstrap.Service``) unless a version is active,
    then its departments (``ensure_departments``); the new area version, or None. Warnings are logged; a
    city that does not import raises ``CityError`` quoting its first errors."""
    with dispatch.uow() as uow:
        active = uow.store.active_version()
    if active is not None:
        ensure_departments(dispatch, city)
        return None
    source = f"gridcase up --city {city}"
    source = source if len(source) <= LIMITS["source"] else source[:LIMITS["source"] - 1] + "…"
    result = dispatch.run(handlers.import_areas, handlers.ImportAreas(load_levels(city), source=source,
                                                                      activate=True))
    if result.version is None:
        errors = [f for f in result.findings if f.severity == "error"]
        raise CityError(f"the city {city!r} does not import: {_quote(errors)}")
    for finding in result.findings:  # warnings (capped per problem): e.g. Berlin's slivers in one line
        log.warning("city %s: %s %s %s: %s", city, finding.level, finding.feature_id or "-", finding.problem,
                    finding.detail)
    ensure_departments(dispatch, city)
    return result.version
