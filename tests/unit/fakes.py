"""In-memory stand-ins for a service's unit of work and store, so a use case is tested without a
database (cosmicpython's ``FakeUnitOfWork``). They keep the real unit of work's rules: messages are
published only by a commit of the outermost block, and leaving a block without a commit drops them."""
from __future__ import annotations

from dataclasses import replace

from shared.messages.events import Message
from shared.owners import Owners


class FakeUnitOfWork:
    def __init__(self, store):
        self.store = store
        self.published: list[Message] = []
        self.commits = 0
        self._pending: list[Message] = []
        self._depth = 0

    def __enter__(self):
        if self._depth == 0:
            self._pending = []
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self._pending = []

    def add(self, *messages: Message, cause: Message | None = None) -> None:
        self._pending.extend(messages)

    def commit(self) -> None:
        if self._depth > 1:
            return
        self.published += self._pending
        self._pending = []
        self.commits += 1
        if hasattr(self.store, "flush"):
            self.store.flush()

    def of_type(self, kind) -> list[Message]:
        return [m for m in self.published if isinstance(m, kind)]


class FakeReportStore:
    """Intake's store: reports by id, unique (reporter, key); ``add`` is held until commit, as the real one."""

    def __init__(self):
        self.reports: dict[str, object] = {}
        self.added = False
        self.counted, self.full = {}, None  # no limits here: ``tests/integration/test_limits.py`` counts
        self._pending = None
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, report, allowance=()) -> None:
        assert not allowance, "the fake store counts no limits"
        self._pending = report

    def flush(self) -> None:
        report, self._pending = self._pending, None
        if report is None:
            return
        taken = report.idempotency_key is not None and self.by_key(report.reporter, report.idempotency_key)
        self.added = not taken
        if self.added:
            self.reports[report.id] = report

    def by_key(self, reporter, key):
        return next((r for r in self.reports.values() if (r.reporter, r.idempotency_key) == (reporter, key)), None)

    def open_near(self, category, lon, lat, *, dlon, dlat, since):
        return [r for r in self.reports.values() if r.category == category and r.duplicate_of is None
                and r.status != "closed" and r.reported_at >= since and r.lon is not None
                and abs(r.lon - lon) <= dlon and abs(r.lat - lat) <= dlat]

    def by_id(self, report_id):
        return self.reports.get(report_id)

    def unlink(self, report_id, **values):


        owners = Owners.from_ids({k[:-3]: values.pop(k) for k in list(values)
                                  if k in ("grid_id", "station_id", "subcenter_id")})
        self.reports[report_id] = replace(self.reports[report_id], duplicate_of=None, owners=owners, **values)

    def mine(self, identity, *, page, size):
        own = sorted((r for r in self.reports.values() if r.reporter == identity.user), key=lambda r: -r.seq)
        return own[(page - 1) * size:page * size], len(own)

    def get(self, report_id, identity):
        report = self.reports.get(report_id)
        if report is None or not (report.reporter == identity.user or identity.sees(report.owners)):
            return None
        return report

    def case_revisions(self, case_ids):
        columns = self.__dict__.setdefault("followed_revisions", {})
        return {i: (None if r.case_revision is None else (r.case_revision, r.case_revision_step or 0),
                    dict(columns.get(i, {}))) for i, r in self.reports.items() if i in case_ids}

    def follow_all(self, changes) -> None:
        for case_id, values in changes.items():
            self.follow(case_id, **values)

    def claim_verification(self, report_id, now) -> bool:
        report = self.reports[report_id]
        if report.status != "verifying" or report.verification_sent_at is not None:
            return False
        self.reports[report_id] = replace(report, verification_sent_at=now)
        return True

    def follow(self, case_id, **values) -> None:
        if "followed_revisions" in values:
            self.__dict__.setdefault("followed_revisions", {})[case_id] = dict(values.pop("followed_revisions"))
        if case_id in self.reports:
            report = self.reports[case_id]
            from shared.owners import Owners

            owners = Owners.from_ids({**report.owners.scope(), **{
                k[:-3]: values.pop(k) for k in list(values) if k.endswith("_id") and k != "owner_area_id"}})
            self.reports[case_id] = replace(report, owners=owners, **values)


class FakeDispatchStore:
    def __init__(self, version: int = 1):
        self.version = version
        self.records: dict[str, dict] = {}
        self.hierarchies: dict[int, object] = {}
        self.activated: list[int] = []

    def active_version(self, *, share_lock: bool = False):
        return self.version

    def add(self, records) -> None:
        self.records.update({r["case_id"]: dict(r, closed_at=None, case_revision=None) for r in records})

    def get(self, case_id, identity=None):
        from types import SimpleNamespace

        record = self.records.get(case_id)
        if record is None or (identity is not None and not identity.sees(
                Owners.from_ids({k: record.get(f"{k}_id") for k in ("grid", "station", "subcenter")}))):
            return None
        return SimpleNamespace(**record)

    def open_dispatches(self):
        from types import SimpleNamespace

        return [SimpleNamespace(**r) for r in self.records.values() if r["closed_at"] is None]

    def move(self, case_id, *, version, owners, triage, candidates) -> None:
        self.records[case_id].update(version=version, triage=triage, candidates=candidates, **owners.columns())

    def follow(self, case_id, key, **values) -> bool:
        record = self.records.get(case_id)
        last = record and record["case_revision"] is not None and (record["case_revision"],
                                                                   record.get("case_revision_step") or 0)
        if record is None or (last and (key is None or key <= last)) or (key is None and not values):
            return False
        record.update(values, **({"case_revision": key[0], "case_revision_step": key[1]} if key is not None else {}))
        return True

    def save_hierarchy(self, hierarchy, *, source, summary, now) -> int:
        version = max(self.hierarchies, default=0) + 1
        self.hierarchies[version] = hierarchy
        return version

    def activate(self, version, now) -> None:
        self.version = version
        self.activated.append(version)


class FakeCaseStore:
    """Escalation's store: cases with a revision each, their steps, the area copy."""

    def __init__(self, areas: dict | None = None, departments: list | None = None):
        self.city_departments = list(departments or [])
        self.cases: dict[str, object] = {}
        self.revisions: dict[str, int] = {}
        self.steps: dict[str, list] = {}
        self.areas = areas or {}  # id → (level name, name, parent)
        self.published_areas = None
        self.subscriptions: list = []  # services.escalation.notify.events.Subscription
        self.notification_rows: list[dict] = []  # what the notifications outbox was given
        self.reporters: dict[str, str] = {}
        self.early_warnings = FakeWarningStore(self)
        self.audit: list[dict] = []

    def append_audit(self, entries: list[dict]) -> None:
        self.audit += entries

    def add(self, new, now) -> None:
        for case, outcome, _report, _candidates in new:
            self.cases[case.id] = case
            self.revisions[case.id] = 1
            self.steps[case.id] = list(outcome.steps)

    def save(self, case, outcome, now) -> int:
        from services.escalation.domain import ownership

        ownership.stamp(case, outcome, self.revisions[case.id] + 1)
        self.cases[case.id] = case
        self.revisions[case.id] += 1
        self.steps[case.id] += outcome.steps
        return self.revisions[case.id]

    def save_all(self, changed, now) -> None:
        for case, outcome in changed:
            self.save(case, outcome, now)

    def next_due(self):
        due = [c.due_at for c in self.cases.values() if c.due_at is not None]
        return min(due, default=None)

    def get(self, case_id, identity=None, *, for_update=False):
        import copy

        case = self.cases.get(case_id)
        if identity is not None and identity.role == "department" and case is not None:
            visible = any(a.department == identity.department for a in case.assignments)
        else:
            visible = case is not None and (identity is None or identity.sees(case.owners))
        if not visible:
            return None
        return copy.deepcopy(case)

    def revision(self, case_id) -> int:
        return self.revisions[case_id]

    def claim_due(self, now, limit):
        import copy

        due = sorted((c for c in self.cases.values() if c.is_due(now)), key=lambda c: c.due_at)
        return [copy.deepcopy(c) for c in due[:limit]]

    def replace_areas(self, version, items) -> bool:
        self.published_areas = (version, items)
        return True

    def departments(self):
        return list(self.city_departments)

    def replace_departments(self, version, items) -> bool:
        self.city_departments = list(items)
        return True

    @property
    def notifications(self):
        return FakeNotificationStore(self)

    def hold_notifications(self, rows) -> None:
        self.notification_rows += rows

    def reporter(self, case_id):
        return self.reporters.get(case_id)

    def owners_of(self, area_id):
        from shared.owners import AreaRef, Owners
        from shared.vocabulary import Level

        refs, level, current = {}, None, area_id
        while current in self.areas:
            kind, name, parent = self.areas[current]
            refs[kind] = AreaRef(current, name)
            level = level or Level.of(kind)
            current = parent
        return (level, Owners(**refs)) if level else None


class FakeNotificationStore:
    """The notifications outbox of a ``FakeCaseStore``: its subscriptions and the rows written."""

    def __init__(self, store: FakeCaseStore):
        self.store = store

    def all_subscriptions(self):
        return list(self.store.subscriptions)

    def add(self, rows) -> None:
        self.store.notification_rows += rows

    def taken(self, event_id) -> set:
        return {r["subscription_id"] for r in self.store.notification_rows if r["event_id"] == event_id}


class FakeWarningStore:
    """Escalation's early-warning points and items (``services.escalation.warning_store``), in lists:
    the same contract, found by scanning rather than by index."""

    def __init__(self, cases: FakeCaseStore):
        self.case_store = cases
        self.points: list[dict] = []
        self.items: dict[str, object] = {}
        self.locked: list[tuple[str, str]] = []

    def lock(self, keys) -> None:
        self.locked += sorted(set(keys))

    def near(self, rule, category, cells, since, until):
        from dataclasses import replace

        return [replace(row["point"]) for row in self.points
                if row["rule"] == rule and row["category"] == category and row["point"].cell in cells
                and (row["point"].held or (row["point"].item_id is None and since <= row["point"].at <= until))]

    def add_points(self, points) -> None:
        from dataclasses import replace

        for rule, category, point in points:
            self.points.append({"rule": rule, "category": category,
                                "point": replace(point, id=len(self.points) + 1)})

    def hold(self, points) -> None:
        for point in points:
            stored = next(row["point"] for row in self.points if row["point"].id == point.id)
            stored.item_id, stored.held = point.item_id, point.held

    def near_many(self, wanted):
        return {(rule, category): self.near(rule, category, cells, since, until)
                for rule, category, cells, since, until in wanted}

    def prune(self, rules, limit) -> int:
        old = [row for rule, before in rules for row in [
            row for row in self.points if row["rule"] == rule and row["point"].at < before
            and not row["point"].held][:limit]]
        self.points = [row for row in self.points if row not in old]
        return len(old)

    def open_items(self, items) -> None:
        for item in items:
            self.save(item)

    def add_reports(self, entries) -> None:
        for item, case_ids, start in entries:
            stored = self.items[item.id]
            assert stored.reports[:start] == item.reports[:start]
            stored.reports = stored.reports[:start] + list(case_ids)

    def recentre(self, items) -> None:
        from services.escalation.domain.early_warnings import centre

        for item in items:
            lon, lat = centre(row["point"] for row in self.points if row["point"].item_id == item.id)
            if lon is not None:
                item.lon, item.lat = lon, lat
            self.save(item)

    def save(self, *items) -> None:
        import copy

        for item in items:
            reports = self.items[item.id].reports if item.id in self.items else []
            self.items[item.id] = copy.deepcopy(item)
            self.items[item.id].reports = list(reports)

    def release(self, item_id) -> None:
        for row in self.points:
            if row["point"].item_id == item_id:
                row["point"].held = False

    def get(self, item_id, identity=None, *, for_update=False):
        import copy

        item = self.items.get(item_id)
        if item is None or (identity is not None and not any(
                (case := self.case_store.cases.get(c)) is not None and identity.sees(case.owners)
                for c in item.reports)):
            return None
        return copy.deepcopy(item)

    def get_many(self, item_ids, *, for_update=False):
        return {i: found for i in item_ids if (found := self.get(i)) is not None}

    def page(self, identity, statuses, page, size, category=None):
        found = [self.get(i, identity) for i in self.items]
        found = [i for i in found if i is not None and i.status in statuses and category in (None, i.category)]
        return found[(page - 1) * size:page * size], len(found)
