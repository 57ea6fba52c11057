"""Dispatch's tables and every query on them: the only place in dispatch with SQL."""
from __future__ import annotations

import shapely
import sqlalchemy as sa

from services.dispatch.domain.areas import Area, Hierarchy
from shared.auth import Identity
from shared.db import UTCDateTime, insert_rows
from shared.departments import Department, departments_table, load_departments, store_departments
from shared.owners import Owners
from shared.uow import Store
from shared.vocabulary import ROLE_SCOPE, Role

metadata = sa.MetaData()

area_versions = sa.Table(
    "area_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("activated_at", UTCDateTime),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)

areas = sa.Table(
    "areas", metadata,
    sa.Column("version", sa.Integer, sa.ForeignKey("area_versions.id"), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent", sa.String(64)),
    sa.Column("geometry", sa.LargeBinary, nullable=False),
)

dispatches = sa.Table(
    "dispatches", metadata,
    sa.Column("case_id", sa.String(36), primary_key=True),
    sa.Column("number", sa.String(32), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("start_level", sa.String(16), nullable=False),
    sa.Column("grid_id", sa.String(64)),
    sa.Column("station_id", sa.String(64)),
    sa.Column("subcenter_id", sa.String(64)),
    sa.Column("hq_id", sa.String(64), nullable=False),
    sa.Column("triage", sa.Boolean, nullable=False),
    sa.Column("candidates", sa.JSON, nullable=False),
    sa.Column("dispatched_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    # The newest of escalation's events taken (``events.revision_key``): older ones change nothing.
    sa.Column("case_revision", sa.Integer),
    sa.Column("case_revision_step", sa.Integer),
)


#: The city's functional departments (``gridcase departments import``); ``version`` grows with each import.
departments = departments_table(metadata)


def scoped(query: sa.Select, identity: Identity) -> sa.Select:
    """Only the dispatch records ``identity`` may see (``shared.owners.in_scope``, as SQL)."""
    level = ROLE_SCOPE.get(Role(identity.role))
    if level is None:
        return query
    column = dispatches.c[f"{level.area}_id"]
    return query.where(column == identity.area) if identity.area else query.where(sa.false())


def active_area_level(engine: sa.Engine, area_id: str) -> str | None:
    """The level (``grid``, ``station``, ``subcenter``, ``hq``) of ``area_id`` in the active version, or
    None when the active version has no such area (or there is none): for ``gridcase token``, which must
    stay quick (no service is built for it)."""
    with engine.connect() as db:
        return db.execute(sa.select(areas.c.level).join(area_versions, area_versions.c.id == areas.c.version)
                          .where(area_versions.c.active, areas.c.id == area_id)).scalar()


def unit_kind(engine: sa.Engine, subject: str) -> str | None:
    """What ``subject`` is the id of among the city's units: its level in the active area version
    (``grid``, ``station``, ``subcenter``, ``hq``), ``department``, or None. A token whose ``sub`` is a
    unit's id is refused (``shared.auth``, "Unit subjects"); ``gridcase token`` asks the same."""
    level = active_area_level(engine, subject)
    if level:
        return level
    with engine.connect() as db:
        found = db.execute(sa.select(departments.c.id).where(departments.c.id == subject)).first()
    return "department" if found else None


class DispatchStore(Store):
    # -- area versions --------------------------------------------------------------------------

    def active_version(self, *, share_lock: bool = False) -> int | None:
        """The active version. With ``share_lock`` (PostgreSQL) an activation waits for this transaction,
        and this transaction waits for an activation in progress: a case is never routed by a version that
        was replaced before it committed (re-routing would miss it)."""
        query = sa.select(area_versions.c.id).where(area_versions.c.active)
        if share_lock and self.postgres:
            query = query.with_for_update(read=True)
        return self.db.execute(query).scalar()

    def versions(self) -> list:
        return self.db.execute(sa.select(area_versions).order_by(area_versions.c.id)).all()

    def save_hierarchy(self, hierarchy: Hierarchy, *, source: str, summary: dict, now) -> int:
        version = self.db.execute(area_versions.insert().values(
            created_at=now, active=False, source=source[:200], summary=summary)).inserted_primary_key[0]
        items = list(hierarchy)
        blobs = shapely.to_wkb([a.geometry for a in items])
        self.db.execute(areas.insert(), [
            {"version": version, "id": a.id, "level": a.level, "name": a.name, "parent": a.parent,
             "geometry": blob} for a, blob in zip(items, blobs, strict=True)])
        return version

    def activate(self, version: int, now) -> None:
        self.db.execute(area_versions.update().where(area_versions.c.active).values(active=False))
        self.db.execute(area_versions.update().where(area_versions.c.id == version)
                        .values(active=True, activated_at=now))

    def load_hierarchy(self, version: int) -> Hierarchy:
        rows = self.db.execute(sa.select(areas).where(areas.c.version == version)).all()
        geometries = shapely.from_wkb([r.geometry for r in rows])
        return Hierarchy(Area(r.id, r.name, r.level, r.parent, g) for r, g in zip(rows, geometries, strict=True))

    # -- departments ---------------------------------------------------------------------------

    def departments(self) -> list[Department]:
        """The city's departments, by id."""
        return load_departments(self.db, departments)

    def replace_departments(self, items: list[Department]) -> int:
        """Replace the city's departments with ``items``; returns the new version (1, 2, …)."""
        version = (self.db.execute(sa.select(sa.func.max(departments.c.version))).scalar() or 0) + 1
        store_departments(self.db, departments, version, items)
        return version

    def area_levels(self, version: int) -> dict[str, str]:
        """Area id → level name of the areas of ``version`` (to check the areas departments serve)."""
        return dict(self.db.execute(sa.select(areas.c.id, areas.c.level).where(areas.c.version == version)).all())

    # -- dispatch records -----------------------------------------------------------------------

    def add(self, records: list[dict]) -> None:
        insert_rows(self.db, dispatches, records)

    def get(self, case_id: str, identity: Identity | None = None):
        query = sa.select(dispatches).where(dispatches.c.case_id == case_id)
        return self.db.execute(scoped(query, identity) if identity else query).first()

    def open_dispatches(self) -> list:
        return self.db.execute(sa.select(dispatches).where(dispatches.c.closed_at.is_(None))
                               .order_by(dispatches.c.dispatched_at)).all()

    def move(self, case_id: str, *, version: int, owners: Owners, triage: bool,
             candidates: list[dict]) -> None:
        """New owners for a case."""
        self.db.execute(dispatches.update().where(dispatches.c.case_id == case_id).values(
            version=version, triage=triage, candidates=candidates,
            **owners.columns()))

    def follow(self, case_id: str, key: tuple[int, int] | None, **values) -> bool:
        """Take ``values`` (columns) from one of escalation's events whose ``events.revision_key`` is
        ``key``, only if it is newer than the last one taken (None: only while none was); records the key.
        One conditional UPDATE: on PostgreSQL a concurrent one waits for the row and re-checks the
        condition on what that one wrote. Returns whether it applied."""
        c = dispatches.c
        if key is None:
            newer = c.case_revision.is_(None)
        else:
            newer = sa.or_(c.case_revision.is_(None), sa.tuple_(c.case_revision, sa.func.coalesce(
                c.case_revision_step, 0)) < sa.tuple_(sa.literal(key[0]), sa.literal(key[1])))
            values = {**values, "case_revision": key[0], "case_revision_step": key[1]}
        if not values:
            return False
        done = self.db.execute(dispatches.update().where(c.case_id == case_id, newer).values(**values))
        return done.rowcount == 1
