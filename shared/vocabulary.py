"""gridcase's words, each defined once: levels, case statuses, timeline step types and roles (the
area-scope rule is beside the owners, in ``shared.owners``).

Every service, message and page speaks these. A level is an ``IntEnum`` (1 = grid worker … 4 =
command headquarters) whose ``.area`` is the name of the area level that owns a case there; a level
travels in every message and response as its number. Statuses and roles are ``StrEnum`` members,
so they compare equal to the plain strings stored in databases and tokens.
"""
from __future__ import annotations

from enum import IntEnum, StrEnum

from shared.words import Invalid


class Level(IntEnum):
    """The four levels of the closed loop (四级闭环), lowest first."""

    GRID = 1  # 网格员: the grid worker
    STATION = 2  # 工作站: the work station
    SUBCENTER = 3  # 分中心: the sub-center
    HQ = 4  # 指挥部: command headquarters

    @property
    def area(self) -> str:
        """The area level owning a case at this level: ``grid``, ``station``, ``subcenter`` or ``hq``."""
        return self.name.lower()

    @property
    def up(self) -> Level | None:
        """The next level up, or None at headquarters."""
        return Level(self + 1) if self < Level.HQ else None

    @classmethod
    def of(cls, value: int | str | Level) -> Level:
        """A level from its number (``2``) or its area name (``"station"``); ``Invalid`` (a ValueError,
        ``level.unknown``) otherwise."""
        if isinstance(value, Level):
            return value
        if isinstance(value, str) and not value.isdigit():
            try:
                return cls[value.upper()]
            except KeyError:
                raise Invalid("level.unknown", value=repr(value), choices=", ".join(AREA_LEVELS)) from None
        try:
            return cls(int(value))
        except (OverflowError, ValueError):  # an infinite number (JSON's 1e400), a number of no level
            raise Invalid("level.unknown", value=repr(value), choices=", ".join(AREA_LEVELS)) from None


#: Area levels from the top (the city) to the bottom (one grid worker's cell), as dispatch walks them.
AREA_LEVELS: tuple[str, ...] = tuple(level.area for level in reversed(Level))
#: Area levels a case can be owned at, below headquarters (the columns a scope is checked on).
SCOPED_AREA_LEVELS: tuple[str, ...] = ("grid", "station", "subcenter")


class Status(StrEnum):
    """Where a case stands. ``reported`` is intake's word for a report no other service has seen yet."""

    REPORTED = "reported"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    VERIFYING = "verifying"
    CLOSED = "closed"
    REWORK = "rework"
    SUSPENDED = "suspended"
    #: 派遣: with a lead functional department; the geographic ladder's clock is held until it feeds back
    DISPATCHED = "dispatched"
    #: 立案: a report waiting for staff to accept it (its own acceptance time limit, no deadline ladder yet)
    PENDING_ACCEPTANCE = "pending_acceptance"
    #: endings other than a verified fix: 不予立案 (refused with a reason), 作废 (voided by command), and
    #: merged into the case it duplicates (a report merged follows that case's status)
    REFUSED = "refused"
    VOIDED = "voided"
    MERGED = "merged"


class StepType(StrEnum):
    """The ``type`` of a case's timeline entry (equal to its plain string); escalation publishes each
    step as the message ``case.<type>``."""

    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RETURNED = "returned"
    TRANSFERRED = "transferred"
    REROUTED = "rerouted"
    RESOLVED = "resolved"
    VERIFIED = "verified"
    REWORKED = "reworked"
    CLOSED = "closed"
    REOPENED = "reopened"
    EXTENSION_REQUESTED = "extension_requested"
    EXTENDED = "extended"
    EXTENSION_REFUSED = "extension_refused"
    SUSPENSION_REQUESTED = "suspension_requested"  # 挂账 asked of the level above
    SUSPENDED = "suspended"
    SUSPENSION_REFUSED = "suspension_refused"
    RESUMED = "resumed"
    OVERDUE = "overdue"
    WARNING = "warning"  # a share of the level's time limit used (pre-deadline warnings)
    # 部门联动: a functional department assigned (派遣), signing for it (签收), feeding back (反馈: done or
    # declined, 退单), or past its own deadline (the case does not climb the ladder for it)
    DEPARTMENT_ASSIGNED = "department_assigned"
    DEPARTMENT_ACKNOWLEDGED = "department_acknowledged"
    DEPARTMENT_DONE = "department_done"
    DEPARTMENT_DECLINED = "department_declined"
    DEPARTMENT_OVERDUE = "department_overdue"
    # 立案: accepted (the deadline ladder starts), refused (不予立案), voided (作废), merged into another case
    # (and, on that case, merged_in), the severity set before acceptance, the acceptance time limit passed
    ACCEPTED = "accepted"
    REFUSED = "refused"
    VOIDED = "voided"
    MERGED = "merged"
    MERGED_IN = "merged_in"
    SEVERITY_SET = "severity_set"
    ACCEPTANCE_OVERDUE = "acceptance_overdue"
    # 承办人: a named person of the unit (or department) holding the case takes it on, or it is unassigned
    ASSIGNED = "assigned"
    # 督办: urged on record, the holder's answer, an answer not given in time
    URGED = "urged"
    URGE_ANSWERED = "urge_answered"
    URGE_OVERDUE = "urge_overdue"


class Role(StrEnum):
    """Who a caller is (the ``role`` claim of a token)."""

    GRID_WORKER = "grid_worker"
    STATION = "station"
    SUBCENTER = "subcenter"
    COMMAND = "command"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    DEPARTMENT = "department"  # a functional department (职能部门): sees and acts on the cases assigned to it

    @property
    def scope(self) -> Level | None:
        """The level whose area a caller of this role is confined to; None: the whole city."""
        return ROLE_SCOPE.get(self)


#: A grid worker sees the cases of one grid, a station of its grids, a sub-center of its stations;
#: command headquarters, supervisors and admins see the whole city.
ROLE_SCOPE: dict[Role, Level] = {Role.GRID_WORKER: Level.GRID, Role.STATION: Level.STATION,
                                 Role.SUBCENTER: Level.SUBCENTER}

