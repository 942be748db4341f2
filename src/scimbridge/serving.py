"""How ``scimbridge serve`` runs the app under gunicorn: its worker class and connection hook.

The benchmark's bare-Flask ceiling (``bench/bare_flask.py``) runs under these too.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable
from typing import Any

import orjson
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.http.errors import LimitRequestLine
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

LIMIT_REQUEST_LINE = 8190
"""Longest request line gunicorn reads (its own ceiling; its default is 4094): a GET with a
filter near ``scim.max_filter_length`` fits, so the app answers it rather than gunicorn."""

_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_OVERSIZED: dict[type[Exception], tuple[int, str, str]] = {
    LimitRequestLine: (
        414,
        "URI Too Long",
        "the request line is too long; send a long filter in the body of POST .search",
    ),
    LimitRequestHeaders: (
        431,
        "Request Header Fields Too Large",
        "a request header is too large, or there are too many",
    ),
}


def oversized_request_answer(exc: Exception) -> bytes | None:
    """Return the raw HTTP answer to a request gunicorn refused as too large, else None.

    gunicorn refuses it before any path is parsed, so no route (and no Flask) sees it, and
    gunicorn's own answer is an HTML page. This one is a SCIM ``Error`` (RFC 7644 §3.12),
    which SCIM clients expect and any other client reads as plain JSON.
    """
    for kind, (status, reason, detail) in _OVERSIZED.items():
        if isinstance(exc, kind):
            body = orjson.dumps(
                {"schemas": [_ERROR_SCHEMA], "status": str(status), "detail": detail}
            )
            head = (
                f"HTTP/1.1 {status} {reason}\r\n"
                "Connection: close\r\n"
                "Content-Type: application/scim+json\r\n"
                "X-Content-Type-Options: nosniff\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            return head.encode("latin-1") + body
    return None


class KeepAliveWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, answering a kept-alive connection's next request in place.

    gthread hands a connection back to its main thread after every answer: the main thread
    polls it again and, when the next request arrives, submits it to the thread pool once
    more. That round trip (a wake-up pipe, poller registration, a pool hand-off and GIL
    switches between three threads) is paid on every request of an identity provider's few
    busy connections. Measured on a bare Flask app with 4 keep-alive clients on a 2-core
    machine, it was about a quarter of the server's CPU per request (0.41-0.48 ms of CPU a
    request with this worker, 0.57-0.59 ms with gthread).

    Here the thread that answered waits up to :attr:`LINGER_SECONDS` for the connection's
    next request and answers it directly. It hands the connection back as gthread does when
    no request comes in that time, or at once when other connections wait for a thread, so
    a quiet connection never keeps a busy one waiting for more than the linger.
    """

    LINGER_SECONDS = 0.001
    """Long enough for a client on the same host or LAN to send its next request; a client
    farther away costs the thread one short poll before the connection goes back to gthread's
    poller."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued = 0  # connections submitted to the thread pool, not picked up yet
        self._queued_lock = threading.Lock()

    def enqueue_req(self, conn: Any) -> None:
        """Submit a connection to the thread pool (on the main thread), counting it."""
        with self._queued_lock:
            self._queued += 1
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        """Answer the connection's request, then each next one that follows closely."""
        with self._queued_lock:
            self._queued -= 1
        keep = super().handle(conn)
        # gthread answers True to keep the connection, False to close it, or a marker to
        # defer a new connection that has sent nothing yet: only True goes on here.
        while keep is True and self.alive and self._next_request_ready(conn):
            keep = super().handle(conn)
        return keep

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        """Answer a request line or header too large with a SCIM ``Error``, not HTML."""
        answer = oversized_request_answer(exc)
        if answer is None:
            super().handle_error(req, client, addr, exc)
            return
        # One short line, as gunicorn logs it: never the oversized line itself.
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            write_nonblock(client, answer)
        except OSError:
            self.log.debug("Failed to send error message.")

    def _next_request_ready(self, conn: Any) -> bool:
        if conn.parser.unreader.buf.getvalue():
            return True  # read ahead with the last request (a pipelining client)
        if self._queued:
            return False  # another connection waits for this thread
        poller = select.poll()  # not select(): it takes descriptors above 1023 too
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(self.LINGER_SECONDS * 1000))


def close_after_requests(limit: int) -> Callable[[Any, Any], None]:
    """Return a gunicorn ``pre_request`` hook ending each connection after ``limit`` requests.

    gunicorn numbers the requests of a connection (``req_number``); marking the last one
    ``must_close`` makes its answer carry ``Connection: close``. The client then connects again,
    to whichever worker accepts first: a busy worker's listener waits behind its own requests,
    so connections drift to the idle workers.
    """

    def pre_request(_worker: Any, req: Any) -> None:
        if req.req_number >= limit:
            req.must_close = True

    return pre_request
