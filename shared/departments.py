"""A city's functional departments (职能部门): who handles cases beside the geographic owner.

Most cases in a Chinese city are fixed by functional departments — the water company, the power
company, 城管执法 (urban management enforcement), the traffic police, 住建 (housing and construction) —
dispatched by the command center as lead handler (主办) with co-handlers (协办); the grid, station
and sub-center that own the case keep watch and verify on site (DOMAIN.md, 部门联动).

A city keeps its departments in ``departments.toml`` beside its areas (``gridcase departments import
FILE``; ``gridcase up --city DIR`` imports ``DIR/departments.toml``)::

    [[departments]]
    id = "water"                          # 1-64 characters: letters, digits, "_", "-", "."
    zh = "自来水公司"
    en = "Water company"
    serves = "HQ"                         # the area it serves: the city (headquarters) or a sub-center
    leads = ["water_main_burst"]          # categories whose cases it leads (主办)
    co_handles = ["road_collapse"]        # categories whose cases it co-handles (协办)

The file is UTF-8 without a byte-order mark (a BOM or another encoding, e.g. GBK, is refused: the
line is named). A problem is a ``Finding`` naming the line: a duplicate id, an unknown category or
area, a department leading and co-handling the same category, two departments leading one category,
an unknown key. A file with any finding imports nothing.

The policy may name, per category, ``lead_department`` and ``co_departments``; where it does, it
overrides the file for that category (``handlers_of``).
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from shared.fields import LIMITS, storable_problem

#: A department id: what tokens, assignments and statistics carry.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: A department's role on a case: lead handler (主办) or co-handler (协办).
ROLES = ("lead", "co")
_KEYS = {"id", "zh", "en", "serves", "leads", "co_handles"}
#: At most this many departments in one city (a megacity has a few hundred; a bound keeps imports cheap).
MAX_DEPARTMENTS = 2000


@dataclass(frozen=True)
class Department:
    """One functional department: ``id``, Chinese and English names, the area id it ``serves`` (the
    city's headquarters or a sub-center), and the category codes it ``leads`` and ``co_handles``."""

    id: str
    zh: str
    en: str
    serves: str
    leads: tuple[str, ...] = ()
    co_handles: tuple[str, ...] = ()

    def name(self, language: str = "zh") -> str:
        return self.en if language == "en" else self.zh

    def to_dict(self) -> dict:
        return {"id": self.id, "zh": self.zh, "en": self.en, "serves": self.serves, "leads": list(self.leads),
                "co_handles": list(self.co_handles)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Department:
        return cls(data["id"], data["zh"], data["en"], data["serves"], tuple(data.get("leads") or ()),
                   tuple(data.get("co_handles") or ()))


@dataclass(frozen=True)
class Finding:
    """A problem in a departments file: ``FILE:LINE: problem`` (``line`` None: the file as a whole)."""

    file: str
    line: int | None
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}" if self.line else f"{self.file}: {self.problem}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "problem": self.problem}


@dataclass(frozen=True)
class Handlers:
    """Who handles a category's cases beside the owners: the ``lead`` department id (or None) and the
    co-handlers' ids."""

    lead: str | None = None
    co: tuple[str, ...] = field(default_factory=tuple)


def parse_departments(data: bytes | str, *, file: str = "departments.toml", categories: Iterable[str] = (),
                      areas: Mapping[str, str] | None = None) -> tuple[list[Department], list[Finding]]:
    """Read a departments file. ``categories``: the policy's category codes; ``areas``: the active
    hierarchy's area id → level name (``hq``, ``subcenter``, …), or None not to check the areas.

    → (departments in file order, findings); any finding means the file must not be imported."""
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            return [], [Finding(file, 1, "the file starts with a byte-order mark; save it as UTF-8 without BOM")]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            return [], [Finding(file, line, "not UTF-8 (GBK or another encoding?); save the file as UTF-8")]
    else:
        text = data
    if text.startswith("\ufeff"):
        return [], [Finding(file, 1, "the file starts with a byte-order mark; save it as UTF-8 without BOM")]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return [], [Finding(file, int(m.group(1)) if m else None, f"not TOML: {exc}")]
    lines = text.splitlines()
    findings: list[Finding] = []
    unknown_top = set(raw) - {"departments"}
    if unknown_top:
        key = sorted(unknown_top)[0]
        findings.append(Finding(file, _find(lines, rf"^\s*\[*{re.escape(key)}\b"), f"unknown key {key!r}; "
                                "the file holds [[departments]]"))
    entries = raw.get("departments", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return [], [*findings, Finding(file, None, "departments must be written as [[departments]] tables")]
    if len(entries) > MAX_DEPARTMENTS:
        return [], [Finding(file, None, f"{len(entries)} departments; at most {MAX_DEPARTMENTS}")]
    known_categories = set(categories)
    starts = [n + 1 for n, line in enumerate(lines) if re.match(r"^\s*\[\[\s*departments\s*\]\]", line)]
    seen: dict[str, int | None] = {}
    leaders: dict[str, str] = {}
    departments = []
    for index, entry in enumerate(entries):
        start = starts[index] if index < len(starts) else None
        end = starts[index + 1] if index + 1 < len(starts) else len(lines) + 1

        def line_of(key: str, value: str | None = None, start=start, end=end) -> int | None:
            if start is None:
                return None
            at = _find(lines, rf"^\s*{re.escape(key)}\s*=", start - 1, end - 1)
            if value is not None and at is not None:  # the value's own line (an array may span lines)
                closing = _find(lines, r"\]", at - 1, end - 1) or at
                at = _find(lines, re.escape(f'"{value}"'), at - 1, closing) or at
            return at or start

        problems = _entry_problems(entry, line_of)
        if problems:
            findings += [Finding(file, line, problem) for line, problem in problems]
            continue
        dep = Department(entry["id"], entry["zh"].strip(), entry["en"].strip(), entry["serves"],
                         tuple(entry.get("leads", ())), tuple(entry.get("co_handles", ())))
        if dep.id in seen:
            findings.append(Finding(file, line_of("id"), f"department {dep.id!r} appears twice "
                                    f"(first at line {seen[dep.id]})"))
            continue
        seen[dep.id] = line_of("id")
        for code in (*dep.leads, *dep.co_handles):
            if known_categories and code not in known_categories:
                findings.append(Finding(file, line_of("leads" if code in dep.leads else "co_handles", code),
                                        f"department {dep.id!r}: unknown category {code!r}"))
        for code in set(dep.leads) & set(dep.co_handles):
            findings.append(Finding(file, line_of("co_handles", code),
                                    f"department {dep.id!r} both leads and co-handles {code!r}"))
        for code in dep.leads:
            if code in leaders:
                findings.append(Finding(file, line_of("leads", code), f"category {code!r} has two leads: "
                                        f"{leaders[code]!r} and {dep.id!r}"))
            leaders.setdefault(code, dep.id)
        if areas is not None and areas.get(dep.serves) not in ("hq", "subcenter"):
            what = "not an area of the active hierarchy" if dep.serves not in areas else \
                f"a {areas[dep.serves]}, not the city or a sub-center"
            findings.append(Finding(file, line_of("serves"), f"department {dep.id!r} serves {dep.serves!r}: {what}"))
        departments.append(dep)
    return departments, findings


def _entry_problems(entry: dict, line_of) -> list[tuple[int | None, str]]:
    problems = []
    for key in sorted(set(entry) - _KEYS):
        problems.append((line_of(key), f"unknown key {key!r}; one of {', '.join(sorted(_KEYS))}"))
    ident = entry.get("id")
    if not isinstance(ident, str) or not ID_PATTERN.match(ident):
        problems.append((line_of("id"), "a department needs an id: 1-64 letters, digits, '_', '-' or '.'"))
    for key, limit in (("zh", LIMITS["area_name"]), ("en", LIMITS["area_name"]), ("serves", LIMITS["area_id"])):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append((line_of(key), f"a department needs {key!r} (text)"))
        elif len(value) > limit or storable_problem(value):
            problems.append((line_of(key), f"{key!r} must be at most {limit} characters of plain text"))
    for key in ("leads", "co_handles"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            problems.append((line_of(key), f"{key!r} is a list of category codes"))
        elif len(set(value)) != len(value):
            problems.append((line_of(key), f"{key!r} names a category twice"))
    return problems


def _find(lines: list[str], pattern: str, start: int = 0, end: int | None = None) -> int | None:
    rx = re.compile(pattern)
    for number in range(start, len(lines) if end is None else min(end, len(lines))):
        if rx.search(lines[number]):
            return number + 1
    return None


def handlers_of(category: str, departments: Iterable[Department], *, lead: str | None = None,
                co: Iterable[str] | None = None) -> Handlers:
    """The departments that handle ``category``'s cases: the policy's ``lead`` / ``co`` where it names
    them (its per-category ``lead_department`` / ``co_departments``), else the departments file's
    ``leads`` / ``co_handles``. Ids the city does not have are left out (a policy naming a department
    that was removed routes by the file, or to no department)."""
    by_id = {d.id: d for d in departments}
    if lead is None:
        lead = next((d.id for d in by_id.values() if category in d.leads), None)
    co_ids = tuple(co) if co is not None else tuple(d.id for d in by_id.values() if category in d.co_handles)
    return Handlers(lead if lead in by_id else None, tuple(c for c in co_ids if c in by_id and c != lead))


def departments_table(metadata: sa.MetaData) -> sa.Table:
    """A service's copy of the city's departments (from ``departments.published``), declared once for
    every store that keeps one; ``store_departments`` / ``load_departments`` read and write it."""
    return sa.Table(
        "departments", metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("zh", sa.String(200), nullable=False),
        sa.Column("en", sa.String(200), nullable=False),
        sa.Column("serves", sa.String(64), nullable=False),
        sa.Column("leads", sa.JSON, nullable=False),
        sa.Column("co_handles", sa.JSON, nullable=False),
    )


def store_departments(db, table: sa.Table, version: int, items: Iterable[Department]) -> bool:
    """Replace the copy with ``items`` of ``version``; False (nothing changed) if the copy is newer."""
    current = db.execute(sa.select(sa.func.max(table.c.version))).scalar()
    if current is not None and current > version:
        return False
    db.execute(table.delete())
    rows = [{"version": version, **d.to_dict()} for d in items]
    if rows:
        db.execute(table.insert(), rows)
    return True


def load_departments(db, table: sa.Table) -> list[Department]:
    """The copy's departments, by id."""
    return [Department.from_dict(r._mapping) for r in db.execute(sa.select(table).order_by(table.c.id))]
