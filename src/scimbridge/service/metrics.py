"""In-memory counters and gauges, labelled, for a metrics endpoint to expose.

Counters only grow (jobs attempted, failed…) and belong to the process that counts them;
gauges are set to a measured value (queue depth, age of the oldest job) when read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["counter", "gauge"]

RATE_LIMITED = "scimbridge_rate_limited_requests_total"
"""Counter of requests refused with 429 by the per-token rate limit, labelled ``surface``
(``scim`` or ``api``) and ``token`` (its name)."""
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One labelled value of a metric."""

    name: str
    kind: MetricKind
    labels: Labels
    value: float


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


class Metrics:
    """A registry of counters and gauges that several threads may update."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[str, MetricKind] = {}
        self._values: dict[tuple[str, Labels], float] = {}

    def _declare(self, name: str, kind: MetricKind) -> None:
        known = self._kinds.setdefault(name, kind)
        if known != kind:
            raise ValueError(f"metric {name!r} is a {known}, not a {kind}")

    def increment(
        self, name: str, labels: Mapping[str, str] | None = None, amount: float = 1.0
    ) -> None:
        """Add ``amount`` (not negative) to a counter."""
        if amount < 0:
            raise ValueError("a counter only grows")
        key = (name, _labels(labels))
        with self._lock:
            self._declare(name, "counter")
            self._values[key] = self._values.get(key, 0.0) + amount

    def set_gauge(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Set a gauge to a measured value."""
        with self._lock:
            self._declare(name, "gauge")
            self._values[(name, _labels(labels))] = value

    def replace_gauge(self, name: str, values: Mapping[Labels, float]) -> None:
        """Set every labelled value of a gauge at once, dropping label sets no longer measured."""
        with self._lock:
            self._declare(name, "gauge")
            for key in [key for key in self._values if key[0] == name]:
                del self._values[key]
            for labels, value in values.items():
                self._values[(name, labels)] = value

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """Return one labelled value; 0 when never set."""
        with self._lock:
            return self._values.get((name, _labels(labels)), 0.0)

    def samples(self) -> list[Sample]:
        """Return every labelled value, sorted by name and labels."""
        with self._lock:
            return [
                Sample(name, self._kinds[name], labels, value)
                for (name, labels), value in sorted(self._values.items())
            ]
