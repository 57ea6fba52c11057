"""Early warning (预警) as escalation's use cases: the policy's rules (``[[early_warnings]]``,
``shared/policy.py``) evaluated as cases arrive, and staff acknowledging and closing the items.

**When.** ``handlers.open_cases`` hands every batch of dispatched cases to ``reports_arrived`` (each
report with its position and owners) before it stores them; ``handlers.take_action`` hands a reopened
case to ``case_reopened`` (the recurring rules count reopenings). Each rule that watches the report's
category adds one point and reads the points of its neighbourhood only (``domain.early_warnings``: the
cells around the point, or the point's grid), so a report costs the same however many are stored
(``benchmarks/early_warning.py``). A batch is decided at once (``_Batch``): one read of the points
around all its reports per rule × category, the decisions in order in memory, one write of each kind.
Points older than twice a rule's window that no active item holds are pruned as reports arrive, a few
for each new one.

**Two workers, one cluster, one item.** Two escalation workers (or gunicorn's threads) may take two
reports of one cluster at the same moment; each would see the other's point only after it commits, and
both would open an item. So before deciding, a batch locks each (rule, category) it touches until it
commits (``WarningStore.lock``: PostgreSQL advisory locks in one sorted order; on SQLite the write
lock already admits one writer): the second worker then sees the first one's item and joins it. The
lock order is rule × category, then an item's row, then the audit trail's lock — the order staff
actions take too (item row, then audit) — so the two never wait on each other; the audit trail's lock
is taken at commit, after every other (``store.append_audit``).

**The audit trail.** Items are not cases and have no case timeline: their changes (``early_warning.opened``,
``.joined``, ``.acknowledged``, ``.closed``) are rows of the same hash chain with ``case_id`` null and
``detail`` naming the item (``{"item", "rule", "category", "area_id", "reports"}`` or ``{"item", "note"}``).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.escalation.domain.early_warnings import ACTIVE, Item, Point, cell, cells_near, decide, opened_item
from services.escalation.domain.timeline import Outcome, StepType
from services.escalation.notify.events import Addressee
from services.escalation.notify.outbox import enqueue
from shared import logs
from shared.auth import Identity
from shared.clock import Clock, isoformat
from shared.messages import events
from shared.owners import Owners
from shared.policy import EarlyWarningRule, Policy
from shared.uow import UnitOfWork
from shared.vocabulary import Role

log = logs.get("gridcase.early_warning")
#: Stale points pruned per new point: more than one, so the table shrinks back after a burst.
PRUNE_PER_POINT = 4


@dataclass(frozen=True)
class Arrival:
    """A report (or a case reopened) as the rules see it: its case, category, time (UTC), owners and
    position (degrees WGS84; None when it has none that places the incident)."""

    case_id: str
    category: str
    at: datetime
    owners: Owners
    lon: float | None = None
    lat: float | None = None


def reports_arrived(uow: UnitOfWork, policy: Policy, messages: Iterable[events.CaseDispatched],
                    now: datetime) -> list[Item]:
    """Newly dispatched cases → the rules that watch their categories; returns the items opened. A
    report routed without a usable position (``location_unverified``) counts for recurring rules only."""
    arrivals = []
    for m in messages:
        located = m.location is not None and m.location.lon is not None and not m.location_unverified
        arrivals.append(Arrival(m.case_id, m.category, m.reported_at, m.owners,
                                m.location.lon if located else None, m.location.lat if located else None))
    return evaluate(uow, policy, arrivals, now)


def case_reopened(uow: UnitOfWork, policy: Policy | None, case, outcome: Outcome, now: datetime) -> list[Item]:
    """A staff action's outcome → a reopening counts for the recurring rules of the case's category."""
    if policy is None or not any(step.type == StepType.REOPENED for step in outcome.steps):
        return []
    return evaluate(uow, policy, [Arrival(case.id, case.category, now, case.owners)], now)


def _applies(rule: EarlyWarningRule, arrival: Arrival) -> bool:
    if rule.kind == "cluster":
        return arrival.lon is not None and arrival.lat is not None
    return arrival.owners.grid is not None


def evaluate(uow: UnitOfWork, policy: Policy, arrivals: list[Arrival], now: datetime) -> list[Item]:
    """Each arrival under each rule that watches it: a new point, and the rule's decision (join an active
    item, open one, or nothing), in order, in the caller's transaction, after locking the rules ×
    categories touched. A batch costs a few statements whatever its size: the points around all its
    reports are read at once per rule × category, decided on in memory (a report sees the ones before it
    in the batch) and written together. Returns the items opened."""
    work = [(rule, a) for a in arrivals for rule in policy.warning_rules(a.category) if _applies(rule, a)]
    if not work:
        return []
    index = uow.store.early_warnings
    index.lock((rule.name, a.category) for rule, a in work)
    groups: dict[tuple[EarlyWarningRule, str], list[Arrival]] = {}
    for rule, a in work:
        groups.setdefault((rule, a.category), []).append(a)
    batch = _Batch(index, now)
    batch.decide([(rule, category, group) for (rule, category), group in groups.items()])
    batch.write(uow)
    index.prune(sorted({(rule.name, now - 2 * timedelta(seconds=rule.window)) for rule, _ in work}),
                PRUNE_PER_POINT * len(work))
    return batch.opened


def _keys(rule: EarlyWarningRule, a: Arrival) -> tuple[str, list[str]]:
    """A point's key under ``rule`` and the keys of its neighbourhood: its cell and the cells around it,
    or its grid."""
    if rule.kind == "cluster":
        return cell(a.lon, a.lat, rule.radius_m), cells_near(a.lon, a.lat, rule.radius_m, rule.radius_m)
    return a.owners.grid.id, [a.owners.grid.id]


class _Batch:
    """The decisions of one batch, kept in memory and written together."""

    def __init__(self, index, now: datetime):
        self.index, self.now = index, now
        self.points: list[tuple[str, str, Point]] = []  # new: (rule, category, point)
        self.changed: list[Point] = []  # stored points that went into an item
        self.opened: list[Item] = []
        self.joined: dict[str, tuple[Item, list[str]]] = {}  # item id → (item, cases it gained)
        self.stored: dict[str, Item | None] = {}  # stored items read (and locked) for joining; None: gone
        self.audit: list[dict] = []

    def decide(self, groups: list[tuple[EarlyWarningRule, str, list[Arrival]]]) -> None:
        """Each group's (rule, category, arrivals) decisions, in order, after one read of the points around
        every group's reports and one of the stored items they may join."""
        placed = {(rule.name, category): [(a, *_keys(rule, a)) for a in group] for rule, category, group in groups}
        stored = self.index.near_many([
            (rule.name, category, sorted({c for _, _, near in placed[(rule.name, category)] for c in near}),
             min(a.at for a in group) - timedelta(seconds=rule.window),
             max(a.at for a in group) + timedelta(seconds=rule.window)) for rule, category, group in groups])
        self._read_items(p.item_id for points in stored.values() for p in points if p.held and p.item_id)
        for rule, category, _ in groups:
            self._decide(rule, category, placed[(rule.name, category)], stored[(rule.name, category)])

    def _decide(self, rule: EarlyWarningRule, category: str, placed: list, stored: list[Point]) -> None:
        window = timedelta(seconds=rule.window)
        by_cell: dict[str, list[Point]] = {}
        for p in stored:
            by_cell.setdefault(p.cell, []).append(p)
        for a, key, near in placed:
            point = Point(a.case_id, a.at, a.lon, a.lat, cell=key)
            others = [p for c in near for p in by_cell.get(c, ())
                      if p.held or (p.item_id is None and abs(p.at - a.at) <= window)]
            decision = decide(rule.kind, point, others, window=window, min_reports=rule.min_reports,
                              radius_m=rule.radius_m)
            if decision.join:
                self._join(decision.join, point)
            elif decision.members:
                self._open(rule, category, a.owners, decision.members)
            by_cell.setdefault(key, []).append(point)
            self.points.append((rule.name, category, point))

    def _open(self, rule: EarlyWarningRule, category: str, owners: Owners, members) -> None:
        item = opened_item(str(uuid.uuid4()), rule, category, owners, members, self.now)
        for member in members:
            if member.id is not None and member.item_id is None:
                self.changed.append(member)
            member.join(item.id)
        self.opened.append(item)
        self.audit.append(_audit(self.now, "system", "early_warning.opened", {
            "item": item.id, "rule": item.rule, "category": item.category, "area_id": item.area_id,
            "reports": list(item.reports)}))

    def _read_items(self, item_ids: Iterable[str]) -> None:
        """The stored items that the points read may join, read and locked at once (not one by one)."""
        opened = {item.id for item in self.opened}
        wanted = {i for i in item_ids if i not in self.stored and i not in opened}
        if wanted:
            found = self.index.get_many(wanted, for_update=True)
            self.stored.update({i: found.get(i) for i in wanted})

    def _join(self, item_id: str, point: Point) -> None:
        """``point`` joins the active item ``item_id`` (one opened in this batch, or a stored one, locked
        until commit); a stored item closed meanwhile takes nothing, and the point stays free."""
        if item_id not in self.joined:
            item = next((i for i in self.opened if i.id == item_id), None)
            if item is None:
                self._read_items([item_id])
                item = self.stored[item_id]
            if item is None or item.status not in ACTIVE:
                return
            self.joined[item_id] = (item, [])
        item, gained = self.joined[item_id]
        gained += item.take([point], self.now)
        point.join(item_id)

    def write(self, uow: UnitOfWork) -> None:
        """The batch's items, points and cases in a few statements; the grown items' positions and the
        audit rows; then each new item is announced."""
        index, opened = self.index, {item.id for item in self.opened}
        index.open_items(self.opened)
        index.add_points(self.points)
        index.hold(self.changed)
        grown = [(item, gained) for item, gained in self.joined.values() if gained]
        index.add_reports([(item, item.reports, 0) for item in self.opened]
                          + [(item, gained, len(item.reports) - len(gained)) for item, gained in grown
                             if item.id not in opened])
        for item, gained in grown:
            self.audit.append(_audit(self.now, "system", "early_warning.joined", {"item": item.id, "reports": gained}))
        index.recentre([item for item, _ in grown])
        if self.audit:
            uow.store.append_audit(self.audit)
        for item in self.opened:
            early_warning_opened(uow, item)


def early_warning_opened(uow: UnitOfWork, item: Item) -> None:
    """The one place a new early-warning item is announced, in the transaction that opened it, so a
    notification exists if and only if the item does: the event ``early_warning`` (``notify.outbox``),
    its id the item's, concerning the areas of the report that raised it (their unit subscriptions hear
    it) and addressed to its sub-center — headquarters for a report outside every sub-center — whose bell
    shows it by default. Sent at once (an item has no case's working calendar to wait for)."""
    owners = item.owners
    addressee = Addressee(owners.subcenter.id, Role.SUBCENTER) if owners.subcenter else \
        Addressee(owners.hq.id, Role.COMMAND) if owners.hq else None
    enqueue(uow, event="early_warning", event_id=item.id, at=item.opened_at, payload={"warning": describe(item)},
            units=[ref.id for ref in (owners.grid, owners.station, owners.subcenter, owners.hq) if ref],
            addressees=[addressee] if addressee else [], fresh=True)
    log.info("early warning opened", item=item.id, rule=item.rule, category=item.category, area_id=item.area_id,
             reports=len(item.reports))


def describe(item: Item) -> dict:
    """An item as ``GET /escalation/v1/warnings`` and its notification show it: ``{"id", "rule", "kind",
    "category", "area_id", "reports", "count", "status", "opened_at", "updated_at", "location" ({"lon",
    "lat"} degrees, or None), "radius_m", "history"}``, times ISO 8601 UTC."""
    located = item.lon is not None and item.lat is not None
    return {"id": item.id, "rule": item.rule, "kind": item.kind, "category": item.category, "area_id": item.area_id,
            "reports": list(item.reports), "count": len(item.reports), "status": item.status,
            "opened_at": isoformat(item.opened_at), "updated_at": isoformat(item.updated_at or item.opened_at),
            "location": {"lon": item.lon, "lat": item.lat} if located else None, "radius_m": item.radius_m,
            "history": list(item.history)}


def _audit(at: datetime, actor: str, action: str, detail: dict) -> dict:
    return {"at": at, "actor": actor, "action": action, "case_id": None, "detail": detail}


@dataclass(frozen=True)
class WarningAction:
    """``POST /escalation/v1/warnings/{id}/actions``: ``acknowledge`` or ``close``, with a note."""

    item_id: str
    action: str
    note: object
    identity: Identity


def act_on_warning(command: WarningAction, uow: UnitOfWork, *, clock: Clock) -> Item:
    """Acknowledge or close an item the caller may see; returns it. ``LookupError`` when it is unknown or
    outside the caller's area (404); the domain's ``InvalidTransition`` (409) or ``InvalidArgument``
    (422 naming ``action`` or ``note``). A closed item's reports never count again."""
    now = clock.now()
    with uow:
        index = uow.store.early_warnings
        item = index.get(command.item_id, command.identity, for_update=True)
        if item is None:
            raise LookupError(command.item_id)
        entry = item.act(command.action, command.identity.user, now, command.note)
        index.save(item)
        if item.status == "closed":
            index.release(item.id)
        uow.store.append_audit([_audit(now, command.identity.user, f"early_warning.{entry['action']}",
                                       {"item": item.id, "note": entry["note"]})])
        uow.commit()
    return item


@dataclass(frozen=True)
class Hotspots:
    """``GET /escalation/v1/stats/hotspots``: cases opened on local dates ``[day_from, day_to)``."""

    identity: Identity
    day_from: date
    day_to: date
    category: str | None = None


def hotspots(query: Hotspots, uow: UnitOfWork, *, time_zone: str) -> dict:
    """Reports per grid and category (the desk's heat map): ``{"from", "to", "time_zone", "rows":
    [{"area_id", "category", "reports"}]}``, in the caller's area scope."""
    with uow:
        rows = uow.store.early_warnings.hotspots(query.identity, query.day_from, query.day_to, query.category)
    return {"from": query.day_from.isoformat(), "to": query.day_to.isoformat(), "time_zone": time_zone, "rows": rows}
