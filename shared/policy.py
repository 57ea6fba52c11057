"""The case policy shared by intake (categories), dispatch (start level) and escalation (time limits).

Read from one TOML file (``GRIDCASE_POLICY_FILE``, default the packaged ``policy.toml``, which
documents every key). It holds:

- **groups and classes** of categories as GB/T 30428.2 groups them: 部件 (``facilities``, city
  components: lamps, manholes, …) and 事件 (``events``, things that happen: dumping, disputes, …),
  each with classes (大类) such as 公用设施 or 市容环境;
- **categories** (小类) with Chinese and English names, their group and class, a default severity,
  optionally a ``unit`` (an area id) that takes all their cases, and what the public sees of them:
  ``public`` (offered through Open311; default false) and ``sensitive`` (positions published rounded);
- **time rules per category × severity**: the start level, the time limit at each of the four
  levels, the verification limit, the warning thresholds and the extension caps. A rule is looked
  up as ``[defaults]`` ← ``[severities.<s>]`` ← the category's own keys ← ``[categories.severities.<s>]``
  (each later table overrides single keys of the earlier);
- **acceptance (立案)**: which reports wait for staff to accept them, per channel (``[needs_acceptance]``:
  a grid worker's phone, staff, the public through Open311) and per category (its own
  ``needs_acceptance``), and the time staff have to decide (the rule key ``acceptance``);
- **the working calendar**: working periods per weekday, the holiday region, whether a year without
  an official calendar file may fall back on statutory rules, and overrides for the whole city and for
  units, inherited down the area tree (``[calendar]``, ``[[calendar.units]]``). The city's time zone is
  a setting (``GRIDCASE_TIME_ZONE``); the official days off are the city's calendar files
  (``shared/timemodel.py``);
- **early-warning rules** (预警, ``[[early_warnings]]``): a ``cluster`` rule raises an item when
  ``min_reports`` reports of one category fall within ``radius_m`` metres of the newest of them in one
  ``window``; a ``recurring`` rule when one grid's reports and reopened cases of one category reach
  ``min_reports`` in its ``window``. A rule names a ``category`` or a ``group`` (then each of the group's
  categories is watched on its own). Escalation evaluates them as cases arrive
  (``services/escalation/early_warnings.py``).

A time limit is ``"4 hours"``, ``"90 minutes"``, ``"6 working_hours"``, ``"2 working_days"`` or a bare
number of hours, at most a year (``shared.timemodel.MAX_LIMIT``). The first policy format (``[levels]`` in
hours and ``hours = {…}`` per category) still loads: ``[levels]`` is read as ``[defaults] levels`` and
``hours`` as the category's ``levels``. Sizes are bounded too: the text (``MAX_TEXT``), its nesting
(``MAX_DEPTH``) and the number of categories, severities, warnings and unit calendars.

Errors are ``PolicyError`` naming the file's line: the parser's position for TOML syntax, and the
line of the offending key (or its category's ``code``) for a rule that does not hold. Escalation
snapshots a case's rule when the case opens, so loading a new policy never changes a case in flight.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from shared.timemodel import (
    REGION,
    UNITS,
    WEEKDAYS,
    Limit,
    Period,
    parse_dates,
    parse_hours,
    parse_limit,
    parse_window,
    toml_position,
)
from shared.vocabulary import AREA_LEVELS, Level
from shared.words import Invalid, LocatedError, Message

DEFAULT_FILE = Path(__file__).with_name("policy.toml")
LEVEL_NAMES = {level.value: level.area for level in Level}
GROUPS = ("facilities", "events")  # 部件, 事件 (GB/T 30428.2)
#: A policy's time limit is a ``shared.timemodel.Limit`` (one type for the policy and the deadlines).
Amount = Limit
parse_amount = parse_limit
#: Bounds on a policy file: its text, its nesting (arrays and tables within each other, dotted keys
#: included; the shipped file reaches 3), and how many of each thing it may name.
MAX_TEXT = 1_000_000
MAX_DEPTH = 10
MAX_CATEGORIES = 1000
MAX_SEVERITIES = 20
MAX_WARNINGS = 10
MAX_EXTENSIONS = 100
MAX_UNIT_CALENDARS = 20_000
MAX_EARLY_WARNINGS = 100
#: An early-warning cluster's radius (metres) and how many reports a rule may ask for.
RADIUS_M = (1, 5000)
MIN_REPORTS = (2, 1000)
EARLY_WARNING_KINDS = ("cluster", "recurring")

#: The rule when neither the file nor anything above says.
BUILTIN_RULE = {"start_level": "grid", "levels": {1: 4.0, 2: 8.0, 3: 24.0, 4: 48.0}, "verification": 24.0,
                "department": 24.0, "urge_response": 4.0, "acceptance": 24.0, "warnings": {0: ()},
                "extensions": {"max_count": 2, "max_total": 48.0}, "suspend_without_approval": ()}
#: The keys of a time rule (``[defaults]``, ``[severities.<s>]``, a category, its ``severities.<s>``).
RULE_KEYS = ("start_level", "levels", "verification", "department", "urge_response", "acceptance", "warnings",
             "extensions", "suspend_without_approval")
#: Where a report comes from (``case.reported``'s ``channel``): a grid worker's phone, staff at a desk,
#: or the public through Open311.
CHANNELS = ("grid_worker", "staff", "open311")
#: Whether a report waits for acceptance (立案) when neither the file nor its category says: grid workers
#: and staff are trusted (their reports open a case at once), the public's reports are checked first
#: (DOMAIN.md: "reports from trusted grid workers are often accepted automatically").
NEEDS_ACCEPTANCE = {"grid_worker": False, "staff": False, "open311": True}

__all__ = ["UNITS", "WEEKDAYS", "Amount", "CalendarSpec", "Category", "EarlyWarningRule", "Policy", "PolicyError",
           "Rule", "UnitCalendar", "load_policy", "parse_amount", "parse_policy"]


class PolicyError(LocatedError):
    """A policy file that cannot be used: ``problem`` (a catalogue message, ``shared.words.Message``) on
    ``line`` of ``file``. ``located`` is the message naming the file and line (``policy.at_line``), read
    in the reader's language (``text(lang)``); ``str()`` is ``FILE:LINE: message`` in English (the CLI's)."""

    def __init__(self, problem: Message, line: int | None = None, file: str = "policy"):
        super().__init__(problem, file, line)


@dataclass(frozen=True)
class Rule:
    """The time rules of one category × severity (what escalation freezes onto a case)."""

    start_level: str
    levels: dict[int, Limit]
    verification: Limit
    warnings: tuple[float, ...]  # the thresholds of every level without its own
    max_extensions: int
    max_extension_total: Limit
    level_warnings: dict[int, tuple[float, ...]] = field(default_factory=dict)  # a level's own thresholds
    department: Limit = Limit(24.0, "hours")  # a department assignment's time to feed back (反馈)
    urge_response: Limit = Limit(4.0, "hours")  # the holder's time to answer an urge (督办) when it names none
    acceptance: Limit = Limit(24.0, "hours")  # staff's time to accept, refuse or merge a waiting report (立案)
    #: the levels (1–4) whose owner may suspend (挂账) without the level above approving
    suspend_without_approval: tuple[int, ...] = ()

    def warnings_at(self, level: int) -> tuple[float, ...]:
        """The warning thresholds at ``level`` (1–4)."""
        return self.level_warnings.get(level, self.warnings)


@dataclass(frozen=True)
class Category:
    code: str
    zh: str
    en: str
    severity: str  # the default severity of its reports
    rules: dict[str, Rule]  # severity → rule
    group: str | None = None  # facilities (部件) or events (事件)
    class_code: str | None = None  # the class (大类) within the group
    unit: str | None = None  # an area id that takes every case of this category (e.g. a specialised station)
    #: the lead department (主办) and co-handlers (协办) of its cases, overriding the departments file
    lead_department: str | None = None
    co_departments: tuple[str, ...] | None = None
    public: bool = False  # offered to the public through Open311 (its reports listed there)
    sensitive: bool = False  # published positions rounded (``SENSITIVE_DECIMALS``): a place that names a household
    #: channel → whether its reports of this category wait for acceptance, over ``[needs_acceptance]``
    needs_acceptance: dict[str, bool] = field(default_factory=dict)

    def rule(self, severity: str | None = None) -> Rule:
        """The rule for ``severity`` (the category's default severity when unknown or None)."""
        return self.rules.get(severity or self.severity) or self.rules[self.severity]

    @property
    def start_level(self) -> str:
        """The start level of the default severity."""
        return self.rule().start_level

    def start_level_for(self, severity: str | None) -> str:
        """The start level (an area level name) of a report of ``severity`` (dispatch routes with it)."""
        return self.rule(severity).start_level


@dataclass(frozen=True)
class UnitCalendar:
    """Calendar overrides of the city (``area`` None) or of one unit (an area id: a sub-center, a
    station, a grid), inherited by the units below it: other working periods (weekday index → local
    periods in minutes), round-the-clock working, extra days off or extra working days. None: as the
    level above."""

    area: str | None
    hours: dict[int, tuple[Period, ...]] | None = None
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()
    round_the_clock: bool | None = None


@dataclass(frozen=True)
class CalendarSpec:
    """The policy's working calendar (the time zone comes from the settings, the official days off
    from the city's calendar files): the city's working periods (weekday index → periods), its holiday
    region, whether a year without an official file may use statutory rules (``statutory_fallback``,
    its deadlines provisional), the city's own overrides (``city``) and the units' (by area id)."""

    hours: dict[int, tuple[Period, ...]]
    region: str | None
    units: dict[str, UnitCalendar] = field(default_factory=dict)
    statutory_fallback: bool = False
    city: UnitCalendar = field(default_factory=lambda: UnitCalendar(None))


@dataclass(frozen=True)
class EarlyWarningRule:
    """One early-warning rule (预警) of ``[[early_warnings]]``. ``kind``: ``cluster`` (at least
    ``min_reports`` reports within ``radius_m`` metres of the newest of them, all within one ``window``
    of seconds) or ``recurring`` (one grid's reports and reopened cases, at least ``min_reports`` within
    ``window``). ``categories``: the categories it watches, each on its own (the rule's ``category``,
    or every category of its ``group``)."""

    name: str
    kind: str
    categories: tuple[str, ...]
    window: float  # seconds
    min_reports: int
    radius_m: float | None = None  # cluster rules only
    category: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Policy:
    categories: dict[str, Category]
    groups: dict[str, dict] = field(default_factory=dict)  # code → {zh, en, classes: {code → {zh, en}}}
    severities: tuple[str, ...] = ("normal",)
    calendar: CalendarSpec = field(default_factory=lambda: CalendarSpec(
        {d: ((8 * 60 + 30, 12 * 60), (13 * 60, 17 * 60 + 30)) for d in range(5)}, "CN"))
    early_warnings: tuple[EarlyWarningRule, ...] = ()

    def warning_rules(self, category: str) -> tuple[EarlyWarningRule, ...]:
        """The early-warning rules that watch ``category`` (none for an unknown one)."""
        return tuple(rule for rule in self.early_warnings if category in rule.categories)
    #: channel → whether its reports wait for acceptance (立案), unless their category says otherwise
    needs_acceptance: dict[str, bool] = field(default_factory=lambda: dict(NEEDS_ACCEPTANCE))

    def acceptance_needed(self, code: str, channel: str | None) -> bool:
        """Whether a report of category ``code`` from ``channel`` (``CHANNELS``) waits for staff to accept
        it (立案) before its deadline ladder starts: the category's own word, else ``[needs_acceptance]``.
        A report without a channel (sent before channels existed) opens at once, as it did then."""
        if channel is None:
            return False
        category = self.categories.get(code) or self.categories.get("other")
        own = category.needs_acceptance if category else {}
        return own.get(channel, self.needs_acceptance.get(channel, False))

    def category(self, code: str) -> Category:
        """The category ``code``; KeyError if the policy has none."""
        return self.categories[code]

    def describe(self, category: Category) -> dict:
        """The public view of a category (``GET /intake/v1/categories``): names, group and class."""
        group = self.groups.get(category.group or "", {})
        klass = group.get("classes", {}).get(category.class_code or "", {})
        return {"code": category.code, "zh": category.zh, "en": category.en, "severity": category.severity,
                "start_level": category.start_level, "unit": category.unit,
                "lead_department": category.lead_department,
                "co_departments": list(category.co_departments) if category.co_departments is not None else None,
                "group": {"code": category.group, "zh": group.get("zh"), "en": group.get("en")}
                if category.group else None,
                "class": {"code": category.class_code, "zh": klass.get("zh"), "en": klass.get("en")}
                if category.class_code else None,
                "severities": sorted(category.rules)}


class _Lines:
    """Finds the line of a key in the file's text, to name it in an error."""

    def __init__(self, text: str, file: str):
        self.lines, self.file = text.splitlines(), file

    def find(self, pattern: str, start: int = 0) -> int | None:
        rx = re.compile(pattern)
        for number in range(start, len(self.lines)):
            if rx.search(self.lines[number]):
                return number + 1
        return None

    def of_category(self, code: str, key: str | None = None) -> int | None:
        at = self.find(rf'^\s*code\s*=\s*["\']{re.escape(code)}["\']')
        if at is None or key is None:
            return at
        end = self.find(r"^\s*\[\[", at) or len(self.lines) + 1
        found = self.find(rf"^\s*(\[categories\.severities\.)?{re.escape(key)}\b", at)
        return found if found is not None and found < end else at

    def of_table(self, name: str, key: str | None = None) -> int | None:
        at = self.find(rf"^\s*\[{re.escape(name)}\]")
        if at is None:
            return None
        if key:
            end = self.find(r"^\s*\[", at) or len(self.lines) + 1
            found = self.find(rf"^\s*{re.escape(key)}\b", at)
            return found if found is not None and found < end else at
        return at

    def error(self, code: str | Message, line: int | None, /, **params) -> PolicyError:
        """The ``PolicyError`` of message ``code`` (with ``params``) on ``line``."""
        return PolicyError(code if isinstance(code, Message) else Message(code, params), line, self.file)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; ``PolicyError`` (a ValueError) naming the line otherwise."""
    path = Path(path or DEFAULT_FILE)
    if path.stat().st_size > MAX_TEXT * 4:  # UTF-8: at most 4 bytes a character
        raise PolicyError(Message("policy.too_long", {"max": f"{MAX_TEXT:,}"}), None, str(path))
    return parse_policy(path.read_text(encoding="utf-8-sig"), str(path))


def parse_policy(text: str, file: str = "policy") -> Policy:
    """``load_policy`` for a text already read (``POST /escalation/v1/stats/replay`` sends one)."""
    try:
        return _parse(text, file)
    except PolicyError:
        raise
    except RecursionError:  # _nesting bounds what tomllib recurses on; this is the last guard
        raise PolicyError(Message("policy.too_deep", {"max": MAX_DEPTH}), None, file) from None
    except Invalid as exc:
        raise PolicyError(exc.message, None, file) from None
    except (AttributeError, TypeError, KeyError, ValueError, IndexError):  # a value of the wrong shape
        raise PolicyError(Message("policy.wrong_shape"), None, file) from None


def _nesting(text: str) -> tuple[int, int]:
    """The deepest nesting of the text's arrays and inline tables, counting a dotted key's parts and a
    table header's, and the line where it is reached: bounded before ``tomllib`` (which recurses
    into each ``[`` and ``{``) reads the text. Strings and comments are skipped, as TOML reads them."""
    depth, worst, worst_line, line, i, n = 0, 0, 1, 1, 0, len(text)
    key_dots, in_key = 0, True  # dotted parts of the key being read at the start of a line or after { or ,
    line_start = True  # only blanks (or a header's brackets) so far on this line
    while i < n:
        c = text[i]
        if c not in " \t[":
            line_start = False
        if c == "\n":
            line, in_key, key_dots, line_start = line + 1, depth == 0, 0, True
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                if text[i] == "\\" and quote[0] == '"':
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
            i += len(quote)
            continue
        elif c in "[{":
            depth += 1
            in_key, key_dots = c == "{" or line_start, 0
        elif c in "]}":
            depth = max(depth - 1, 0)
        elif c == "," and depth:
            in_key, key_dots = True, 0
        elif c == "=":
            in_key = False
        elif c == "." and in_key:
            key_dots += 1
        if depth + key_dots > worst:
            worst, worst_line = depth + key_dots, line
        if worst > MAX_DEPTH:
            break
        i += 1
    return worst, worst_line


def _parse(text: str, file: str) -> Policy:
    lines = _Lines(text, file)
    if len(text) > MAX_TEXT:
        raise lines.error("policy.too_long_not", None, max=f"{MAX_TEXT:,}", count=f"{len(text):,}")
    depth, at = _nesting(text)
    if depth > MAX_DEPTH:
        raise lines.error("policy.too_deep_at", at, max=MAX_DEPTH)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column = toml_position(exc)
        raise lines.error("policy.not_toml", line, column=column) from None

    def checked(where_line, fn, *args):
        try:
            return fn(*args)
        except Invalid as exc:
            raise lines.error(exc.message, where_line) from None
        except (ValueError, TypeError, KeyError):  # a library's refusal: its words are not the reader's
            raise lines.error("policy.wrong_value", where_line) from None

    known_top = {"version", "defaults", "levels", "severities", "groups", "categories", "calendar", "early_warnings",
                 "needs_acceptance"}
    for key in data:
        if key not in known_top:
            raise lines.error("policy.unknown_key", lines.find(rf"^\s*\[*{re.escape(key)}\b"), key=repr(key),
                              choices=", ".join(sorted(known_top)))
    defaults = dict(data.get("defaults", {}))
    if "levels" in data:  # the first policy format: [levels] in hours
        defaults.setdefault("levels", data["levels"])

    def table(name: str, raw: dict) -> dict:
        """A rule table, each key checked on its own so that an error names that key's line."""
        if not isinstance(raw, dict):
            raise lines.error("policy.not_a_table", lines.of_table(name), name=f"[{name}]")
        for key in raw:
            where = lines.of_table(name, key) if lines.of_table(name) else None
            sub = lines.find(rf"^\s*\[{re.escape(name)}\.{re.escape(key)}\]")
            if sub and isinstance(raw[key], dict):  # [defaults.levels]: name the line of the level
                for inner, value in raw[key].items():
                    end = lines.find(r"^\s*\[", sub) or len(lines.lines) + 1
                    at = lines.find(rf"^\s*[\"']?{re.escape(str(inner))}[\"']?\s*=", sub)
                    checked(at if at and at < end else sub, _partial, {key: {inner: value}})
            checked(sub or where or (lines.find(rf"^\s*{re.escape(key)}\s*=") if name == "defaults" else None),
                    _partial, {key: raw[key]})
        return _partial(raw)

    base = table("defaults", defaults)
    implicit = {"normal": {}} | {c.get("severity"): {} for c in data.get("categories", [])
                                 if isinstance(c, dict) and isinstance(c.get("severity"), str)}
    severities = data.get("severities", implicit)  # the first policy format names severities only on categories
    if not isinstance(severities, dict) or not severities:
        raise lines.error("policy.severities_table", lines.of_table("severities"))
    if len(severities) > MAX_SEVERITIES:
        raise lines.error("policy.too_many_severities",
                          lines.find(r"^\s*\[severities[.\]]") or lines.find(r"^\s*severities\b"),
                          max=MAX_SEVERITIES, count=len(severities))
    by_severity = {name: table(f"severities.{name}", raw) for name, raw in severities.items()}
    groups = data.get("groups", {})
    for code, group in groups.items():
        line = lines.of_table(f"groups.{code}")
        if code not in GROUPS:
            raise lines.error("policy.unknown_group", line, group=repr(code), choices=", ".join(GROUPS))
        if not group.get("zh") or not group.get("en"):
            raise lines.error("policy.group_names", line, group=repr(code))
        for klass, names in group.get("classes", {}).items():
            if not names.get("zh") or not names.get("en"):
                raise lines.error("policy.class_names", lines.of_table(f"groups.{code}.classes.{klass}"),
                                  klass=f"{code}.{klass}")
    categories: dict[str, Category] = {}
    raw_categories = data.get("categories")
    if not isinstance(raw_categories, list) or not raw_categories:
        raise lines.error("policy.no_categories", None)
    if len(raw_categories) > MAX_CATEGORIES:
        raise lines.error("policy.too_many_categories", lines.find(r"^\s*\[\[categories\]\]"),
                          max=MAX_CATEGORIES, count=len(raw_categories))
    for raw in raw_categories:
        code = raw.get("code") if isinstance(raw, dict) else None
        if not isinstance(code, str) or not code:
            raise lines.error("policy.category_code", lines.find(r"^\s*\[\[categories\]\]"))
        line = lines.of_category(code)
        if code in categories:
            raise lines.error("policy.category_twice", lines.find(rf'code\s*=\s*"{code}"', line or 0),
                              category=repr(code))
        for name in ("zh", "en"):
            if not isinstance(raw.get(name), str) or not raw[name].strip():
                raise lines.error("policy.category_name", line, category=repr(code), name=name)
        group, klass = raw.get("group"), raw.get("class")
        if groups and group is None:
            raise lines.error("policy.category_group", line, category=repr(code), choices=", ".join(groups))
        if group is not None and group not in groups:
            raise lines.error("policy.category_unknown_group", lines.of_category(code, "group"), category=repr(code),
                              group=repr(group))
        if klass is not None and klass not in groups.get(group, {}).get("classes", {}):
            raise lines.error("policy.category_unknown_class", lines.of_category(code, "class"),
                              category=repr(code), klass=repr(klass), group=repr(group))
        own = {k: raw[k] for k in RULE_KEYS if k in raw}
        lead, co = raw.get("lead_department"), raw.get("co_departments")
        accepting = checked(lines.of_category(code, "needs_acceptance"), _acceptance,
                            raw.get("needs_acceptance", {}),
                            Message("policy.where_category", {"category": repr(code), "key": "needs_acceptance"}))
        if lead is not None and not (isinstance(lead, str) and lead):
            raise lines.error("policy.lead_department", lines.of_category(code, "lead_department"),
                              category=repr(code))
        if co is not None and not (isinstance(co, list) and all(isinstance(c, str) and c for c in co)
                                   and lead not in co and len(set(co)) == len(co)):
            raise lines.error("policy.co_departments", lines.of_category(code, "co_departments"),
                              category=repr(code))
        if "hours" in raw:
            own.setdefault("levels", raw["hours"])
        for key in own:
            checked(lines.of_category(code, "hours" if key == "levels" and "hours" in raw else key),
                    _partial, {key: own[key]})
        severity = raw.get("severity", next(iter(severities)))
        if severity not in severities:
            raise lines.error("policy.category_unknown_severity", lines.of_category(code, "severity"),
                              category=repr(code), severity=repr(severity), choices=", ".join(severities))
        per_severity = raw.get("severities", {})
        for name in per_severity:
            if name not in severities:
                raise lines.error("policy.category_severity_table", lines.of_category(code, f"severities.{name}"),
                                  category=repr(code), severity=repr(name))
        rules = {}
        for name in severities:
            merged = _merge(BUILTIN_RULE, base, by_severity[name], _partial(own),
                            _partial(per_severity.get(name, {})))
            rules[name] = checked(lines.of_category(code, f"severities.{name}") if name in per_severity else line,
                                  _rule, merged, code, name)
        for flag in ("public", "sensitive"):
            if not isinstance(raw.get(flag, False), bool):
                raise lines.error("policy.category_flag", lines.of_category(code, flag), category=repr(code),
                                  flag=flag)
        categories[code] = Category(code, raw["zh"], raw["en"], severity, rules, group, klass, raw.get("unit"),
                                    lead, tuple(co) if co is not None else None, raw.get("public", False),
                                    raw.get("sensitive", False), accepting)
    if "other" not in categories:
        raise lines.error("policy.no_other", None)
    channels = checked(lines.of_table("needs_acceptance"), _acceptance, data.get("needs_acceptance", {}),
                       "[needs_acceptance]")
    return Policy(categories, groups, tuple(severities), _calendar(data.get("calendar", {}), lines),
                  early_warnings=_early_warnings(data.get("early_warnings", []), lines, categories),
                  needs_acceptance={**NEEDS_ACCEPTANCE, **channels})


def _acceptance(raw: object, where: str | Message) -> dict[str, bool]:
    """``{ grid_worker = false, open311 = true }``: channel → whether its reports wait for acceptance."""
    if not isinstance(raw, Mapping):
        raise Invalid("policy.channels_table", where=where, choices=", ".join(CHANNELS))
    for channel, value in raw.items():
        if channel not in CHANNELS:
            raise Invalid("policy.unknown_channel", where=where, channel=repr(channel), choices=", ".join(CHANNELS))
        if not isinstance(value, bool):
            raise Invalid("policy.channel_flag", where=where, channel=channel)
    return dict(raw)


def _partial(raw: dict) -> dict:
    """One table's rule keys, each parsed (a table may give only some of them)."""
    known = set(RULE_KEYS)
    unknown = set(raw) - known
    if unknown:
        raise Invalid("policy.unknown_key", key=repr(sorted(unknown)[0]), choices=", ".join(sorted(known)))
    out: dict = {}
    if "start_level" in raw:
        if raw["start_level"] not in AREA_LEVELS:
            raise Invalid("policy.unknown_start_level", level=repr(raw["start_level"]), choices=", ".join(AREA_LEVELS))
        out["start_level"] = raw["start_level"]
    if "levels" in raw:
        levels = {}
        for key, value in raw["levels"].items():
            level = int(key) if str(key).isdigit() else Level.of(key).value
            if level not in LEVEL_NAMES:
                raise Invalid("policy.unknown_level", level=repr(key))
            levels[level] = parse_limit(value)
        out["levels"] = levels
    if "verification" in raw:
        out["verification"] = parse_limit(raw["verification"])
    for key in ("department", "urge_response", "acceptance"):
        if key in raw:
            out[key] = parse_limit(raw[key])
    if "warnings" in raw:
        out["warnings"] = _warnings(raw["warnings"])
    if "suspend_without_approval" in raw:
        out["suspend_without_approval"] = _levels_list(raw["suspend_without_approval"], "suspend_without_approval")
    if "extensions" in raw:
        caps = raw["extensions"]
        unknown = set(caps) - {"max_count", "max_total"}
        if unknown:
            raise Invalid("policy.unknown_extensions_key", key=repr(sorted(unknown)[0]))
        out["extensions"] = {}
        if "max_count" in caps:
            count = caps["max_count"]
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_EXTENSIONS:
                raise Invalid("policy.max_count", max=MAX_EXTENSIONS)
            out["extensions"]["max_count"] = caps["max_count"]
        if "max_total" in caps:
            out["extensions"]["max_total"] = parse_limit(caps["max_total"])
    return out


def _levels_list(value: object, key: str) -> tuple[int, ...]:
    """A list of levels by name or number (``["station", 4]``) → their numbers, ascending."""
    if not isinstance(value, list) or len(value) > len(LEVEL_NAMES):
        raise Invalid("policy.levels_list", key=key)
    levels = set()
    for item in value:
        try:
            level = Level.of(item)
        except (ValueError, TypeError, KeyError):
            raise Invalid("policy.levels_list_unknown", key=key, level=repr(item)) from None
        levels.add(int(level))
    return tuple(sorted(levels))


def _thresholds(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or any(isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1
                                          for p in value):
        raise Invalid("policy.warnings_fractions")
    if len(value) > MAX_WARNINGS:
        raise Invalid("policy.too_many_warnings", max=MAX_WARNINGS, count=len(value))
    if list(value) != sorted(set(value)):
        raise Invalid("policy.warnings_order")
    return tuple(float(p) for p in value)


def _warnings(value: object) -> dict[int, tuple[float, ...]]:
    """``[0.5, 0.8]`` (every level: key 0) or ``{ 1 = [0.5, 0.8], hq = [0.8] }`` (those levels; ``[]``
    is no warning at that level)."""
    if isinstance(value, Mapping):
        out = {}
        for key, thresholds in value.items():
            level = int(key) if str(key).isdigit() else Level.of(key).value
            if level not in LEVEL_NAMES:
                raise Invalid("policy.warnings_unknown_level", level=repr(key))
            out[level] = _thresholds(thresholds)
        return out
    return {0: _thresholds(value)}


def _merge(*tables: dict) -> dict:
    merged: dict = {}
    for table in tables:
        for key, value in table.items():
            if key in ("levels", "extensions") or (key == "warnings" and 0 not in value):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged


def _rule(merged: dict, code: str, severity: str) -> Rule:
    levels = {k: v if isinstance(v, Limit) else parse_limit(v) for k, v in merged["levels"].items()}
    start = merged["start_level"]
    needed = [lv for lv in Level if lv.value >= Level.of(start).value]
    missing = [str(int(lv)) for lv in needed if lv.value not in levels]
    if missing:
        raise Invalid("policy.missing_limit", category=repr(code), severity=severity, levels=", ".join(missing))
    for lv in Level:  # levels below the start are never used; give them the start level's limit
        levels.setdefault(lv.value, levels[Level.of(start).value])
    verification = merged["verification"]
    caps = merged["extensions"]
    total = caps["max_total"]
    warnings, department, urge_response = merged["warnings"], merged["department"], merged["urge_response"]
    acceptance = merged["acceptance"]
    return Rule(start, dict(sorted(levels.items())),
                verification if isinstance(verification, Limit) else parse_limit(verification),
                tuple(warnings.get(0, ())), int(caps["max_count"]),
                total if isinstance(total, Limit) else parse_limit(total),
                {level: tuple(p) for level, p in sorted(warnings.items()) if level},
                department if isinstance(department, Limit) else parse_limit(department),
                urge_response if isinstance(urge_response, Limit) else parse_limit(urge_response),
                acceptance if isinstance(acceptance, Limit) else parse_limit(acceptance),
                tuple(merged["suspend_without_approval"]))


_CALENDAR_KEYS = ("hours", "round_the_clock", "extra_holidays", "extra_workdays")


def _overrides(raw: Mapping, area: str | None, where: str) -> UnitCalendar:
    """The override keys of ``[calendar]`` (the city) or of one ``[[calendar.units]]`` entry."""
    hours = parse_hours(raw["hours"]) if "hours" in raw else None
    round_the_clock = raw.get("round_the_clock")
    if round_the_clock is not None and not isinstance(round_the_clock, bool):
        raise Invalid("policy.round_the_clock_flag", where=where)
    if round_the_clock and hours is not None:
        raise Invalid("policy.round_the_clock_hours", where=where)
    holidays = parse_dates(raw.get("extra_holidays", []), "extra_holidays")
    workdays = parse_dates(raw.get("extra_workdays", []), "extra_workdays")
    both = sorted(set(holidays) & set(workdays))
    if both:
        raise Invalid("policy.holiday_and_workday", where=where, day=str(both[0]))
    return UnitCalendar(area, hours, holidays, workdays, round_the_clock)


def _calendar(raw: dict, lines: _Lines) -> CalendarSpec:
    """``[calendar]``: ``hours`` per weekday, the holiday ``region``, ``statutory_fallback``, the city's
    overrides, and ``[[calendar.units]]`` (each a unit's overrides, inherited by the units below it)."""
    default = Policy.__dataclass_fields__["calendar"].default_factory()
    line = lines.of_table("calendar")
    if not isinstance(raw, dict):
        raise lines.error("policy.not_a_table", line, name="[calendar]")
    known = {"region", "statutory_fallback", "units", *_CALENDAR_KEYS}
    unknown = set(raw) - known
    if unknown:
        raise lines.error("policy.unknown_calendar_key", line, key=repr(sorted(unknown)[0]),
                          choices=", ".join(sorted(known)))

    def at(key: str) -> int | None:
        return (lines.of_table("calendar", key) if key != "hours" else None) or \
            lines.find(rf"^\s*\[calendar\.{key}\]") or lines.of_table("calendar", key) or line

    region = raw.get("region", default.region)
    if region is not None and not (isinstance(region, str) and REGION.match(region)):
        raise lines.error("policy.region", at("region"), region=repr(region))
    fallback = raw.get("statutory_fallback", False)
    if not isinstance(fallback, bool):
        raise lines.error("policy.statutory_fallback", at("statutory_fallback"))
    for key in _CALENDAR_KEYS:
        if key in raw:
            try:
                _overrides({key: raw[key]}, None, "[calendar]")
            except Invalid as exc:
                raise lines.error(exc.message, at(key)) from None
    try:
        city = _overrides(raw, None, "[calendar]")
    except Invalid as exc:
        raise lines.error(exc.message, line) from None
    hours = city.hours or default.hours
    city = UnitCalendar(None, None, city.extra_holidays, city.extra_workdays, city.round_the_clock)
    entries = raw.get("units", [])
    if not isinstance(entries, list):
        raise lines.error("policy.units_list", at("units"))
    if len(entries) > MAX_UNIT_CALENDARS:
        raise lines.error("policy.too_many_units", lines.find(r"^\s*\[\[calendar\.units\]\]") or at("units"),
                          max=f"{MAX_UNIT_CALENDARS:,}", count=f"{len(entries):,}")
    units: dict[str, UnitCalendar] = {}
    headers = [n + 1 for n, text in enumerate(lines.lines) if re.match(r"^\s*\[\[calendar\.units\]\]", text)]
    for number, unit in enumerate(entries):
        where = headers[number] if number < len(headers) else line
        try:
            if not isinstance(unit, dict) or not isinstance(unit.get("area"), str) or not unit["area"]:
                raise Invalid("policy.unit_area")
            extra = set(unit) - {"area", *_CALENDAR_KEYS}
            if extra:
                raise Invalid("policy.unknown_unit_key", key=repr(sorted(extra)[0]), choices=", ".join(_CALENDAR_KEYS))
            if unit["area"] in units:
                raise Invalid("policy.unit_twice", area=repr(unit["area"]))
            units[unit["area"]] = _overrides(unit, unit["area"], Message("policy.where_unit",
                                                                         {"area": repr(unit["area"])}))
        except Invalid as exc:
            raise lines.error(exc.message, where) from None
    return CalendarSpec(hours, region, units, fallback, city)



_EARLY_WARNING_KEYS = ("name", "kind", "category", "group", "radius_m", "window", "min_reports")


def _early_warnings(entries: object, lines: _Lines, categories: dict[str, Category]) -> tuple[EarlyWarningRule, ...]:
    """``[[early_warnings]]``: each rule checked on its own (``_early_warning``)."""
    headers = [n + 1 for n, text in enumerate(lines.lines) if re.match(r"^\s*\[\[early_warnings\]\]", text)]
    first = headers[0] if headers else lines.find(r"^\s*\[?early_warnings\b")
    if not isinstance(entries, list):
        raise lines.error("policy.early_warnings_list", first)
    if len(entries) > MAX_EARLY_WARNINGS:
        raise lines.error("policy.too_many_early_warnings", first, max=MAX_EARLY_WARNINGS, count=len(entries))
    rules: dict[str, EarlyWarningRule] = {}
    for number, raw in enumerate(entries):
        rule = _early_warning(raw, lines, headers[number] if number < len(headers) else first, categories, rules)
        rules[rule.name] = rule
    return tuple(rules.values())


def _early_warning(raw: object, lines: _Lines, start: int | None, categories: dict[str, Category],
                   earlier: Mapping[str, EarlyWarningRule]) -> EarlyWarningRule:
    """One ``[[early_warnings]]`` entry (its header on line ``start``); a problem names the line of the
    offending key, or the header's when a key is missing."""
    end = (lines.find(r"^\s*\[", start) or len(lines.lines) + 1) if start else None

    def fail(problem: str | Message, at: str | None = None, /, **params):
        line = start
        if at and start:
            found = lines.find(rf"^\s*{at}\s*=", start)
            line = found if found is not None and found < end else start
        name = raw.get("name") if isinstance(raw, dict) else None
        label = Message("policy.early_warning_named", {"name": repr(name)}) if isinstance(name, str) and name \
            else Message("policy.early_warning")
        problem = problem if isinstance(problem, Message) else Message(problem, params)
        raise lines.error("policy.labelled", line, label=label, problem=problem)

    if not isinstance(raw, dict):
        fail("policy.ew_table")
    for key in raw:
        if key not in _EARLY_WARNING_KEYS:
            fail("policy.unknown_key", key, key=repr(key), choices=", ".join(_EARLY_WARNING_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        fail("policy.ew_name", "name" if "name" in raw else None)
    if name in earlier:
        fail("policy.ew_twice", "name")
    kind = raw.get("kind", "cluster")
    if kind not in EARLY_WARNING_KINDS:
        fail("policy.ew_kind", "kind", kind=repr(kind), choices=", ".join(EARLY_WARNING_KINDS))
    category, group = raw.get("category"), raw.get("group")
    if (category is None) == (group is None):
        fail("policy.ew_category_or_group", "group" if group is not None else None)
    if category is not None and category not in categories:
        fail("policy.ew_unknown_category", "category", category=repr(category))
    watched = (category,) if category is not None else tuple(code for code, c in categories.items() if c.group == group)
    if not watched:
        fail("policy.ew_empty_group", "group", group=repr(group))
    radius = raw.get("radius_m")
    if kind == "cluster":
        low, high = RADIUS_M
        if isinstance(radius, bool) or not isinstance(radius, int | float) or not low <= radius <= high:
            fail("policy.ew_radius", "radius_m" if "radius_m" in raw else None, low=low, high=high,
                 value=repr(radius))
    elif radius is not None:
        fail("policy.ew_no_radius", "radius_m")
    if "window" not in raw:
        fail("policy.ew_window")
    try:
        window = parse_window(raw["window"])
    except Invalid as exc:
        fail(exc.message, "window")
    count = raw.get("min_reports")
    low, high = MIN_REPORTS
    if isinstance(count, bool) or not isinstance(count, int) or not low <= count <= high:
        fail("policy.ew_min_reports", "min_reports" if "min_reports" in raw else None, low=low, high=high,
             value=repr(count))
    return EarlyWarningRule(name, kind, watched, window, count, float(radius) if kind == "cluster" else None,
                            category, group)
