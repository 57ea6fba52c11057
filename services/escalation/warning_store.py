"""The SQL of early warning (预警): the points each rule watches, the items and the cases in them, and
the hotspot counts of the desk. Reached as ``uow.store.early_warnings``, in the case store's
transaction; the tables are declared with the others in ``services/escalation/store.py``.

The points are read by their rule, category and neighbourhood key (``ix_warning_points_cell``), so a
new report costs a few index lookups and the points of its neighbourhood, however many are stored.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from services.escalation.domain.early_warnings import Item, Point, centre
from services.escalation.store import (
    CaseStore,
    _facts_scope,
    case_facts,
    cases,
    scoped,
    warning_items,
    warning_points,
    warning_reports,
)
from shared.auth import Identity
from shared.db import insert_rows, update_rows
from shared.owners import Owners
from shared.vocabulary import ROLE_SCOPE, Role


def lock_key(rule: str, category: str) -> int:
    """The advisory-lock key of one rule × category (``WarningStore.lock``)."""
    return zlib.crc32(f"gridcase-early-warning:{rule}:{category}".encode())


class WarningStore:
    def __init__(self, store: CaseStore):
        self.store = store

    @property
    def db(self) -> sa.Connection:
        return self.store.db

    # -- points --------------------------------------------------------------------------------------

    def lock(self, keys: Iterable[tuple[str, str]]) -> None:
        """Hold each (rule, category) until the transaction ends, so that two workers never decide on
        one neighbourhood at once. PostgreSQL: transaction-level advisory locks, taken in one order
        (sorted) so two transactions cannot wait on each other; SQLite: its write lock (``BEGIN
        IMMEDIATE``) already lets one writer in at a time."""
        if self.store.postgres:  # one statement; unnest returns the sorted keys in order
            ordered = sorted({lock_key(rule, category) for rule, category in keys})
            if ordered:
                self.db.execute(sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                                {"keys": ordered})

    def near(self, rule: str, category: str, cells: list[str], since: datetime, until: datetime) -> list[Point]:
        """The points of ``rule`` × ``category`` under ``cells`` that may count: those of an active item
        (any age) and those in no item reported in ``[since, until]``."""
        return self.near_many([(rule, category, cells, since, until)])[(rule, category)]

    def near_many(self, wanted: list[tuple[str, str, list[str], datetime, datetime]]
                  ) -> dict[tuple[str, str], list[Point]]:
        """``near`` for several (rule, category, cells, since, until) at once, by (rule, category), each
        point once. PostgreSQL: one statement of one shape and one parameter whatever the number of keys
        (``_NEAR``), so SQLAlchemy and psycopg build and convert it once and the server prepares it;
        SQLite: one statement per 500 keys."""
        p = warning_points.c
        found: dict[tuple[str, str], list[Point]] = {(rule, category): [] for rule, category, *_ in wanted}
        if self.store.postgres:
            if wanted:
                seen: set[int] = set()
                groups = [{"rule": rule, "category": category, "cells": cells, "since": _iso(since),
                           "until": _iso(until)} for rule, category, cells, since, until in wanted]
                for r in self.db.execute(_NEAR, {"wanted": json.dumps(groups)}):
                    if r.id not in seen:  # a point under two keys of one (rule, category) is read twice
                        seen.add(r.id)
                        found[(r.rule, r.category)].append(_point(r))
            return found
        keys = [(rule, category, cell, since, until)
                for rule, category, cells, since, until in wanted for cell in cells]
        for chunk in range(0, len(keys), 500):
            part: dict[tuple, list[str]] = {}
            for rule, category, cell, since, until in keys[chunk:chunk + 500]:
                part.setdefault((rule, category, since, until), []).append(cell)
            where = [sa.and_(p.rule == rule, p.category == category, p.cell.in_(cells),
                             sa.or_(p.held, sa.and_(p.item_id.is_(None), p.at >= since, p.at <= until)))
                     for (rule, category, since, until), cells in part.items()]
            for r in self.db.execute(sa.select(warning_points).where(sa.or_(*where))):
                found[(r.rule, r.category)].append(_point(r))
        return found

    def add_points(self, points: list[tuple[str, str, Point]]) -> None:
        """New points, each ``(rule, category, point)`` with its key (``point.cell``) and item. PostgreSQL:
        one statement of one shape and one JSON parameter (``_ADD_POINTS``), as ``near_many`` reads them."""
        if points and self.store.postgres:
            self.db.execute(_ADD_POINTS, {"points": json.dumps([
                {"rule": rule, "category": category, "cell": p.cell, "case_id": p.case_id, "at": _iso(p.at),
                 "lon": p.lon, "lat": p.lat, "item_id": p.item_id, "held": p.held} for rule, category, p in points])})
        elif points:
            self.db.execute(warning_points.insert(), [
                {"rule": rule, "category": category, "cell": p.cell, "case_id": p.case_id, "at": p.at, "lon": p.lon,
                 "lat": p.lat, "item_id": p.item_id, "held": p.held} for rule, category, p in points])

    def hold(self, points: list[Point]) -> None:
        """Stored points that went into an item (``item_id``, ``held``)."""
        update_rows(self.db, warning_points, [{"id": p.id, "item_id": p.item_id, "held": p.held} for p in points],
                    match="id")

    def prune(self, rules: Iterable[tuple[str, datetime]], limit: int) -> int:
        """Forget, for each (rule, before), up to ``limit`` points of the rule older than ``before`` that
        no active item holds (they can no longer share a window with a new report), in one statement;
        returns how many."""
        p = warning_points.c
        old = [sa.select(p.id).where(p.rule == rule, p.at < before, sa.not_(p.held)).limit(limit).subquery()
               for rule, before in rules]
        if not old:
            return 0
        ids = sa.union_all(*(sa.select(sub.c.id) for sub in old)) if len(old) > 1 else sa.select(old[0].c.id)
        return self.db.execute(warning_points.delete().where(p.id.in_(ids))).rowcount

    # -- items ---------------------------------------------------------------------------------------

    def open_items(self, items: list[Item]) -> None:
        """New items (their cases are added with ``add_reports``)."""
        insert_rows(self.db, warning_items, [_item_columns(item) for item in items])

    def add_reports(self, entries: Iterable[tuple[Item, list[str], int]]) -> None:
        """Cases in items, one statement for all: each entry ``(item, case_ids, start)`` numbers its
        cases from ``start`` (their place in ``item.reports``)."""
        rows = [{"item_id": item.id, "case_id": case_id, "seq": start + n}
                for item, case_ids, start in entries for n, case_id in enumerate(case_ids)]
        insert_rows(self.db, warning_reports, rows)

    def recentre(self, items: list[Item]) -> None:
        """Grown items: their position becomes the mean of their located points (in the order they were
        stored), and they are saved. PostgreSQL reads one row per item, its points' positions as two arrays."""
        if not items:
            return
        p = warning_points.c
        located: dict[str, list[Point]] = {item.id: [] for item in items}
        ids = sorted(located)
        if self.store.postgres:
            query = (sa.select(p.item_id, sa.func.array_agg(aggregate_order_by(p.lon, p.id)),
                               sa.func.array_agg(aggregate_order_by(p.lat, p.id)))
                     .where(p.item_id.in_(ids), p.lon.is_not(None)).group_by(p.item_id))
            for item_id, lons, lats in self.db.execute(query):
                located[item_id] = [Point("", datetime.min, lon, lat) for lon, lat in zip(lons, lats, strict=True)]
        else:
            for row in self.db.execute(sa.select(p.item_id, p.lon, p.lat).where(p.item_id.in_(ids), p.lon.is_not(None))
                                       .order_by(p.id)):
                located[row.item_id].append(Point("", datetime.min, row.lon, row.lat))
        for item in items:
            if located[item.id]:
                item.lon, item.lat = centre(located[item.id])
        self.save(*items)

    def save(self, *items: Item) -> None:
        """Items' status, position, history and update time (one statement for all)."""
        update_rows(self.db, warning_items, [
            {"id": item.id, "status": item.status, "lon": item.lon, "lat": item.lat, "updated_at": item.updated_at,
             "history": item.history} for item in items], match="id")

    def release(self, item_id: str) -> None:
        """A closed item's points hold nothing any more (they never count again, and age out)."""
        self.db.execute(warning_points.update().where(warning_points.c.item_id == item_id).values(held=False))

    def get(self, item_id: str, identity: Identity | None = None, *, for_update: bool = False) -> Item | None:
        """The item (None if unknown or, given ``identity``, outside what it may see); ``for_update``
        locks its row."""
        query = sa.select(warning_items).where(warning_items.c.id == item_id)
        if identity is not None:
            query = visible(query, identity)
        if for_update and self.store.postgres:
            query = query.with_for_update()
        row = self.db.execute(query).first()
        return self._items([row])[0] if row else None

    def get_many(self, item_ids: Iterable[str], *, for_update: bool = False) -> dict[str, Item]:
        """The items of ``item_ids`` that exist, by id, in two reads whatever their number; ``for_update``
        locks their rows (in id order)."""
        ids = sorted(set(item_ids))
        if not ids:
            return {}
        query = sa.select(warning_items).where(warning_items.c.id.in_(ids)).order_by(warning_items.c.id)
        if for_update and self.store.postgres:
            query = query.with_for_update()
        return {item.id: item for item in self._items(self.db.execute(query).all())}

    def page(self, identity: Identity, statuses: list[str], page: int, size: int,
             category: str | None = None) -> tuple[list[Item], int]:
        """One page of the items ``identity`` may see with one of ``statuses``, newest first, and how
        many match in all."""
        c = warning_items.c
        query = visible(sa.select(warning_items).where(c.status.in_(statuses)), identity)
        if category is not None:
            query = query.where(c.category == category)
        total = self.db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = self.db.execute(query.order_by(c.opened_at.desc(), c.id).limit(size).offset((page - 1) * size)).all()
        return self._items(rows), total

    def _items(self, rows) -> list[Item]:
        ids = [r.id for r in rows]
        reports: dict[str, list[str]] = {i: [] for i in ids}
        w = warning_reports.c
        if self.store.postgres and ids:  # one row per item, its cases as an array
            query = (sa.select(w.item_id, sa.func.array_agg(aggregate_order_by(w.case_id, w.seq)))
                     .where(w.item_id.in_(ids)).group_by(w.item_id))
            reports.update({item_id: list(case_ids) for item_id, case_ids in self.db.execute(query)})
        elif ids:
            for r in self.db.execute(sa.select(warning_reports).where(w.item_id.in_(ids)).order_by(w.item_id, w.seq)):
                reports[r.item_id].append(r.case_id)
        return [Item(r.id, r.rule, r.kind, r.category, r.area_id, Owners.from_json(r.areas, require_hq=False),
                     reports[r.id], r.opened_at, r.status, r.lon, r.lat, r.radius_m, r.updated_at, list(r.history))
                for r in rows]

    # -- the desk's hotspots ---------------------------------------------------------------------------

    def hotspots(self, identity: Identity, day_from: date, day_to: date, category: str | None = None) -> list[dict]:
        """The cases ``identity`` may see opened on local dates ``[day_from, day_to)``, counted per grid
        and category: ``[{"area_id", "category", "reports"}]``, the most first (cases in no grid left out)."""
        f = case_facts.c
        count = sa.func.count().label("reports")
        query = (sa.select(f.grid_id, f.category, count)
                 .where(f.opened_day >= day_from, f.opened_day < day_to, f.grid_id.is_not(None),
                        *_facts_scope(identity), *([f.category == category] if category else []))
                 .group_by(f.grid_id, f.category).order_by(count.desc(), f.grid_id, f.category))
        return [{"area_id": r.grid_id, "category": r.category, "reports": r.reports} for r in self.db.execute(query)]


#: PostgreSQL's neighbourhood read (``WarningStore.near_many``): the (rule, category, cells, since, until)
#: wanted arrive as one JSON array of objects (one parameter, encoded by the json module in C, where an
#: array parameter of a thousand cells costs psycopg a Python call per element), each cell is unnested
#: into a key, and each key is looked up in ``ix_warning_points_cell``. ``OFFSET 0`` keeps the lookup a
#: subquery run per key: joined flat, the planner (which guesses 100 × 10 keys) may scan every point.
_NEAR = sa.text("""
    SELECT p.id, p.rule, p.category, p.cell, p.case_id, p.at, p.lon, p.lat, p.item_id, p.held
    FROM json_to_recordset(CAST(:wanted AS json))
             AS g(rule text, category text, cells text[], since timestamptz, until timestamptz)
    CROSS JOIN LATERAL unnest(g.cells) AS k(cell)
    CROSS JOIN LATERAL (
        SELECT * FROM warning_points AS w
        WHERE w.rule = g.rule AND w.category = g.category AND w.cell = k.cell
          AND (w.held OR (w.item_id IS NULL AND w.at >= g.since AND w.at <= g.until))
        OFFSET 0) AS p
""").columns(*warning_points.c)


#: PostgreSQL's insert of new points (``WarningStore.add_points``): the rows as one JSON array of objects.
_ADD_POINTS = sa.text("""
    INSERT INTO warning_points (rule, category, cell, case_id, at, lon, lat, item_id, held)
    SELECT rule, category, cell, case_id, at, lon, lat, item_id, held
    FROM json_to_recordset(CAST(:points AS json)) AS r(rule text, category text, cell text, case_id text,
         at timestamptz, lon double precision, lat double precision, item_id text, held boolean)
""")


def visible(query: sa.Select, identity: Identity) -> sa.Select:
    """Only the items ``identity`` may see: those holding a case it may see (``store.scoped``), so a
    cluster on a boundary shows to both sides; the city's roles see every item."""
    if identity.role != Role.DEPARTMENT and ROLE_SCOPE.get(Role(identity.role)) is None:
        return query
    holding = scoped(sa.select(warning_reports.c.item_id).join(cases, cases.c.id == warning_reports.c.case_id),
                     identity)
    return query.where(warning_items.c.id.in_(holding))


def _iso(at: datetime) -> str:
    """``at`` in ISO 8601 UTC with its offset (a naive time is UTC, as ``shared.db.UTCDateTime`` reads it)."""
    return (at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()


def _point(row) -> Point:
    return Point(row.case_id, row.at, row.lon, row.lat, row.item_id, row.held, row.id, row.cell)


def _item_columns(item: Item) -> dict:
    return {"id": item.id, "rule": item.rule, "kind": item.kind, "category": item.category, "area_id": item.area_id,
            "areas": item.owners.to_json(), "status": item.status, "lon": item.lon, "lat": item.lat,
            "radius_m": item.radius_m, "opened_at": item.opened_at, "updated_at": item.updated_at or item.opened_at,
            "history": item.history}
