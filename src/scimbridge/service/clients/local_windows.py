"""Sliding-window request counters kept in the process, for the ``memory://`` rate limits.

The ``limits`` library's memory storage starts a timer thread to expire its keys whenever the
previous one has ended: under a steady stream of requests that is a new thread for nearly
every request, which costs more than the rest of the counting. A token's counters here are
two integers per limit, rolled over lazily when a request finds its window has passed, so
nothing needs expiring. The counting is the library's sliding window counter, the same
arithmetic: the previous window's count weighted by how much of it still overlaps the
sliding window, plus the current window's count.
"""

from __future__ import annotations

import math
import threading
import time

from limits import RateLimitItem


class LocalSlidingWindows:
    """Per-key sliding window counters, shared by the threads of one process."""

    def __init__(self) -> None:
        # key -> (index of the current window, its count, the previous window's count)
        self._windows: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one request under ``item`` if it fits; return whether it did."""
        return self.hit_key(item.key_for(*identifiers), item.get_expiry(), item.amount)

    def hit_key(self, key: str, expiry: int, amount: int) -> bool:
        """Count one request under a limit's key (``item.key_for``) if it fits.

        For callers that keep the key and the limit's figures: building the key anew costs
        more than the counting.
        """
        with self._lock:
            now = time.time()
            index, current, previous = self._rolled(key, expiry, now)
            weighted = previous * _previous_ttl(previous, expiry, now) / expiry + current
            if math.floor(weighted) + 1 > amount:
                return False
            self._windows[key] = (index, current + 1, previous)
            return True

    def reset_time(self, item: RateLimitItem, *identifiers: str) -> float:
        """Return when (epoch seconds) the sliding window next lets a request through."""
        key = item.key_for(*identifiers)
        expiry = item.get_expiry()
        with self._lock:
            now = time.time()
            _, current, previous = self._rolled(key, expiry, now)
        if not (previous or current):
            return now
        previous_reset_in = current_reset_in = math.inf
        if previous:
            previous_reset_in = _previous_ttl(previous, expiry, now) % (expiry / previous)
        if current:
            current_reset_in = ((1 - ((now / expiry) % 1)) * expiry + expiry) % expiry
        return now + min(previous_reset_in, current_reset_in)

    def _rolled(self, key: str, expiry: int, now: float) -> tuple[int, int, int]:
        """Return the key's (window index, current count, previous count) as of ``now``."""
        index = int(now // expiry)
        stored = self._windows.get(key)
        if stored is None:
            return index, 0, 0
        stored_index, current, previous = stored
        if stored_index == index:
            return index, current, previous
        if stored_index == index - 1:
            return index, 0, current
        return index, 0, 0


def _previous_ttl(previous: int, expiry: int, now: float) -> float:
    """How many seconds of the previous window still fall inside the sliding window."""
    if not previous:
        return 0.0
    return (1 - (((now - expiry) / expiry) % 1)) * expiry
