"""Timestamps keep their instant whatever time zone the PostgreSQL server runs in."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from scimbridge.app import create_app
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ScimClient
from .conftest import created
from .conftest import make_settings
from .conftest import user_payload
from .services import PostgresServer

_FAR_ZONE = "Pacific/Auckland"  # 12 or 13 hours ahead of UTC: no chance of a near miss


def _scim_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_server_in_another_zone_stores_and_returns_the_same_instants(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database("test_far_zone")
    # A connection of its own each time: a database setting applies to new sessions only.
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE test_far_zone SET timezone TO '{_FAR_ZONE}'"))
    with admin.connect() as conn:
        # A plain session on this database now runs in the far zone.
        assert conn.execute(text("SHOW timezone")).scalar() == _FAR_ZONE
    database = Database(url)
    upgrade(database)
    app = create_app(make_settings(url), database)
    scim = ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("tests"))
    slack = timedelta(seconds=5)

    before = datetime.now(UTC)
    user_id = created(scim.post("/Users", user_payload("far.zone")))
    meta = scim.get(f"/Users/{user_id}").json["meta"]
    for name in ("created", "lastModified"):
        assert before - slack <= _scim_timestamp(meta[name]) <= datetime.now(UTC) + slack

    # What PostgreSQL holds is the same instant, not one shifted by the server's zone.
    with admin.connect() as conn:
        stored = conn.execute(text("SELECT extract(epoch FROM created) FROM users")).scalar()
    assert abs(float(stored) - before.timestamp()) < slack.total_seconds()

    # Filters on dates compare in the same frame as the stored values.
    since = (before - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    until = (before + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    found = scim.get(f'/Users?filter=meta.created gt "{since}" and meta.created lt "{until}"')
    assert [user["id"] for user in found.json["Resources"]] == [user_id]

    database.dispose()
    admin.dispose()
