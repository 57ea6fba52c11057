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
- **the working calendar**: working periods per weekday, the holiday region and per-unit overrides
  (``[calendar]``, ``[[calendar.units]]``). The city's time zone is a setting (``GRIDCASE_TIME_ZONE``).

A time limit is ``"4 hours"``, ``"90 minutes"``, ``"6 working_hours"``, ``"2 working_days"`` or a bare
number of hours. The file of issue 8 (``[levels]`` in hours and ``hours = {…}`` per category) still
loads: ``[levels]`` is read as ``[defaults] levels`` and ``hours`` as the category's ``levels``.

Errors are ``PolicyError`` naming the file's line: the parser's position for TOML syntax, and the
line of the offending key (or its category's ``code``) for a rule that does not hold. Escalation
snapshots a case's rule when the case opens, so loading a new policy never changes a case in flight.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from shared.vocabulary import AREA_LEVELS, Level

DEFAULT_FILE = Path(__file__).with_name("policy.toml")
LEVEL_NAMES = {level.value: level.area for level in Level}
#: Units a limit may be written in. ``seconds`` is for tests with a compressed clock.
UNITS = ("seconds", "minutes", "hours", "working_hours", "working_days")
GROUPS = ("facilities", "events")  # 部件, 事件 (GB/T 30428.2)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z_]+)\s*$")

#: The rule when neither the file nor anything above says.
BUILTIN_RULE = {"start_level": "grid", "levels": {1: 4.0, 2: 8.0, 3: 24.0, 4: 48.0}, "verification": 24.0,
                "warnings": [], "extensions": {"max_count": 2, "max_total": 48.0}}


class PolicyError(ValueError):
    """A policy file that cannot be used: ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, message: str, line: int | None = None, file: str = "policy"):
        self.message, self.line, self.file = message, line, file
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Amount:
    """A time limit as written in the policy: ``amount`` of ``unit`` (one of ``UNITS``)."""

    amount: float
    unit: str

    def to_dict(self) -> dict:
        return {"amount": self.amount, "unit": self.unit}


@dataclass(frozen=True)
class Rule:
    """The time rules of one category × severity (what escalation freezes onto a case)."""

    start_level: str
    levels: dict[int, Amount]
    verification: Amount
    warnings: tuple[float, ...]
    max_extensions: int
    max_extension_total: Amount


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
    public: bool = False  # offered to the public through Open311 (its reports listed there)
    sensitive: bool = False  # published positions rounded (``SENSITIVE_DECIMALS``): a place that names a household

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
    """A unit's own calendar: other working periods, extra days off or extra working days."""

    area: str
    hours: dict[str, list[str]] | None = None
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[date, ...] = ()


@dataclass(frozen=True)
class CalendarSpec:
    """The policy's working calendar (the time zone comes from the settings)."""

    hours: dict[str, list[str]]
    region: str | None
    units: dict[str, UnitCalendar] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    categories: dict[str, Category]
    groups: dict[str, dict] = field(default_factory=dict)  # code → {zh, en, classes: {code → {zh, en}}}
    severities: tuple[str, ...] = ("normal",)
    calendar: CalendarSpec = field(default_factory=lambda: CalendarSpec(
        {d: ["08:30-12:00", "13:00-17:30"] for d in WEEKDAYS[:5]}, "CN"))

    def category(self, code: str) -> Category:
        """The category ``code``; KeyError if the policy has none."""
        return self.categories[code]

    def describe(self, category: Category) -> dict:
        """The public view of a category (``GET /intake/v1/categories``): names, group and class."""
        group = self.groups.get(category.group or "", {})
        klass = group.get("classes", {}).get(category.class_code or "", {})
        return {"code": category.code, "zh": category.zh, "en": category.en, "severity": category.severity,
                "start_level": category.start_level, "unit": category.unit,
                "group": {"code": category.group, "zh": group.get("zh"), "en": group.get("en")}
                if category.group else None,
                "class": {"code": category.class_code, "zh": klass.get("zh"), "en": klass.get("en")}
                if category.class_code else None,
                "severities": sorted(category.rules)}


def parse_amount(value: object) -> Amount:
    """``"4 working_hours"``, ``{amount = 4, unit = "hours"}`` or a bare number of hours; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a time limit: {value!r}")
    if isinstance(value, int | float):
        amount, unit = float(value), "hours"
    elif isinstance(value, dict):
        amount, unit = value.get("amount"), value.get("unit", "hours")
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ValueError(f"not a time limit: {value!r}")
        amount = float(amount)
    elif isinstance(value, str) and (m := _LIMIT.match(value)):
        amount, unit = float(m.group(1)), m.group(2)
    else:
        raise ValueError(f'not a time limit: {value!r} (write "4 hours", "2 working_days", …)')
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r} in {value!r}; one of {', '.join(UNITS)}")
    if not amount > 0:
        raise ValueError(f"a time limit must be positive: {value!r}")
    return Amount(amount, unit)


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

    def error(self, message: str, line: int | None) -> PolicyError:
        return PolicyError(message, line, self.file)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; ``PolicyError`` (a ValueError) naming the line otherwise."""
    path = Path(path or DEFAULT_FILE)
    return parse_policy(path.read_text(encoding="utf-8-sig"), str(path))


def parse_policy(text: str, file: str = "policy") -> Policy:
    """``load_policy`` for a text already read."""
    try:
        return _parse(text, file)
    except PolicyError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:  # a value of the wrong shape
        raise PolicyError(f"a value has the wrong shape: {exc}", None, file) from None


def _parse(text: str, file: str) -> Policy:
    lines = _Lines(text, file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise lines.error(f"not TOML: {exc}", int(m.group(1)) if m else None) from None

    def checked(where_line, fn, *args):
        try:
            return fn(*args)
        except (ValueError, TypeError, KeyError) as exc:
            raise lines.error(str(exc).strip("'\""), where_line) from None

    known_top = {"version", "defaults", "levels", "severities", "groups", "categories", "calendar"}
    for key in data:
        if key not in known_top:
            raise lines.error(f"unknown key {key!r}; one of {', '.join(sorted(known_top))}",
                              lines.find(rf"^\s*\[*{re.escape(key)}\b"))
    defaults = dict(data.get("defaults", {}))
    if "levels" in data:  # issue 8's file: [levels] in hours
        defaults.setdefault("levels", data["levels"])

    def table(name: str, raw: dict) -> dict:
        """A rule table, each key checked on its own so that an error names that key's line."""
        if not isinstance(raw, dict):
            raise lines.error(f"[{name}] must be a table", lines.of_table(name))
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
    severities = data.get("severities", implicit)  # issue 8's file names severities only on categories
    if not isinstance(severities, dict) or not severities:
        raise lines.error("severities must be a table of named severities", lines.of_table("severities"))
    by_severity = {name: table(f"severities.{name}", raw) for name, raw in severities.items()}
    groups = data.get("groups", {})
    for code, group in groups.items():
        line = lines.of_table(f"groups.{code}")
        if code not in GROUPS:
            raise lines.error(f"unknown group {code!r}; GB/T 30428 has {', '.join(GROUPS)}", line)
        if not group.get("zh") or not group.get("en"):
            raise lines.error(f"group {code!r} needs zh and en names", line)
        for klass, names in group.get("classes", {}).items():
            if not names.get("zh") or not names.get("en"):
                raise lines.error(f"class {code}.{klass} needs zh and en names",
                                  lines.of_table(f"groups.{code}.classes.{klass}"))
    categories: dict[str, Category] = {}
    raw_categories = data.get("categories")
    if not isinstance(raw_categories, list) or not raw_categories:
        raise lines.error("the policy needs [[categories]]", None)
    for raw in raw_categories:
        code = raw.get("code")
        if not isinstance(code, str) or not code:
            raise lines.error("a category needs a code", lines.find(r"^\s*\[\[categories\]\]"))
        line = lines.of_category(code)
        if code in categories:
            raise lines.error(f"category {code!r} appears twice", lines.find(rf'code\s*=\s*"{code}"', line or 0))
        for name in ("zh", "en"):
            if not isinstance(raw.get(name), str) or not raw[name].strip():
                raise lines.error(f"category {code!r} needs a {name} name", line)
        group, klass = raw.get("group"), raw.get("class")
        if groups and group is None:
            raise lines.error(f"category {code!r} needs a group ({', '.join(groups)})", line)
        if group is not None and group not in groups:
            raise lines.error(f"category {code!r}: unknown group {group!r}", lines.of_category(code, "group"))
        if klass is not None and klass not in groups.get(group, {}).get("classes", {}):
            raise lines.error(f"category {code!r}: unknown class {klass!r} in group {group!r}",
                              lines.of_category(code, "class"))
        own = {k: raw[k] for k in ("start_level", "levels", "verification", "warnings", "extensions") if k in raw}
        if "hours" in raw:
            own.setdefault("levels", raw["hours"])
        for key in own:
            checked(lines.of_category(code, "hours" if key == "levels" and "hours" in raw else key),
                    _partial, {key: own[key]})
        severity = raw.get("severity", next(iter(severities)))
        if severity not in severities:
            raise lines.error(f"category {code!r}: unknown severity {severity!r}; one of {', '.join(severities)}",
                              lines.of_category(code, "severity"))
        per_severity = raw.get("severities", {})
        for name in per_severity:
            if name not in severities:
                raise lines.error(f"category {code!r}: unknown severity {name!r}",
                                  lines.of_category(code, f"severities.{name}"))
        rules = {}
        for name in severities:
            merged = _merge(BUILTIN_RULE, base, by_severity[name], _partial(own),
                            _partial(per_severity.get(name, {})))
            rules[name] = checked(lines.of_category(code, f"severities.{name}") if name in per_severity else line,
                                  _rule, merged, code, name)
        for flag in ("public", "sensitive"):
            if not isinstance(raw.get(flag, False), bool):
                raise lines.error(f"category {code!r}: {flag} is true or false", lines.of_category(code, flag))
        categories[code] = Category(code, raw["zh"], raw["en"], severity, rules, group, klass, raw.get("unit"),
                                    raw.get("public", False), raw.get("sensitive", False))
    if "other" not in categories:
        raise lines.error('the policy needs a category "other" (for reports of an unknown category)', None)
    return Policy(categories, groups, tuple(severities), _calendar(data.get("calendar", {}), lines))


def _partial(raw: dict) -> dict:
    """One table's rule keys, each parsed (a table may give only some of them)."""
    known = {"start_level", "levels", "verification", "warnings", "extensions"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}; one of {', '.join(sorted(known))}")
    out: dict = {}
    if "start_level" in raw:
        if raw["start_level"] not in AREA_LEVELS:
            raise ValueError(f"unknown start_level {raw['start_level']!r}; one of {', '.join(AREA_LEVELS)}")
        out["start_level"] = raw["start_level"]
    if "levels" in raw:
        levels = {}
        for key, value in raw["levels"].items():
            level = int(key) if str(key).isdigit() else Level.of(key).value
            if level not in LEVEL_NAMES:
                raise ValueError(f"unknown level {key!r}")
            levels[level] = parse_amount(value)
        out["levels"] = levels
    if "verification" in raw:
        out["verification"] = parse_amount(raw["verification"])
    if "warnings" in raw:
        warnings = raw["warnings"]
        if not isinstance(warnings, list) or any(isinstance(p, bool) or not isinstance(p, int | float)
                                                 or not 0 < p < 1 for p in warnings):
            raise ValueError("warnings are fractions of a limit between 0 and 1, e.g. [0.5, 0.8]")
        if list(warnings) != sorted(set(warnings)):
            raise ValueError("warnings must be ascending and distinct")
        out["warnings"] = [float(p) for p in warnings]
    if "extensions" in raw:
        caps = raw["extensions"]
        unknown = set(caps) - {"max_count", "max_total"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} in extensions; max_count, max_total")
        out["extensions"] = {}
        if "max_count" in caps:
            if isinstance(caps["max_count"], bool) or not isinstance(caps["max_count"], int) or caps["max_count"] < 0:
                raise ValueError("extensions.max_count is a whole number ≥ 0")
            out["extensions"]["max_count"] = caps["max_count"]
        if "max_total" in caps:
            out["extensions"]["max_total"] = parse_amount(caps["max_total"])
    return out


def _merge(*tables: dict) -> dict:
    merged: dict = {}
    for table in tables:
        for key, value in table.items():
            if key in ("levels", "extensions"):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged


def _rule(merged: dict, code: str, severity: str) -> Rule:
    levels = {k: v if isinstance(v, Amount) else parse_amount(v) for k, v in merged["levels"].items()}
    start = merged["start_level"]
    needed = [lv for lv in Level if lv.value >= Level.of(start).value]
    missing = [str(int(lv)) for lv in needed if lv.value not in levels]
    if missing:
        raise ValueError(f"category {code!r} ({severity}): no time limit for level {', '.join(missing)}")
    for lv in Level:  # levels below the start are never used; give them the start level's limit
        levels.setdefault(lv.value, levels[Level.of(start).value])
    verification = merged["verification"]
    caps = merged["extensions"]
    total = caps["max_total"]
    return Rule(start, dict(sorted(levels.items())),
                verification if isinstance(verification, Amount) else parse_amount(verification),
                tuple(merged["warnings"]), int(caps["max_count"]),
                total if isinstance(total, Amount) else parse_amount(total))


_PERIOD = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _periods(value: object) -> list[str]:
    """``["08:30-12:00", "13:00-17:30"]``: local wall-time periods, ordered and not overlapping."""
    if not isinstance(value, list):
        raise ValueError('working hours are a list such as ["08:30-12:00", "13:00-17:30"]')
    spans = []
    for item in value:
        m = _PERIOD.match(item.replace(" ", "")) if isinstance(item, str) else None
        if not m:
            raise ValueError(f'not a working period: {item!r} (write "08:30-12:00")')
        a, b = int(m.group(1)) * 60 + int(m.group(2)), int(m.group(3)) * 60 + int(m.group(4))
        if not a < b or b > 24 * 60:
            raise ValueError(f"a working period must end after it starts, the same day: {item!r}")
        spans.append((a, b, item.replace(" ", "")))
    spans.sort()
    if any(nxt[0] < cur[1] for cur, nxt in zip(spans, spans[1:], strict=False)):
        raise ValueError(f"working periods overlap: {value!r}")
    return [item for _, _, item in spans]


def _hours(raw: object) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise ValueError("hours is a table of weekdays: mon = [\"08:30-12:00\", …]")
    unknown = set(raw) - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"unknown weekday {sorted(unknown)[0]!r}; one of {', '.join(WEEKDAYS)}")
    hours = {day: _periods(raw[day]) for day in WEEKDAYS if day in raw}
    if not any(hours.values()):
        raise ValueError("a calendar needs working hours on at least one weekday")
    return hours


def _dates(value: object, key: str) -> tuple[date, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{key} is a list of dates")
    out = []
    for item in value:
        if isinstance(item, date):
            out.append(item)
        else:
            try:
                out.append(date.fromisoformat(str(item)))
            except ValueError:
                raise ValueError(f"{key}: not a date: {item!r}") from None
    return tuple(sorted(out))


def _calendar(raw: dict, lines: _Lines) -> CalendarSpec:
    """``[calendar]``: ``hours`` per weekday, the holiday ``region``, and ``[[calendar.units]]``."""
    default = Policy.__dataclass_fields__["calendar"].default_factory()
    line = lines.of_table("calendar")
    unknown = set(raw) - {"hours", "region", "units"}
    if unknown:
        raise lines.error(f"unknown key {sorted(unknown)[0]!r} in [calendar]; hours, region, units", line)
    hours = default.hours
    if "hours" in raw:
        try:
            hours = _hours(raw["hours"])
        except ValueError as exc:
            at = lines.of_table("calendar", "hours") or lines.find(r"^\s*\[calendar\.hours\]")
            raise lines.error(str(exc), at) from None
    region = raw.get("region", default.region)
    if region is not None and not (isinstance(region, str) and re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", region)):
        raise lines.error(f"region is a country code, optionally with a subdivision (CN, DE-BE): {region!r}",
                          lines.of_table("calendar", "region"))
    units = {}
    for number, unit in enumerate(raw.get("units", [])):
        at = lines.find(r"^\s*\[\[calendar\.units\]\]")
        for _ in range(number):
            at = lines.find(r"^\s*\[\[calendar\.units\]\]", at or 0) if at else None
        try:
            if not isinstance(unit.get("area"), str) or not unit["area"]:
                raise ValueError("a unit's calendar names its area id (area = \"…\")")
            extra = set(unit) - {"area", "hours", "extra_holidays", "extra_workdays"}
            if extra:
                raise ValueError(f"unknown key {sorted(extra)[0]!r}; area, hours, extra_holidays, extra_workdays")
            units[unit["area"]] = UnitCalendar(unit["area"], _hours(unit["hours"]) if "hours" in unit else None,
                                               _dates(unit.get("extra_holidays", []), "extra_holidays"),
                                               _dates(unit.get("extra_workdays", []), "extra_workdays"))
        except ValueError as exc:
            raise lines.error(str(exc), at) from None
    return CalendarSpec(hours, region, units)
