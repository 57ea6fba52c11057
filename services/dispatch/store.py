"""Dispatch's tables (migrations in ``migrations/``) and the queries on them."""
from __future__ import annotations

import shapely
import sqlalchemy as sa

from services.dispatch.domain.areas import Area, Hierarchy
from shared.db import UTCDateTime

metadata = sa.MetaData()

area_versions = sa.Table(
    "area_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("activated_at", UTCDateTime),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)

areas = sa.Table(
    "areas", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
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
)


def active_version(connection: sa.Connection, *, share_lock: bool = False) -> int | None:
    """The active version. With ``share_lock`` (PostgreSQL) an activation waits for this transaction,
    and this transaction waits for an activation in progress: a case is never routed by a version that
    was replaced before it committed (re-routing would miss it)."""
    query = sa.select(area_versions.c.id).where(area_versions.c.active)
    if share_lock and connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    return connection.execute(query).scalar()


def versions(connection: sa.Connection) -> list:
    return connection.execute(sa.select(area_versions).order_by(area_versions.c.id)).all()


def save_hierarchy(connection: sa.Connection, hierarchy: Hierarchy, *, source: str, summary: dict,
                   now) -> int:
    version = connection.execute(area_versions.insert().values(
        created_at=now, active=False, source=source[:200], summary=summary)).inserted_primary_key[0]
    items = list(hierarchy)
    blobs = shapely.to_wkb([a.geometry for a in items])
    connection.execute(areas.insert(), [
        {"version": version, "id": a.id, "level": a.level, "name": a.name, "parent": a.parent,
         "geometry": blob} for a, blob in zip(items, blobs, strict=True)])
    return version


def activate(connection: sa.Connection, version: int, now) -> None:
    connection.execute(area_versions.update().where(area_versions.c.active).values(active=False))
    connection.execute(area_versions.update().where(area_versions.c.id == version)
                       .values(active=True, activated_at=now))


def load_hierarchy(connection: sa.Connection, version: int) -> Hierarchy:
    rows = connection.execute(sa.select(areas).where(areas.c.version == version)).all()
    geometries = shapely.from_wkb([r.geometry for r in rows])
    return Hierarchy(Area(r.id, r.name, r.level, r.parent, g) for r, g in zip(rows, geometries, strict=True))


def open_dispatches(connection: sa.Connection) -> list:
    return connection.execute(sa.select(dispatches).where(dispatches.c.closed_at.is_(None))
                              .order_by(dispatches.c.dispatched_at)).all()


def get_dispatch(connection: sa.Connection, case_id: str):
    return connection.execute(sa.select(dispatches).where(dispatches.c.case_id == case_id)).first()
