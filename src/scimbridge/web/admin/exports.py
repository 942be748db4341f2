"""CSV downloads of the users table and the audit log, streamed row by row.

The rows come from generators that read the database a chunk at a time, and each chunk of
CSV is sent as soon as it is written: a download of 100,000 users holds a few hundred rows
in memory, never the list.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

from flask import stream_with_context
from werkzeug.wrappers import Response

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such a
# value gets a leading apostrophe, which the spreadsheet shows as text and hides.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Rows written before a piece of the answer is sent: big enough to keep the overhead low.
_ROWS_PER_PIECE = 200


def cell(value: object) -> str:
    """Return a value as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_lines(header: list[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Yield the CSV text of a header and rows, a piece of ``_ROWS_PER_PIECE`` rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # The byte-order mark tells spreadsheets the file is UTF-8 (names are not all ASCII).
    buffer.write("\ufeff")
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(value) for value in row])
        if count % _ROWS_PER_PIECE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_download(name: str, header: list[str], rows: Iterable[Sequence[object]]) -> Response:
    """Answer with a streamed CSV attachment called ``name``-<date>.csv."""
    day = datetime.now(UTC).date().isoformat()
    lines = (piece.encode("utf-8") for piece in csv_lines(header, rows))
    response = Response(stream_with_context(lines), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{day}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
