"""``scimbridge worker``'s own ``/metrics``, for a worker that runs apart from the app.

Run as its own process (its own container, in ``deploy/``), the outbox worker counts jobs
done and failed, LDAP operations and mails where no ``/metrics`` of the app can see them.
With ``metrics.worker_listen`` set, the worker serves them itself on that address:

- its lane processes count into a multiprocess directory of the worker's own (never the
  app's: each server empties its directory when it starts), summed at each scrape;
- the outbox depth and oldest-job age are measured from the store, as the app's ``/metrics``
  measures them;
- the scraper must send ``metrics.token`` as a bearer token; without a token only a loopback
  address is accepted, so the endpoint is never open by accident.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

from .service.operations.metrics import GaugeReader
from .service.operations.metrics import exposition
from .service.operations.metrics import scrape_allowed
from .service.operations.metrics import use_multiprocess_directory
from .service.outbox.worker import queue_gauges
from .settings import Settings
from .store.database import Database

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


class MetricsEndpointRefused(Exception):
    """The settings would serve the worker's metrics openly: ``str()`` says what to change."""


@dataclass(frozen=True)
class EndpointSettings:
    """Where the worker serves its metrics, and the token a scraper must send (if any)."""

    host: str
    port: int
    token: str | None


def endpoint_settings(settings: Settings) -> EndpointSettings | None:
    """Return where to serve the worker's metrics; None when not asked to.

    Raises :class:`MetricsEndpointRefused` for an address other than loopback without a
    metrics token.
    """
    listen = settings.metrics.worker_listen
    if listen is None or not settings.metrics.enabled:
        return None
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    secret = settings.metrics.token
    token = secret.get_secret_value() if secret is not None else ""
    if not token and not _is_loopback(host):
        raise MetricsEndpointRefused(
            f"metrics.worker_listen is {listen}, reachable from other hosts, but metrics.token "
            "is not set: set a metrics token, or listen on a loopback address (127.0.0.1)"
        )
    return EndpointSettings(host, int(port), token or None)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


class MetricsEndpoint:
    """An HTTP server answering ``GET /metrics`` on a thread of its own."""

    def __init__(self, where: EndpointSettings, gauges: list[GaugeReader]) -> None:
        """Bind the address now (a port in use fails here, at start-up)."""
        handler = type("Handler", (_MetricsHandler,), {"token": where.token, "gauges": gauges})
        server_class = _Ipv6Server if ":" in where.host else ThreadingHTTPServer
        self.server = server_class((where.host, where.port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="metrics-endpoint", daemon=True
        )

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when asked for port 0)."""
        port: int = self.server.server_address[1]
        return port

    def start(self) -> None:
        """Answer scrapes until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self.server.shutdown()
        self.server.server_close()


class _Ipv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _MetricsHandler(BaseHTTPRequestHandler):
    """Answers ``GET /metrics``; anything else is 404 (or 501 for other methods)."""

    token: str | None
    gauges: list[GaugeReader]
    server_version = "scimbridge-worker"
    sys_version = ""  # no Python version in the Server header

    def do_GET(self) -> None:  # noqa: N802 (the name http.server looks for)
        """Serve the metrics to a scraper sending the token (when one is set)."""
        if self.path.partition("?")[0] != METRICS_PATH:
            self._answer(404, b"not found\n")
        elif self.token is not None and not scrape_allowed(
            self.headers.get("Authorization"), self.token
        ):
            self._answer(
                401,
                b"a metrics bearer token is required\n",
                {"WWW-Authenticate": 'Bearer realm="scimbridge-metrics"'},
            )
        else:
            try:
                body, content_type = exposition(self.gauges)
            except Exception:
                # The store may be down: the scrape fails, the worker goes on.
                logger.exception("metrics scrape failed")
                self._answer(500, b"metrics unavailable, see the worker's log\n")
                return
            self._answer(200, body, {"Cache-Control": "no-store"}, content_type)

    def _answer(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        """Keep scrapes out of the log but for debugging (one every few seconds)."""
        logger.debug("metrics endpoint: " + format, *args)


@contextmanager
def serving_worker_metrics(
    settings: Settings, database: Database
) -> Iterator[MetricsEndpoint | None]:
    """Serve the worker's metrics while the block runs, if the settings ask for it.

    Enter before anything is counted and before the lane processes are forked: they inherit
    the multiprocess directory chosen here.
    """
    where = endpoint_settings(settings)
    if where is None:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="scimbridge-worker-metrics-")
    use_multiprocess_directory(directory)
    try:
        endpoint = MetricsEndpoint(where, [queue_gauges(database)])
        endpoint.start()
        logger.info("worker metrics at http://%s:%d%s", where.host, endpoint.port, METRICS_PATH)
        try:
            yield endpoint
        finally:
            endpoint.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
