"""A bare Flask app: the ceiling and the durable floor of the SCIM benchmark.

It runs under the same gunicorn settings as ``scimbridge serve``, so its throughput is what
Flask plus gunicorn plus the benchmark client can reach with no SCIM work at all (GET: one
fixed JSON document), and with nothing but one durable write (``DELETE /Users/<id>``: one row
committed the way scimbridge commits, then 204).

Run it with
``gunicorn -k scimbridge.serving.KeepAliveWorker -w 5 --threads 2 --keep-alive 5
-c python:bare_flask bare_flask:app``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from flask import Flask
from flask import Response

from scimbridge.serving import close_after_requests
from scimbridge.settings import ServerSettings
from scimbridge.store.database import Database

# Shaped and sized like a SCIM User, so the bytes on the wire match the GET phase. It is
# serialised once: the ceiling must measure the framework and the server, not JSON encoding.
DOCUMENT = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bench.user.0",
        "name": {"givenName": "Bench", "familyName": "User 0", "formatted": "Bench User 0"},
        "emails": [{"value": "bench.user.0@example.org", "type": "work", "primary": True}],
        "active": True,
        "meta": {
            "resourceType": "User",
            "created": "2025-01-01T00:00:00Z",
            "lastModified": "2025-01-01T00:00:00Z",
            "version": 'W/"1"',
            "location": "http://127.0.0.1:8080/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
        },
    }
).encode()

app = Flask(__name__)

# gunicorn reads this module as its config too (``-c python:bare_flask``): the same
# keep-alive policy as ``scimbridge serve`` (Connection: close every Nth request).
_LIMIT = ServerSettings().requests_per_connection
if _LIMIT:
    pre_request = close_after_requests(_LIMIT)


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def document(path: str) -> Response:
    """Answer the fixed document, whatever the path."""
    return Response(DOCUMENT, mimetype="application/scim+json")


FLOOR_DATABASE = Path("durable-floor.sqlite3")
"""The durable floor's SQLite file, in the server's working directory (shared by its workers)."""


@functools.cache
def _floor_database(pid: int) -> Database:
    """Return this worker process's store of the durable floor, creating its table once.

    Opened in the worker (keyed by its pid), never in gunicorn's master, which imports this
    module as its config: a SQLite connection must not cross a fork.
    """
    database = Database(f"sqlite:///{FLOOR_DATABASE.resolve()}")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS writes (id TEXT NOT NULL)")
    return database


@app.delete("/Users/<resource_id>")
def durable_write(resource_id: str) -> Response:
    """Commit one row the way scimbridge commits a write, then answer 204.

    scimbridge's own ``Database.write``: its writer lock, ``BEGIN IMMEDIATE``, WAL with
    ``synchronous=NORMAL``, and an fdatasync of the WAL after the lock (what ``FULL``
    costs). A rowid table with no index: one page a commit, the least a durable write is.
    """
    with _floor_database(os.getpid()).write() as conn:
        driver: Any = conn.connection.dbapi_connection
        driver.execute("INSERT INTO writes (id) VALUES (?)", (resource_id,))
    return Response(status=204)
