"""Users written straight through the store, for tests that need many of them quickly.

Every read in those tests still goes through an endpoint; only the set-up skips it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from uuid import uuid4

from scimbridge.domain.resources import UserResource
from scimbridge.service.directory.mapping import document
from scimbridge.service.directory.mapping import user_columns
from scimbridge.store import resources as store
from scimbridge.store.database import Transaction


def sequential_ids(count: int) -> list[str]:
    """Return ``count`` fixed user ids that sort in creation order."""
    return [f"00000000-0000-4000-8000-{n:012d}" for n in range(count)]


def store_users(
    conn: Transaction,
    user_names: Sequence[str],
    created: datetime,
    *,
    apart: timedelta = timedelta(0),
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Insert active users named ``user_names`` in the caller's transaction; return their ids.

    The n-th is created at ``created + n * apart``, with ``ids[n]`` (a random id if none).
    """
    made = []
    for n, user_name in enumerate(user_names):
        user = UserResource(user_name=user_name, active=True)
        record = store.insert_user(
            conn,
            ids[n] if ids is not None else str(uuid4()),
            user_columns(document(user)),
            document(user),
            None,
            created + n * apart,
        )
        made.append(record.id)
    return made
