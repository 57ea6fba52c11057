"""The closure-time statistics and the case list as a spreadsheet reads them
(``GET /escalation/v1/stats/closure-times?format=csv``, ``GET /escalation/v1/cases?format=csv``).

The JSON answer is for programs: field names, durations in seconds, ids. The CSV is for people opening it
in Excel, WPS or LibreOffice, so the same rows are written:

- with **column names in the reader's language** (``zh`` or ``en``: ``lang=`` or ``Accept-Language``,
  Chinese unless English is preferred, as the pages choose), from ``COLUMNS``, ``DURATIONS`` and
  ``QUANTILES`` below;
- with each **unit's name beside its id** (``area_name`` after ``area_id``: the area names escalation keeps
  from ``areas.published``; ``department_name`` after ``department``; ``category_name`` after
  ``category``, from the policy);
- with **durations in hours** as decimals (``seconds / 3600``, rounded to 6 places, i.e. 3.6 ms): a median
  of 5400 s is ``1.5``; rates stay fractions 0–1 and counts stay counts, so every number is the JSON's;
- with **dates in the city's time zone**: ``period_start`` is already the local date a period starts, and
  its column name says which zone (``period start (Asia/Shanghai)``).

The file itself (UTF-8 with a byte-order mark, formula-looking text made inert) is written by
``shared.exports.export_csv``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo

from services.escalation.domain import statistics
from shared.clock import parse_time
from shared.exports import hours

LANGUAGES = ("zh", "en")

#: Column names: field → (Chinese, English). ``{zone}`` is the city's time zone.
COLUMNS: dict[str, tuple[str, str]] = {
    "area_id": ("单元编号", "unit id"),
    "area_name": ("单元名称", "unit name"),
    "category": ("类别代码", "category code"),
    "category_name": ("类别", "category"),
    "severity": ("紧急程度", "severity"),
    "reporter": ("上报人", "reporter"),
    "department": ("部门编号", "department id"),
    "department_name": ("部门", "department"),
    "period_start": ("周期开始日期（{zone}）", "period start ({zone})"),
    "opened": ("立案数", "opened"),
    "closed": ("结案数", "closed"),
    "closure_rate": ("结案率", "closure rate"),
    "on_time_rate": ("按期结案率（各级均未超时）", "on-time rate, never late at any level"),
    "on_time_rate_with_extensions": ("各级均未超时（含延期）", "never late at any level, with extensions"),
    "on_time_rate_final": ("按最终时限结案率", "on-time rate against the final deadline"),
    "rework_rate": ("返工率", "rework rate"),
    "extension_rate": ("延期率", "extension rate"),
    "escalation_rate": ("升级率", "escalation rate"),
    "overdue": ("超期数", "overdue"),
    "urged": ("督办数", "urged"),
    "urges_late": ("督办逾期未复数", "urges answered late"),
    "assigned": ("派遣数", "assigned"),
    "acknowledged": ("签收数", "acknowledged"),
    "done": ("办结数", "done"),
    "declined": ("退单数", "declined"),
    "on_time": ("按期办结数", "done on time"),
    "decline_rate": ("退单率", "decline rate"),
    "rank": ("排名", "rank"),
}
#: The unit named in the ``area_id`` column, by ``group_by``.
AREA_UNITS = {"grid": ("网格", "grid"), "station": ("工作站", "station"), "subcenter": ("分中心", "sub-center")}
#: Quantiled durations: the name before ``_median`` / ``_p90`` → (Chinese, English).
DURATIONS: dict[str, tuple[str, str]] = {
    "time_to_acknowledge": ("签收用时", "time to acknowledge"),
    "time_to_resolve": ("处置用时", "time to resolve"),
    "time_to_close": ("结案用时", "time to close"),
    "time_to_respond": ("督办回复用时", "time to answer an urge"),
    "time_to_accept": ("签收用时", "time to accept"),
    "time_to_feedback": ("反馈用时", "time to feed back"),
    **{f"time_at_level_{n}": (f"{zh}停留用时", f"time at level {n} ({en})")
       for n, zh, en in ((1, "网格级", "grid"), (2, "工作站级", "station"), (3, "分中心级", "sub-center"),
                         (4, "指挥部级", "headquarters"))},
    **{f"calendar_at_level_{n}": (f"{zh}停留日历用时", f"calendar time at level {n} ({en})")
       for n, zh, en in ((1, "网格级", "grid"), (2, "工作站级", "station"), (3, "分中心级", "sub-center"),
                         (4, "指挥部级", "headquarters"))},
}
QUANTILES = {"median": ("中位数", "median"), "p90": ("90%分位", "90th percentile")}
HOURS = ("（小时）", " (hours)")


def column_name(column: str, lang: str, *, zone: str, group_by: str) -> str:
    """The name of ``column`` (a flattened statistics field) in ``lang`` (``zh`` or ``en``).
    Raises ``KeyError`` for a column no table here names (a new measure needs its names)."""
    i = LANGUAGES.index(lang)
    if group_by in AREA_UNITS and column in ("area_id", "area_name"):
        unit = AREA_UNITS[group_by][i]
        return {"area_id": (f"{unit}编号", f"{unit} id"), "area_name": (f"{unit}名称", f"{unit} name")}[column][i]
    if column in COLUMNS:
        return COLUMNS[column][i].format(zone=zone)
    name, _, quantile = column.rpartition("_")
    if quantile not in QUANTILES:
        raise KeyError(column)
    sep = "" if lang == "zh" else ", "
    return DURATIONS[name][i] + sep + QUANTILES[quantile][i] + HOURS[i]


def is_duration(column: str) -> bool:
    return column.endswith(("_median", "_p90"))


def closure_times_table(answer: Mapping, lang: str, *, area_names: Mapping[str, str],
                        department_names: Callable[[str], str | None],
                        category_names: Callable[[str], str | None]) -> tuple[list[str], list[str], list[dict]]:
    """The CSV of a closure-times answer (``handlers.closure_stats``): (columns, their names in ``lang``,
    rows). Every row of ``answer["rows"]`` is flattened (``statistics.flatten``), the unit's name put
    beside its id, and each duration turned from seconds into hours; counts and rates are the answer's.
    ``area_names`` maps area ids to names; ``department_names(id)`` and ``category_names(code)`` give a
    name in ``lang`` (None where unknown: the cell is left empty)."""
    group_by = answer["group_by"]
    if group_by == "department":
        columns = list(statistics.DEPARTMENT_COLUMNS)
    else:
        key = statistics.GROUP_FIELDS[group_by]
        columns = list(statistics.flatten(statistics.row({key: None, "period_start": None},
                                                         dict.fromkeys(statistics.COUNTS, 0), {})))
    named_by = {"area_id": ("area_name", area_names.get), "department": ("department_name", department_names),
                "category": ("category_name", category_names)}
    for key, (name, _) in named_by.items():
        if key in columns:
            columns.insert(columns.index(key) + 1, name)
    flat = [statistics.flatten(r) for r in answer["rows"]]
    if flat and "rank" in flat[0]:
        columns.append("rank")
    rows = []
    for item in flat:
        row = {c: hours(v) if is_duration(c) else v for c, v in item.items()}
        for key, (name, look_up) in named_by.items():
            if row.get(key) is not None:
                row[name] = look_up(row[key])
        rows.append(row)
    names = [column_name(c, lang, zone=answer["time_zone"], group_by=group_by) for c in columns]
    return columns, names, rows


#: The case list's columns (``GET /escalation/v1/cases?format=csv``): field → (Chinese, English). Times are
#: local to the city (``{zone}``), the time left is in hours (negative: overdue by that long).
CASE_COLUMNS: dict[str, tuple[str, str]] = {
    "number": ("案卷号", "case number"),
    "id": ("案卷标识", "case id"),
    "category": ("类别代码", "category code"),
    "category_name": ("类别", "category"),
    "severity": ("紧急程度", "severity"),
    "status": ("状态", "status"),
    "level": ("层级", "level"),
    "owner_area_id": ("承办单元编号", "owner id"),
    "owner_area_name": ("承办单元", "owner"),
    "assignee": ("承办人", "assignee"),
    "deadline": ("本级时限（{zone}）", "deadline ({zone})"),
    "time_left": ("剩余时间（小时）", "time left (hours)"),
    "overdue": ("超期", "overdue"),
    "opened_at": ("建立案卷时间（{zone}）", "opened ({zone})"),
    "reporter": ("上报人", "reporter"),
    "description": ("描述", "description"),
}
#: ``overdue`` as a word: (Chinese, English) for yes and no.
YES_NO = {True: ("是", "yes"), False: ("否", "no")}


def local_time(instant: str | None, zone: ZoneInfo) -> str | None:
    """An ISO 8601 UTC instant as the city's wall-clock time, ``YYYY-MM-DD HH:MM:SS`` (what a spreadsheet
    reads as a date and time); None stays None."""
    return None if instant is None else parse_time(instant).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def case_list_table(items: list[Mapping], lang: str, *, zone: str,
                    category_names: Callable[[str], str | None]) -> tuple[list[str], list[str], list[dict]]:
    """The CSV of one page of the case list (``case_view`` items): (columns, their names in ``lang``, rows),
    with the category's name beside its code, times in ``zone`` and the time left in hours."""
    i, tz = LANGUAGES.index(lang), ZoneInfo(zone)
    rows = [{"number": c["number"], "id": c["id"], "category": c["category"],
             "category_name": category_names(c["category"]), "severity": c["severity"], "status": c["status"],
             "level": c["level"], "owner_area_id": c["owner"]["area_id"], "owner_area_name": c["owner"]["area_name"],
             "assignee": c["assignee"], "deadline": local_time(c["deadline"], tz), "time_left": hours(c["time_left"]),
             "overdue": YES_NO[bool(c["overdue"])][i], "opened_at": local_time(c["opened_at"], tz),
             "reporter": c["report"]["reporter"], "description": c["report"]["description"]} for c in items]
    columns = list(CASE_COLUMNS)
    return columns, [CASE_COLUMNS[c][i].format(zone=zone) for c in columns], rows
