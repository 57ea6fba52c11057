"""Synthetic cities of any size: headquarters → sub-centers → stations → grids, as GeoJSON.

Demos (`gridcase up --city demo`), tests and benchmarks need a city whose size we choose, from 4 grids to
100,000, that is the same on every machine. The recipe, all deterministic by seed:

- grids are square cells of `cell_m` metres on a lon/lat lattice around `center`; the city is the `grids`
  cells nearest the centre under a seeded, wavy radius, so its outline is an irregular star-shaped blob;
- sub-centers and then stations are cut from the cells by recursive bisection (split the longer side of the
  bounding box at a cell count in proportion to the parts wanted), which keeps them compact and equal in size;
- a parent's geometry is the coverage union of its cells, so children tile parents exactly.

Cell corners come from one rounded lon/lat per lattice line, so neighbours share bit-identical vertices: grids
have no gaps and no overlaps, and the same seed gives byte-identical JSON.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

from services.dispatch.domain.areas import LEVELS, Area, Hierarchy
from services.dispatch.domain.locate import metres_per_degree
from shared.runtime import collector_paused

_DIGITS = 7  # about 1 cm


def generate_city(
    grids: int = 1500,
    stations: int = 40,
    subcenters: int = 6,
    *,
    seed: int = 7,
    center: tuple[float, float] = (102.264, 27.894),
    cell_m: float = 400,
) -> dict[str, dict]:
    """`{"hq": FC, "subcenter": FC, "station": FC, "grid": FC}`, GeoJSON FeatureCollections in WGS84.

    Features carry `properties.id` (e.g. `SC01-ST03-G0042`), `name` and `parent` (None for headquarters).
    `stations` is capped at `grids` and `subcenters` at `stations`, so tiny cities stay valid.
    """
    if grids < 1:
        raise ValueError("a city needs at least one grid")
    with collector_paused():  # a 100,000-grid city is about a million small lists and dicts
        return _generate(grids, stations, subcenters, seed, center, cell_m)


def _generate(grids, stations, subcenters, seed, center, cell_m) -> dict[str, dict]:
    stations = max(1, min(stations, grids))
    subcenters = max(1, min(subcenters, stations))
    rng = np.random.default_rng(seed)
    cols, rows = _city_cells(grids, rng)
    lons, lats = _lattice(cols, rows, center, cell_m)
    boxes = shapely.box(lons[cols], lats[rows], lons[cols + 1], lats[rows + 1])
    lon_at, lat_at, col_of, row_of = lons.tolist(), lats.tolist(), cols.tolist(), rows.tolist()

    per_subcenter = _spread(stations, subcenters)
    features = {level: [] for level in LEVELS}
    for s, sub_cells in enumerate(_bisect(np.arange(grids), cols, rows, per_subcenter), start=1):
        sub_id = f"SC{s:02d}"
        for t, st_cells in enumerate(_bisect(sub_cells, cols, rows, [1] * per_subcenter[s - 1]), start=1):
            st_id = f"{sub_id}-ST{t:02d}"
            st_name = f"第{s}分中心第{t}工作站"
            # number grids north to south, west to east, as one reads a map
            st_cells = st_cells[np.lexsort((cols[st_cells], -rows[st_cells]))]
            width = max(4, len(str(len(st_cells))))
            for g, cell in enumerate(st_cells.tolist(), start=1):
                c, r = col_of[cell], row_of[cell]
                x0, x1, y0, y1 = lon_at[c], lon_at[c + 1], lat_at[r], lat_at[r + 1]
                ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
                features["grid"].append(_feature(f"{st_id}-G{g:0{width}d}", f"{st_name}网格{g:0{width}d}",
                                                 st_id, {"type": "Polygon", "coordinates": [ring]}))
            features["station"].append(_feature(st_id, st_name, sub_id, _geojson(_union(boxes[st_cells]))))
        features["subcenter"].append(_feature(sub_id, f"第{s}分中心", "HQ", _geojson(_union(boxes[sub_cells]))))
    features["hq"].append(_feature("HQ", "综合指挥部", None, _geojson(_union(boxes))))
    return {level: {"type": "FeatureCollection", "features": features[level]} for level in LEVELS}


def hierarchy_from_city(city: dict[str, dict]) -> Hierarchy:
    """The generated (or any `{level: FC}`) city as `Area`s; each feature needs `properties.id` and `parent`."""
    areas = []
    with collector_paused():  # a 100,000-grid city is about a million small lists and dicts
        for level in LEVELS:
            features = city[level]["features"]
            geoms = _shapes([f["geometry"] for f in features])
            for feature, geom in zip(features, geoms, strict=True):
                p = feature["properties"]
                areas.append(Area(p["id"], p.get("name", p["id"]), level, p.get("parent"), geom))
        return Hierarchy(areas)


def write_city(city: dict[str, dict], directory) -> list[Path]:
    """Write `hq.geojson`, `subcenter.geojson`, `station.geojson` and `grid.geojson` into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for level in LEVELS:
        path = directory / f"{level}.geojson"
        path.write_text(json.dumps(city[level], ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        paths.append(path)
    return paths


def _city_cells(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Column and row indices (from 0) of the n lattice cells that form the city's blob."""
    k = np.arange(2, 6)
    amplitude, phase = rng.uniform(0.0, 0.09, k.size), rng.uniform(0.0, 2 * np.pi, k.size)
    half = int(math.ceil(math.sqrt(n / math.pi) / (1 - amplitude.sum()))) + 2
    c, r = np.meshgrid(np.arange(-half, half), np.arange(-half, half))
    c, r = c.ravel(), r.ravel()
    x, y = c + 0.5, r + 0.5
    wave = 1 + (amplitude[:, None] * np.cos(k[:, None] * np.arctan2(y, x) + phase[:, None])).sum(axis=0)
    keep = np.lexsort((c, r, np.hypot(x, y) / wave))[:n]
    cols, rows = c[keep], r[keep]
    return cols - cols.min(), rows - rows.min()


def _lattice(cols, rows, center, cell_m) -> tuple[np.ndarray, np.ndarray]:
    """The rounded longitude of every column line and latitude of every row line, centred on `center`."""
    mx, my = metres_per_degree(center[1])
    ncol, nrow = int(cols.max()) + 2, int(rows.max()) + 2
    lons = center[0] + (np.arange(ncol) - (ncol - 1) / 2) * cell_m / mx
    lats = center[1] + (np.arange(nrow) - (nrow - 1) / 2) * cell_m / my
    return np.round(lons, _DIGITS), np.round(lats, _DIGITS)


def _bisect(cells: np.ndarray, cols, rows, weights: list[int]) -> list[np.ndarray]:
    """Split `cells` into len(weights) compact parts with sizes in proportion to `weights`, in a stable order."""
    if len(weights) == 1:
        return [cells]
    half = len(weights) // 2
    share = sum(weights[:half]) / sum(weights)
    n_first = min(max(round(len(cells) * share), half), len(cells) - (len(weights) - half))
    c, r = cols[cells], rows[cells]
    if np.ptp(c) >= np.ptp(r):
        order = np.lexsort((r, c))
    else:
        order = np.lexsort((c, r))
    ordered = cells[order]
    return _bisect(ordered[:n_first], cols, rows, weights[:half]) + \
        _bisect(ordered[n_first:], cols, rows, weights[half:])


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _union(geoms):
    """The exact union of edge-sharing cells, without the collinear vertices it leaves along straight edges."""
    return shapely.coverage_union_all(geoms).simplify(0)


def _geojson(geom) -> dict:
    geom = shapely.orient_polygons(geom)  # RFC 7946: exterior rings counter-clockwise
    polygons = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    coords = [[np.asarray(p.exterior.coords).tolist()] + [np.asarray(h.coords).tolist() for h in p.interiors]
              for p in polygons]
    if len(coords) == 1:
        return {"type": "Polygon", "coordinates": coords[0]}
    return {"type": "MultiPolygon", "coordinates": coords}


def _feature(area_id: str, name: str, parent: str | None, geometry: dict) -> dict:
    return {"type": "Feature", "properties": {"id": area_id, "name": name, "parent": parent}, "geometry": geometry}


def _shapes(geometries: list[dict]) -> list:
    """shapely geometries for GeoJSON dicts; simple 5-point rectangles (every generated grid) in one vector call."""
    simple = [i for i, g in enumerate(geometries)
              if g["type"] == "Polygon" and len(g["coordinates"]) == 1 and len(g["coordinates"][0]) == 5]
    out = [None] * len(geometries)
    if simple:
        rings = np.array([geometries[i]["coordinates"][0] for i in simple], dtype=float)
        for i, geom in zip(simple, shapely.polygons(rings), strict=True):
            out[i] = geom
    for i, g in enumerate(geometries):
        if out[i] is None:
            out[i] = shape(g)
    return out
