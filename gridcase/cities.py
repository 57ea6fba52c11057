"""Where a city's hierarchy comes from: ``demo`` (generated), a directory, or one JSON file of levels."""
from __future__ import annotations

import json
from pathlib import Path

from services.dispatch import handlers
from services.dispatch.citygen import generate_city
from services.dispatch.domain.geojson import load_city_dir


class CityError(ValueError):
    pass


def load_levels(city: str) -> dict[str, dict]:
    """``demo`` → the generated demo city (1 / 6 / 40 / 1,500); a directory → its level files;
    a file → ``{"hq": FC, "subcenter": FC, "station": FC, "grid": FC}``."""
    if city == "demo":
        return generate_city()
    path = Path(city)
    if path.is_dir():
        return load_city_dir(path)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return data.get("levels", data)
    raise CityError(f"--city {city!r}: not 'demo', a directory or a file")


def ensure_city(dispatch, city: str) -> int | None:
    """Import ``city`` into the dispatch service (``shared.bootstrap.Service``) unless a version is active;
    returns the new version, or None."""
    with dispatch.uow() as uow:
        if uow.store.active_version() is not None:
            return None
    result = dispatch.run(handlers.import_areas, handlers.ImportAreas(
        load_levels(city), source=f"gridcase up --city {city}", activate=True))
    if result.version is None:
        errors = "; ".join(f"{f.level} {f.feature_id}: {f.problem} {f.detail}" for f in result.findings[:10])
        raise CityError(f"the city {city!r} does not import: {errors}")
    return result.version
