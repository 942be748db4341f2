"""How ``scimbridge serve`` runs the app under gunicorn: its worker class and connection hook.

The benchmark's bare-Flask ceiling (``bench/bare_flask.py``) runs under these too.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable
from typing import Any

from gunicorn.workers.gthread import ThreadWorker


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
