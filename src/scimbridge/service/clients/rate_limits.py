"""The per-token rate limit of SCIM and the System API, counted with the ``limits`` library.

Each request of a token is one hit on its surface's limits (``scim`` or ``api``); past them the
request is refused with 429 and a ``Retry-After``. With the default ``memory://`` storage each
gunicorn process counts on its own, so a token may make up to the limit in every process (and
every instance): the default is a safety net far above any identity provider's cycle, not a
quota. A shared storage (``storage_uri``) counts across processes and instances exactly.

Refusals are counted on ``/metrics`` (``scimbridge_rate_limited_total`` by surface: no token
names as labels) and, by token for the admin Provisioning page, in the database: at most one
write a second per process, so a client hammering past its limit does not turn every refusal
into a write.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from limits import RateLimitItem
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from ...settings import RateLimitSettings
from ...store import throttling
from ...store.database import Database
from ..operations.metrics import instruments
from .local_windows import LocalSlidingWindows

SURFACES = ("scim", "api")

_FLUSH_SECONDS = 1.0
_LOCAL_KEYS_LIMIT = 1024
"""How many (surface, token) counter keys are kept made; tokens are few, names are bounded."""
_RECENT = timedelta(minutes=15)
"""How far back the Provisioning page counts refusals (the maintenance task keeps 30 minutes)."""


_LocalLimit = tuple[RateLimitItem, str, int, int]


@dataclass(frozen=True)
class Throttled:
    """A refused request: when the client may try again."""

    retry_after: int
    """Whole seconds until the limit lets a request through again (at least 1)."""


class TokenRateLimiter:
    """Counts each token's requests against its surface's limits."""

    def __init__(self, settings: RateLimitSettings, database: Database) -> None:
        self.enabled = settings.enabled
        self.database = database
        # memory:// counts in this process: our own counters, which start no thread per hit.
        self._local = (
            LocalSlidingWindows() if settings.storage_uri.startswith("memory://") else None
        )
        self._limiter = (
            None
            if self._local is not None
            else SlidingWindowCounterRateLimiter(storage_from_string(settings.storage_uri))
        )
        self._limits: dict[str, list[RateLimitItem]] = {
            "scim": parse_many(settings.scim_per_token),
            "api": parse_many(settings.api_per_token),
        }
        # (surface, token name) -> per limit: (item, its key, window seconds, amount)
        self._local_keys: dict[tuple[str, str], tuple[_LocalLimit, ...]] = {}
        self._lock = threading.Lock()
        self._unwritten: Counter[tuple[str, str, datetime]] = Counter()
        self._last_flush = 0.0

    def hit(self, surface: str, token_name: str) -> Throttled | None:
        """Count one request of a token; return when to retry if it is over a limit."""
        if not self.enabled:
            return None
        if self._local is not None:
            return self._hit_local(self._local, surface, token_name)
        for item in self._limits[surface]:
            if self._counted(item, surface, token_name):
                continue
            return self._refused(item, surface, token_name)
        return None

    def _hit_local(
        self, local: LocalSlidingWindows, surface: str, token_name: str
    ) -> Throttled | None:
        """Count a request in this process's counters, with the token's keys made once."""
        keys = self._local_keys.get((surface, token_name))
        if keys is None:
            if len(self._local_keys) >= _LOCAL_KEYS_LIMIT:
                self._local_keys.clear()  # more names than tokens ever are: start afresh
            keys = self._local_keys[(surface, token_name)] = tuple(
                (item, item.key_for(surface, token_name), item.get_expiry(), item.amount)
                for item in self._limits[surface]
            )
        for item, key, expiry, amount in keys:
            if not local.hit_key(key, expiry, amount):
                return self._refused(item, surface, token_name)
        return None

    def _refused(self, item: RateLimitItem, surface: str, token_name: str) -> Throttled:
        """Count a refusal; return when the limit lets the token through again."""
        reset = self._reset_time(item, surface, token_name)
        self._count_refusal(surface, token_name)
        return Throttled(max(1, math.ceil(reset - time.time())))

    def _counted(self, item: RateLimitItem, surface: str, token_name: str) -> bool:
        # Only the shared storage's limiter: this process's own counters go by _hit_local.
        assert self._limiter is not None
        return self._limiter.hit(item, surface, token_name)

    def _reset_time(self, item: RateLimitItem, surface: str, token_name: str) -> float:
        if self._local is not None:
            return self._local.reset_time(item, surface, token_name)
        assert self._limiter is not None
        return self._limiter.get_window_stats(item, surface, token_name).reset_time

    def recent_refusals(self) -> dict[tuple[str, str], int]:
        """Return refusals of the last 15 minutes by (surface, token name), every process's."""
        self.flush()
        with self.database.read() as conn:
            return throttling.recent_throttled(conn, datetime.now(UTC) - _RECENT)

    def flush(self) -> None:
        """Write the refusals counted since the last write."""
        with self._lock:
            pending, self._unwritten = self._unwritten, Counter()
            self._last_flush = time.monotonic()
        if not pending:
            return
        with self.database.write() as conn:
            for (surface, token_name, minute), amount in pending.items():
                throttling.add_throttled(conn, surface, token_name, minute, amount)

    def _count_refusal(self, surface: str, token_name: str) -> None:
        instruments().rate_limited.labels(surface).inc()  # /metrics: no token names as labels
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        with self._lock:
            self._unwritten[(surface, token_name, minute)] += 1
            due = time.monotonic() - self._last_flush >= _FLUSH_SECONDS
        if due:
            self.flush()
