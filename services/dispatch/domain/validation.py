"""Checks on an imported area hierarchy, each answering with findings that name a level and a feature.

Everything here works on numpy arrays of shapely geometries, because a city can have 100,000 grids and
shapely 2's vectorized functions (and its STRtree) keep that to seconds. Geometries arrive in one of two
coordinate systems, and each check says which it takes:

- ``lonlat``: WGS84 longitude/latitude, as read from the file (validity, ranges, swapped axes);
- ``local``: the same coordinates scaled to metres around the city's centre by a ``LocalFrame``
  (overlaps, parents, gaps), with areas converted to m² by ``LocalFrame.area``.

Errors block an import; warnings are reported and the import goes on.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import shapely

from .areas import child_level, parent_level

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem found in an import. ``feature_id`` is None for a problem with a whole file or level.

    ``problem`` is a short machine code (``overlap``, ``gap``, ``outside_parent``...) that clients
    match on; ``detail`` is the sentence a person reads; ``other_id`` names the second feature of a
    pair (the sibling of an overlap), so that a map can highlight both.
    """

    level: str
    feature_id: str | None
    problem: str
    severity: str
    detail: str
    other_id: str | None = None

    def __post_init__(self):
        # Whatever a file held, a finding can be printed, sent as JSON and stored: unprintable characters
        # (lone surrogates, controls) are written as \uXXXX escapes and the text is cut to a bounded length.
        for name, limit in (("level", 64), ("feature_id", 80), ("detail", MAX_DETAIL), ("other_id", 80)):
            value = getattr(self, name)
            if value is not None and (len(value) > limit or not value.isprintable()):
                object.__setattr__(self, name, _printable(value, limit))

    def to_dict(self) -> dict:
        return asdict(self)


#: The longest ``detail`` of a finding, in characters.
MAX_DETAIL = 600


def _printable(text: str, limit: int) -> str:
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(text))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def error(level, feature_id, problem, detail, other_id=None) -> Finding:
    return Finding(level, feature_id, problem, ERROR, detail, other_id)


def warning(level, feature_id, problem, detail, other_id=None) -> Finding:
    return Finding(level, feature_id, problem, WARNING, detail, other_id)


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


# --- identity ------------------------------------------------------------------------------------


def check_duplicate_ids(ids_by_level: dict[str, Sequence[str]]) -> list[Finding]:
    """Ids must be unique across the whole hierarchy, not only within a level: cases, tokens and the
    ``Hierarchy`` all look areas up by id alone, so a station and a grid sharing an id would make one
    of them unreachable."""
    findings: list[Finding] = []
    first_level: dict[str, str] = {}
    for level, ids in ids_by_level.items():
        for area_id, count in Counter(ids).items():
            if count > 1:
                findings.append(error(level, area_id, "duplicate_id",
                                      f"id {area_id} is used by {count} {level} features"))
            if area_id in first_level:
                findings.append(error(level, area_id, "duplicate_id",
                                      f"id {area_id} is already used at level {first_level[area_id]}"))
            else:
                first_level[area_id] = level
    return findings


# --- single geometries (lonlat) --------------------------------------------------------------------


def check_geometry(level: str, ids: Sequence[str], geoms: np.ndarray, *, repair: bool):
    """Empty, out-of-range and invalid geometries. Returns ``(geoms, ok, findings)``: the geometries
    (repaired where asked), a mask of those fit for the geometric checks, and the findings.

    Invalid geometry is repaired only when asked, because ``make_valid`` can change an area's shape
    (a bowtie becomes two triangles) and somebody should look at it before cases are routed by it.
    """
    findings: list[Finding] = []
    geoms = geoms.copy()
    empty = shapely.is_empty(geoms)
    bounds = shapely.bounds(geoms)
    finite = np.isfinite(bounds).all(axis=1)
    in_range = finite & (bounds[:, 0] >= -180) & (bounds[:, 2] <= 180) & (bounds[:, 1] >= -90) & (bounds[:, 3] <= 90)
    ok = ~empty & in_range
    for i in np.flatnonzero(empty):
        findings.append(error(level, ids[i], "empty_geometry", f"{level} {ids[i]} has an empty geometry"))
    for i in np.flatnonzero(~empty & ~in_range):
        findings.append(error(level, ids[i], "out_of_range", _out_of_range_detail(level, ids[i], bounds[i])))

    candidates = np.flatnonzero(ok)
    reasons = shapely.is_valid_reason(geoms[candidates])
    for i, reason in zip(candidates, reasons, strict=True):
        if reason == "Valid Geometry":
            continue
        if reason.startswith("Invalid Coordinate"):  # NaN or infinity: nothing to repair
            ok[i] = False
            findings.append(error(level, ids[i], "out_of_range", f"{level} {ids[i]} has coordinates that are not "
                                                                 f"finite numbers: {reason}"))
            continue
        if not repair:
            ok[i] = False
            findings.append(error(level, ids[i], "invalid_geometry",
                                  f"{level} {ids[i]} is not a valid polygon: {reason}"))
            continue
        fixed = polygonal(shapely.make_valid(geoms[i], method="structure", keep_collapsed=False))
        if fixed.is_empty:
            ok[i] = False
            findings.append(error(level, ids[i], "invalid_geometry", f"{level} {ids[i]} is not a valid polygon "
                                                                     f"({reason}) and nothing is left after repair"))
        else:
            geoms[i] = fixed
            findings.append(warning(level, ids[i], "repaired",
                                    f"{level} {ids[i]} was not a valid polygon ({reason}); repaired with make_valid"))
    return geoms, ok, findings


def polygonal(geom):
    """The polygonal parts of a geometry (make_valid may also return lines and points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def _out_of_range_detail(level, area_id, b) -> str:
    if not np.isfinite(b).all():
        return f"{level} {area_id} has coordinates that are not finite numbers"
    text = (f"{level} {area_id} has coordinates x {b[0]:.6g}..{b[2]:.6g}, y {b[1]:.6g}..{b[3]:.6g}, outside WGS84 "
            "(longitude -180..180, latitude -90..90)")
    if np.abs(b).max() > 1000:
        return text + ": they look like projected metres; declare the file's crs or reproject it to WGS84"
    if -90 <= b[0] and b[2] <= 90 and -180 <= b[1] and b[3] <= 180:
        return text + ": they look like (lat, lon) pairs; GeoJSON wants (lon, lat)"
    return text


# --- swapped axes (lonlat) -------------------------------------------------------------------------


def check_swapped(level_ids: dict[str, Sequence[str]], level_geoms: dict[str, np.ndarray],
                  ok: dict[str, np.ndarray]) -> list[Finding]:
    """Flag features whose coordinates look like [lat, lon] instead of GeoJSON's [lon, lat].

    Heuristic: the headquarters' bounding box is where the city is. A feature of a lower level whose
    own bounding box misses it, while the box with x and y exchanged hits it, is reported as swapped.
    The headquarters itself is judged the same way against the sub-centers' box; when it is the one
    that looks swapped, its exchanged box becomes the reference. A whole file swapped consistently
    cannot be told from a city elsewhere and passes (it will then usually fail on ranges or parents).
    Flagged features are taken out of ``ok`` so that they do not also show up as having no parent.
    """
    findings: list[Finding] = []
    hq_box = _union_box(level_geoms["hq"][ok["hq"]])
    below_box = _union_box(level_geoms["subcenter"][ok["subcenter"]])
    if hq_box is None:
        return findings
    reference = hq_box
    if below_box is not None and not _boxes_meet(hq_box, below_box) and _boxes_meet(_swap(hq_box), below_box):
        findings += _flag_swapped("hq", level_ids["hq"], level_geoms["hq"], ok["hq"], below_box)
        reference = _swap(hq_box)
    for level in level_geoms:
        if level != "hq":
            findings += _flag_swapped(level, level_ids[level], level_geoms[level], ok[level], reference)
    return findings


def _flag_swapped(level, ids, geoms, ok, reference) -> list[Finding]:
    b = shapely.bounds(geoms)
    own = _meets(b, reference)
    swapped = _meets(b[:, [1, 0, 3, 2]], reference)
    flagged = ok & ~own & swapped
    ok &= ~flagged
    return [error(level, ids[i], "swapped_coordinates",
                  f"{level} {ids[i]} lies outside the city (x {b[i, 0]:.6g}..{b[i, 2]:.6g}, "
                  f"y {b[i, 1]:.6g}..{b[i, 3]:.6g}) but inside it with x and y exchanged: "
                  "its coordinates look like (lat, lon) pairs; GeoJSON wants (lon, lat)")
            for i in np.flatnonzero(flagged)]


def _union_box(geoms):
    if len(geoms) == 0:
        return None
    b = shapely.bounds(geoms)
    return np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])


def _swap(box):
    return box[[1, 0, 3, 2]]


def _meets(boxes: np.ndarray, box) -> np.ndarray:
    return (boxes[:, 0] <= box[2]) & (boxes[:, 2] >= box[0]) & (boxes[:, 1] <= box[3]) & (boxes[:, 3] >= box[1])


def _boxes_meet(a, b) -> bool:
    return bool(_meets(a[None, :], b)[0])


# --- siblings, parents and gaps (local) ------------------------------------------------------------


@dataclass(frozen=True)
class LocalFrame:
    """Lon/lat scaled to metres around the city's centre: an affine map, not a projection.

    Why not a real projection (UTM, Lambert equal-area)? GeoJSON edges are straight lines in lon/lat,
    and dispatch locates points in lon/lat, so overlaps and gaps must be judged there. A projection
    bends edges; a vertex lying on a neighbour's long straight edge then drifts off it and leaves
    overlaps and slivers that are not in the data (230,000 m² between two sub-centers of a generated
    100,000-grid city, whose outlines have 40 km straight edges). An affine map keeps every line
    straight, so the topology is the file's.

    It is not equal-area: east-west metres shrink with cos(latitude). ``area`` multiplies each
    geometry's planar area by cos(lat)/cos(lat0) at its centroid; against geodesic areas (pyproj
    Geod) that is within 0.003 % for every Berlin planning area and 0.0002 % for the whole city.
    """

    lon0: float
    lat0: float

    @classmethod
    def around(cls, geoms: np.ndarray) -> LocalFrame:
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        return cls((minx + maxx) / 2, (miny + maxy) / 2)

    @property
    def scale(self) -> tuple[float, float]:
        """Metres per degree of longitude and of latitude at lat0 (WGS84 radii of curvature)."""
        a, e2 = 6378137.0, 0.00669437999014
        phi = math.radians(self.lat0)
        w = 1 - e2 * math.sin(phi) ** 2
        n, m = a / math.sqrt(w), a * (1 - e2) / w ** 1.5
        return math.radians(1) * n * math.cos(phi), math.radians(1) * m

    def to_local(self, geoms: np.ndarray) -> np.ndarray:
        kx, ky = self.scale
        return shapely.transform(geoms, lambda xy: (xy - (self.lon0, self.lat0)) * (kx, ky))

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """A point of this frame back in lon/lat."""
        kx, ky = self.scale
        return self.lon0 + x / kx, self.lat0 + y / ky

    def area(self, local: np.ndarray) -> np.ndarray:
        """Areas in m² of geometries in this frame."""
        centroids = shapely.centroid(local)
        y = np.zeros(len(centroids))
        solid = ~shapely.is_empty(centroids)
        y[solid] = shapely.get_y(centroids[solid])
        lat = self.lat0 + y / self.scale[1]
        return shapely.area(local) * np.cos(np.radians(lat)) / math.cos(math.radians(self.lat0))


#: At most this many findings of one problem at one level are listed; the rest are counted in one summary
#: finding. 800 mutually overlapping grids are 319,600 overlapping pairs: listing them all made a 56 MB answer.
MAX_LISTED = 50
#: Pairs whose overlap is measured at a time (intersections are the slow part of an import).
_PAIR_BATCH = 2048
#: Smaller pieces of uncovered land are noise, not land: reprojecting a file from UTM leaves pieces of a
#: few mm² along shared edges, and no located report (GPS: metres) can fall into 10 cm².
MIN_GAP_M2 = 1e-3


#: A tiling's areas meet a handful of neighbours each (bounding boxes: about 4 pairs per area in Berlin's
#: planning areas and in a generated city, 16 neighbours at most): a level whose areas' bounding boxes
#: meet in more than this many pairs per area is piled up,
#: not tiled, and its overlaps are measured without GEOS's coverage validation, whose cost grows faster
#: than the square of a pile's size (3,200 grids piled on each other: 52 s and 463 MB), and without
#: listing every pair it has (n² / 2).
MAX_NEIGHBOURS = 64
#: Areas whose neighbours are looked up in the STRtree at a time (bounds the pairs held at once).
_QUERY_CHUNK = 256


def coverage_suspects(geoms: np.ndarray) -> np.ndarray:
    """Which polygons GEOS's coverage validation flags (an edge that does not match its neighbours'):
    only these can overlap a sibling. None flagged: the level is a valid coverage."""
    return ~shapely.is_empty(shapely.coverage_invalid_edges(geoms))


def neighbour_pairs(tree: shapely.STRtree, geoms: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray] | int:
    """The pairs ``(i, j)``, ``i < j``, of ``geoms`` whose bounding boxes meet (``tree`` indexes ``geoms``),
    looked up a chunk of areas at a time; once there are more than ``cap``, how many were seen by then
    (an int) instead, so a pile's n² / 2 pairs are never all held."""
    firsts, seconds, count = [], [], 0
    for start in range(0, len(geoms), _QUERY_CHUNK):
        i, j = tree.query(geoms[start:start + _QUERY_CHUNK])
        i = i + start
        keep = i < j
        count += int(keep.sum())
        if count > cap:
            return count
        firsts.append(i[keep])
        seconds.append(j[keep])
    empty = np.empty(0, dtype=np.intp)
    return (np.concatenate(firsts) if firsts else empty), (np.concatenate(seconds) if seconds else empty)


def check_overlaps(level: str, ids: Sequence[str], geoms: np.ndarray, tolerance_m2: float,
                   frame: LocalFrame, *, limit: int = MAX_LISTED) -> tuple[list[Finding], bool]:
    """Siblings must not share area: a point in two grids has two owners. → (findings, whether the level
    is a valid coverage: no polygon flagged by GEOS's coverage validation, so its union may be GEOS's
    coverage union).

    Candidate pairs are neighbours from an STRtree, never all pairs, and at most ``MAX_NEIGHBOURS`` per
    area: a level with more is piled up, not tiled, and is judged from the first pairs alone, with a
    finding (problem ``overlaps``) that says so. Intersecting every neighbour pair of a tiling is still
    the slow part (100,000 grids touch in 400,000 pairs), so GEOS's coverage validation goes first: a
    polygon whose every edge matches its neighbours' cannot overlap them, and only pairs with a flagged
    polygon (an overlap, or merely unmatched vertices) are intersected. Pairs are measured in batches
    and measuring stops once ``limit`` overlaps are found: the rest of the candidate pairs are counted
    in one more finding (problem ``overlaps``, ``feature_id`` None), so n grids piled on each other cost
    ``limit`` findings and a bounded number of pairs, not n² of each.
    """
    tree = shapely.STRtree(geoms)
    pairs = neighbour_pairs(tree, geoms, MAX_NEIGHBOURS * len(geoms))
    if isinstance(pairs, int):
        return _overlaps_of_a_pile(level, ids, geoms, tree, tolerance_m2, frame, limit, pairs), False
    suspect = coverage_suspects(geoms)
    a, b = pairs
    keep = suspect[a] | suspect[b]
    a, b = a[keep], b[keep]
    findings, measured = _measure(level, ids, geoms, a, b, tolerance_m2, frame, limit)
    unmeasured = len(a) - measured
    if len(findings) == limit and unmeasured:
        findings.append(error(level, None, "overlaps",
                              f"only the first {limit} overlaps between {level}s are listed; {unmeasured:,} more "
                              f"pairs of {level}s intersect and were not measured (fix the overlaps above first)"))
    return findings, not suspect.any()


def _measure(level, ids, geoms, a, b, tolerance_m2, frame, limit) -> tuple[list[Finding], int]:
    """Measure the overlap of the pairs ``a[k], b[k]`` in batches until ``limit`` exceed ``tolerance_m2``:
    (those findings, how many pairs were measured)."""
    findings: list[Finding] = []
    start = 0
    while start < len(a) and len(findings) < limit:
        i, j = a[start:start + _PAIR_BATCH], b[start:start + _PAIR_BATCH]
        meet = shapely.intersects(geoms[i], geoms[j])
        areas = np.zeros(len(i))
        areas[meet] = frame.area(shapely.intersection(geoms[i[meet]], geoms[j[meet]]))
        for k in np.flatnonzero(areas > tolerance_m2):
            if len(findings) == limit:
                start += int(k)
                break
            findings.append(error(level, ids[i[k]], "overlap",
                                  f"{level} {ids[i[k]]} overlaps {level} {ids[j[k]]} by {areas[k]:,.0f} m² "
                                  f"(tolerance {tolerance_m2:g} m²)", ids[j[k]]))
        else:
            start += len(i)
    return findings, start


def _overlaps_of_a_pile(level, ids, geoms, tree, tolerance_m2, frame, limit, seen) -> list[Finding]:
    """A level whose areas meet more than ``MAX_NEIGHBOURS`` others each on average: its overlaps are
    measured among the first areas' neighbours only, until ``limit`` are found, and one more finding says
    the level is not a tiling and how many pairs at least were not measured."""
    findings: list[Finding] = []
    measured = 0
    for start in range(0, len(geoms), _QUERY_CHUNK):
        i, j = tree.query(geoms[start:start + _QUERY_CHUNK])
        i = i + start
        keep = i < j
        found, done = _measure(level, ids, geoms, i[keep], j[keep], tolerance_m2, frame, limit - len(findings))
        findings += found
        measured += done
        if len(findings) >= limit:
            break
    findings.append(error(level, None, "overlaps",
                          f"the {level}s are piled on each other, not tiled: their bounding boxes meet in more "
                          f"than {MAX_NEIGHBOURS} pairs per {level} ({seen:,} pairs among the first ones); only "
                          f"the first {len(findings)} overlaps are listed; at least {max(seen - measured, 0):,} more "
                          f"pairs of {level}s intersect (their bounding boxes meet) and were not measured (fix the "
                          "overlaps above first)"))
    return findings


def assign_parents(level: str, ids: Sequence[str], geoms: np.ndarray, declared: Sequence[str | None],
                   parent_ids: Sequence[str], parent_geoms: np.ndarray, *, known_parent_ids: set[str],
                   overlap_tolerance_m2: float, outside_tolerance_ratio: float, frame: LocalFrame):
    """Give every child its parent, and check that the child lies inside it.

    A declared ``parent`` property wins; otherwise the parent is the feature of the level above that
    holds most of the child's area. Most children lie wholly inside one parent, which a prepared
    ``covers`` test finds cheaply; only the rest need intersection areas. Returns ``(parent, inside,
    findings)``: the index of each child's parent in ``parent_ids`` (-1 for none) and the area of the
    child inside it, in m².
    """
    upper = parent_level(level) or "parent"
    n = len(ids)
    parent = np.full(n, -1)
    inside = np.zeros(n)
    findings: list[Finding] = []
    child_area = frame.area(geoms)
    index_of = {pid: k for k, pid in enumerate(parent_ids)}
    is_declared = np.array([d is not None for d in declared], dtype=bool)
    for i in np.flatnonzero(is_declared):
        k = index_of.get(declared[i])
        if k is not None:
            parent[i] = k
        elif declared[i] not in known_parent_ids:
            findings.append(error(level, ids[i], "unknown_parent",
                                  f"{level} {ids[i]} names parent {declared[i]}, which is no {upper}", declared[i]))
    if len(parent_geoms) == 0:
        return parent, inside, findings

    shapely.prepare(parent_geoms)
    tree = shapely.STRtree(geoms)
    p, c = tree.query(parent_geoms, predicate="covers")
    covered = np.zeros(n, dtype=bool)
    covered[c] = True
    order = np.lexsort((p, c))
    first = order[np.unique(c[order], return_index=True)[1]]
    wanted = ~is_declared[c[first]]
    parent[c[first][wanted]] = p[first][wanted]

    p, c = tree.query(parent_geoms, predicate="intersects")
    straddles = ~is_declared[c] & ~covered[c]
    p, c = p[straddles], c[straddles]
    areas = frame.area(shapely.intersection(geoms[c], parent_geoms[p]))
    order = np.lexsort((p, -areas, c))
    best = order[np.unique(c[order], return_index=True)[1]]
    best = best[areas[best] > 0]
    parent[c[best]] = p[best]

    assigned = np.flatnonzero(parent >= 0)
    whole = shapely.covers(parent_geoms[parent[assigned]], geoms[assigned])
    inside[assigned[whole]] = child_area[assigned[whole]]
    part = assigned[~whole]
    inside[part] = frame.area(shapely.intersection(geoms[part], parent_geoms[parent[part]]))

    orphans = np.flatnonzero((parent < 0) & ~is_declared)
    if len(orphans):
        (_, nearest), distance = shapely.STRtree(parent_geoms).query_nearest(
            geoms[orphans], return_distance=True, all_matches=False)
        findings += [error(level, ids[i], "no_parent",
                           f"{level} {ids[i]} lies in no {upper}; the nearest, {parent_ids[k]}, is {d:,.0f} m away",
                           parent_ids[k])
                     for i, k, d in zip(orphans, nearest, distance, strict=True)]
    outside = np.clip(child_area - inside, 0, None)
    for i in np.flatnonzero((parent >= 0) & (outside > overlap_tolerance_m2)
                            & (outside > outside_tolerance_ratio * child_area)):
        findings.append(error(level, ids[i], "outside_parent",
                              f"{outside[i]:,.0f} m² ({outside[i] / child_area[i]:.1%}) of {level} {ids[i]} lies "
                              f"outside its {upper} {parent_ids[parent[i]]}", parent_ids[parent[i]]))
    return parent, inside, findings


def summarise_gaps(level: str, land, child_land, frame: LocalFrame) -> list[Finding]:
    """One warning for all the land of ``level`` (``land``: the union of its areas, in ``local``) that none
    of its children (``child_land``, their union) covers, however small each piece: how many pieces, their
    total and largest area in m², and where the largest is (a point inside it, in lon/lat). A report there
    has no owner at the lower level and goes to triage. Berlin's district regions leave 1,016 such slivers
    in its districts, 35,000 m² in all: each too small for a ``gap`` warning of its own, together worth
    knowing. Pieces under ``MIN_GAP_M2`` are noise of unions and reprojection, not land. The caller makes
    each level's union once (``union``): a level is the children of one call and the land of the next."""
    if land is None or child_land is None:
        return []
    uncovered = shapely.get_parts(shapely.difference(land, child_land))
    uncovered = uncovered[~shapely.is_empty(uncovered)]
    if len(uncovered) == 0:
        return []
    areas = frame.area(uncovered)
    pieces = areas >= MIN_GAP_M2
    if not pieces.any():
        return []
    uncovered, areas = uncovered[pieces], areas[pieces]
    largest = int(np.argmax(areas))
    point = shapely.point_on_surface(uncovered[largest])
    lon, lat = frame.to_lonlat(shapely.get_x(point), shapely.get_y(point))
    below = child_level(level) or "child"
    return [warning(level, None, "gaps",
                    f"{len(areas):,} piece(s) of the {level}s are covered by no {below}: {areas.sum():,.0f} m² in "
                    f"all; the largest, {areas[largest]:,.1f} m², is around lon {lon:.6f}, lat {lat:.6f}. "
                    "Reports there go to triage at the next level up")]


def union(geoms: np.ndarray, *, coverage: bool = False):
    """The union of a level's areas (for ``summarise_gaps``), or None when it has none. ``coverage``:
    they form a valid coverage (``coverage_suspects`` flags none), so GEOS's coverage union, which
    only drops the shared edges, gives the same land: 0.11 s against 1.77 s for 100,000 grids."""
    if not len(geoms):
        return None
    return shapely.coverage_union_all(geoms) if coverage else shapely.union_all(geoms)


def cap_findings(findings: Sequence[Finding], limit: int = MAX_LISTED) -> list[Finding]:
    """At most ``limit`` findings per level, problem and severity, in their order; each group over the
    limit gets one more finding (``feature_id`` None) counting the rest, so that a report stays readable
    and its size bounded whatever the file holds (2,000 items that are not features, 100,000 orphans)."""
    counts: Counter = Counter()
    kept: list[Finding] = []
    for finding in findings:
        key = (finding.level, finding.problem, finding.severity)
        counts[key] += 1
        if counts[key] <= limit:
            kept.append(finding)
    for (level, problem, severity), count in counts.items():
        if count > limit:
            kept.append(Finding(level, None, problem, severity,
                                f"{count - limit:,} more {problem} finding(s) at the {level} level are not listed "
                                f"({count:,} in all; the first {limit} are)"))
    return kept


def check_gaps(level: str, ids: Sequence[str], geoms: np.ndarray, child_parent: np.ndarray,
               child_inside: np.ndarray, tolerance_ratio: float, frame: LocalFrame) -> list[Finding]:
    """Warn where a parent's area is not covered by its children: a report there finds no owner at the
    lower level and goes to triage. Only a warning, because real cities have such slivers (about
    34,000 m² of Berlin, 0.004 %, is in no planning area; up to 0.03 % of one district region) and
    locate handles them. Children's areas are summed, which is exact because overlapping siblings are
    errors."""
    area = frame.area(geoms)
    assigned = child_parent >= 0
    covered = np.bincount(child_parent[assigned], weights=child_inside[assigned], minlength=len(ids))
    gap = np.clip(area - covered, 0, None)
    below = child_level(level) or "child"
    return [warning(level, ids[k], "gap",
                    f"{gap[k]:,.0f} m² ({gap[k] / area[k]:.2%}) of {level} {ids[k]} is covered by none of its {below}s")
            for k in np.flatnonzero(gap > tolerance_ratio * area)]

