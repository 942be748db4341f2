"""Counters, histograms and gauges of scimbridge, and their Prometheus exposition.

Two ways to count, both exported on ``/metrics``:

- :func:`instruments` gives the declared Prometheus metrics (requests, logins, mails, LDAP
  operations, SCIM deviations, rate limits): ``instruments().logins.labels(outcome="ok").inc()``.
- :class:`Metrics` is a small registry the outbox counts into by name; every counter counted
  there is exported too, under its own name (``scimbridge_outbox_done_total{kind=…}``).

Under gunicorn, each worker process counts on its own; ``scimbridge serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a directory where prometheus-client keeps every process's
values, and a scrape sums them. Gauges measured from the store (outbox depth and the age of
its oldest job) are read at scrape time instead, so they never disagree between processes.
A separate ``scimbridge worker`` serves the same exposition on its own address
(``worker_metrics.py``), its lane processes summed the same way.

Labels take only values from small fixed sets (a route template, never a path; a job kind,
never an id or a userName): each label value is a time series kept forever.
"""

from __future__ import annotations

import functools
import hmac
import os
import platform
import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Literal

from ... import __version__

if TYPE_CHECKING:
    from prometheus_client import Counter
    from prometheus_client.metrics_core import Metric

MetricKind = Literal["counter", "gauge"]

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
        instruments().count(name, labels or {}, amount)

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


MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""Environment variable naming the directory where each process keeps its values."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram buckets in seconds: a SCIM request takes a few milliseconds, a bulk one seconds."""


class Instruments:
    """The Prometheus metrics one process counts into.

    Created on first use (see :func:`instruments`), after ``serve`` has chosen the
    multiprocess directory: prometheus-client decides where values live when a metric is made.
    """

    def __init__(self) -> None:
        """Declare every metric (imported here, after the multiprocess directory is set)."""
        from prometheus_client import CollectorRegistry
        from prometheus_client import Counter
        from prometheus_client import Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        """This process's metrics (read directly when there is no multiprocess directory)."""
        self._counters: dict[str, Counter] = {}
        self._counters_lock = threading.Lock()

        def counter(name: str, documentation: str, labels: Iterable[str]) -> Counter:
            return Counter(name, documentation, list(labels), registry=self.registry)

        def histogram(name: str, documentation: str, labels: Iterable[str]) -> Histogram:
            return Histogram(
                name, documentation, list(labels), registry=self.registry, buckets=LATENCY_BUCKETS
            )

        self.scim_requests = counter(
            "scimbridge_scim_requests",
            "SCIM requests answered, by resource (Users, Groups, Bulk…), method and status.",
            ("resource", "method", "status"),
        )
        self.scim_request_seconds = histogram(
            "scimbridge_scim_request_duration_seconds",
            "Time to answer a SCIM request, by resource and method.",
            ("resource", "method"),
        )
        self.http_requests = counter(
            "scimbridge_http_requests",
            "Requests other than SCIM answered, by surface (api, pages), route template, "
            "method and status.",
            ("surface", "route", "method", "status"),
        )
        self.http_request_seconds = histogram(
            "scimbridge_http_request_duration_seconds",
            "Time to answer a System API or page request, by surface and route template.",
            ("surface", "route", "method"),
        )
        self.logins = counter(
            "scimbridge_logins",
            "Login attempts on the web pages, by outcome: ok, refused (wrong email or "
            "password, or a suspended account), locked (too many attempts).",
            ("outcome",),
        )
        self.mails = counter(
            "scimbridge_mails",
            "Emails handed to the transport (sent) or not (failed: will be retried or parked).",
            ("outcome",),
        )
        self.ldap_operations = counter(
            "scimbridge_ldap_operations",
            "LDAP sync jobs applied to the directory, by operation (user, group, members) and "
            "outcome (ok, unavailable, refused, error).",
            ("operation", "outcome"),
        )
        self.scim_deviations = counter(
            "scimbridge_scim_deviations",
            "RFC 7644 deviations met in SCIM requests, by kind and outcome (tolerated, refused).",
            ("kind", "outcome"),
        )
        self.rate_limited = counter(
            "scimbridge_rate_limited",
            "Requests refused by a rate limit, by surface (scim, api, pages).",
            ("surface",),
        )

    def count(self, name: str, labels: Mapping[str, str], amount: float = 1.0) -> None:
        """Add to a counter known only by name (those of :class:`Metrics`), made on first use."""
        from prometheus_client import Counter

        found = self._counters.get(name)
        if found is None:
            with self._counters_lock:
                found = self._counters.get(name)
                if found is None:
                    found = Counter(
                        name,
                        f"Outbox counter {name} (see service/outbox/worker.py).",
                        sorted(labels),
                        registry=self.registry,
                    )
                    self._counters[name] = found
        if labels:
            found.labels(**labels).inc(amount)
        else:
            found.inc(amount)


@functools.cache
def instruments() -> Instruments:
    """Return this process's metrics, made on first use."""
    return Instruments()


def use_multiprocess_directory(directory: str) -> None:
    """Keep every process's values in ``directory`` (emptied now), for a scrape to sum.

    Call before the server forks its workers and before anything is counted.
    """
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            # A previous run's values would be summed into this one's.
            os.unlink(os.path.join(directory, name))
    os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
    from prometheus_client import values

    # prometheus-client picks its value store when first imported; it may have been already.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_process(pid: int) -> None:
    """Drop the live values of a worker process that exited (gunicorn's ``child_exit``)."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


GaugeReader = Callable[[], Metrics]
"""Measures gauges at scrape time (e.g. the outbox queue from the store) into a Metrics."""


class _ScrapeTimeGauges:
    """A Prometheus collector exporting the gauges a :data:`GaugeReader` measures."""

    def __init__(self, reader: GaugeReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, GaugeMetricFamily] = {}
        for sample in self.reader().samples():
            if sample.kind != "gauge":
                continue
            family = families.get(sample.name)
            if family is None:
                family = GaugeMetricFamily(
                    sample.name,
                    f"{sample.name} (measured at scrape time)",
                    labels=[name for name, _ in sample.labels],
                )
                families[sample.name] = family
            family.add_metric([value for _, value in sample.labels], sample.value)
        yield from families.values()


class _BuildInfo:
    """A Prometheus collector exporting ``scimbridge_build_info``."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import InfoMetricFamily

        yield InfoMetricFamily(
            "scimbridge_build",
            "Version of scimbridge and of the Python running it.",
            value={"version": __version__, "python": platform.python_version()},
        )


def scrape_allowed(authorization: str | None, token: str) -> bool:
    """Tell whether an ``Authorization`` header carries the metrics bearer ``token``.

    Compared in constant time: the answer must not tell a guesser how much of it was right.
    An empty ``token`` (a variable set to nothing) lets no one in.
    """
    scheme, _, value = (authorization or "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), token.encode())
    )


def exposition(gauges: Iterable[GaugeReader] = ()) -> tuple[bytes, str]:
    """Return every metric in the Prometheus text format, and its content type.

    Counters and histograms are summed over every process of the server when it runs with a
    multiprocess directory; ``gauges`` are measured now.
    """
    from prometheus_client import CONTENT_TYPE_LATEST
    from prometheus_client import CollectorRegistry
    from prometheus_client import generate_latest
    from prometheus_client import multiprocess

    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(instruments().registry)
    registry.register(_BuildInfo())
    for reader in gauges:
        registry.register(_ScrapeTimeGauges(reader))
    return generate_latest(registry), CONTENT_TYPE_LATEST
