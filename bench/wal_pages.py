"""Pages each SCIM write adds to SQLite's write-ahead log, and the tables and indexes they hold.

A durable commit costs what it writes: every page a statement changes is appended to the log
as one frame (the page and a 24-byte header), written at commit and synced before the answer,
and a checkpoint copies it into the database file later. This script calls scimbridge's WSGI
app in-process on a fresh SQLite database (as ``scim_cpu.py`` does), creates users, then
PATCHes (Entra's deactivation) and deletes each, and prints, per request, the frames the log
grew by and which B-tree (table or index, from SQLite's ``dbstat``) each frame's page belongs
to. Pages freed by a delete show under the B-tree they belonged to.

Run ``python bench/wal_pages.py [--users 300]``. Checkpoints are held off meanwhile (and that
checked), so that the log only grows and its size says how many frames each request added.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scim_bench import ENTRA_DEACTIVATE
from scim_bench import user_body
from scim_cpu import _call
from scim_cpu import _make_app
from sqlalchemy import event

from scimbridge.store.database import Database

FRAME_HEADER = 24
LOG_HEADER = 32


def main() -> None:
    """Parse the command line, run the writes, print pages per request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300, help="requests per phase (300)")
    options = parser.parse_args()
    app, token, database = _make_app(observed=False)
    _hold_off_checkpoints(database)
    path = Path(str(database.url.database))
    ids = []
    for i in range(options.users):
        status, data = _call(app, "POST", "/scim/v2/Users", token, user_body(i))
        assert status == 201, data
        ids.append(json.loads(data)["id"])

    def patch(i: int) -> int:
        return _call(app, "PATCH", f"/scim/v2/Users/{ids[i]}", token, ENTRA_DEACTIVATE)[0]

    def delete(i: int) -> int:
        return _call(app, "DELETE", f"/scim/v2/Users/{ids[i]}", token)[0]

    _measure(path, "patch active=false", patch, 200, options.users)
    _measure(path, "delete", delete, 204, options.users)
    database.dispose()


def _hold_off_checkpoints(database: Database) -> None:
    """Keep the log growing, never started over: its size then counts the frames."""

    @event.listens_for(database.engine, "connect")
    def _no_checkpoints(driver: Any, _record: Any) -> None:
        driver.execute("PRAGMA wal_autocheckpoint=0")

    database.dispose()  # the connections open so far: the next ones get the setting


def _measure(
    path: Path, label: str, request: Callable[[int], int], wanted: int, count: int
) -> None:
    owners = _owners(path)
    started_over = _log_generation(path)
    frames_per_request: list[int] = []
    by_page: Counter[int] = Counter()
    for i in range(count):
        before = _frames(path)
        status = request(i)
        assert status == wanted, f"{label}: {status}"
        after = _frames(path)
        frames_per_request.append(after - before)
        by_page.update(_pages(path, before, after))
    if _log_generation(path) != started_over:
        raise SystemExit("the log was checkpointed and started over: frame counts are wrong")
    owners = {**_owners(path), **owners}  # a freed page counts for what it was before
    by_tree: Counter[str] = Counter()
    for page, frames in by_page.items():
        by_tree[owners.get(page, f"page {page} (new)")] += frames
    print(
        f"{label}: {statistics.mean(frames_per_request):.1f} frames a request "
        f"(median {statistics.median(frames_per_request):.0f}, {count} requests)"
    )
    for tree, frames in by_tree.most_common():
        print(f"  {tree:40s} {frames / count:5.2f}")


def _page_size(path: Path) -> int:
    with open(f"{path}-wal", "rb") as log:
        return int.from_bytes(log.read(LOG_HEADER)[8:12], "big")


def _log_generation(path: Path) -> bytes:
    """Return the log header's checkpoint sequence number and salts: new when it starts over."""
    with open(f"{path}-wal", "rb") as log:
        return log.read(LOG_HEADER)[12:24]


def _frames(path: Path) -> int:
    size = Path(f"{path}-wal").stat().st_size
    return max(0, size - LOG_HEADER) // (_page_size(path) + FRAME_HEADER)


def _pages(path: Path, first: int, end: int) -> list[int]:
    """Return the page number of each frame from ``first`` to ``end`` (the frame header's)."""
    frame = _page_size(path) + FRAME_HEADER
    pages = []
    # The log is read as a plain file: SQLite keeps no lock on it (its locks are on the
    # database and the -shm files, which this never opens).
    with open(f"{path}-wal", "rb") as log:
        for number in range(first, end):
            log.seek(LOG_HEADER + number * frame)
            pages.append(int.from_bytes(log.read(4), "big"))
    return pages


def _owners(path: Path) -> dict[int, str]:
    """Return the B-tree each page of the database belongs to (SQLite's dbstat table)."""
    connection = sqlite3.connect(path)
    try:
        return dict(connection.execute("SELECT pageno, name FROM dbstat").fetchall())
    finally:
        connection.close()


if __name__ == "__main__":
    main()
