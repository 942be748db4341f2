"""How ``scimbridge serve`` keeps connections: its worker class and the request limit.

The worker answers a kept-alive connection's next request in the thread that answered the
last one when it follows closely (see ``serving.KeepAliveWorker``). A connection stays with
the gunicorn worker that accepted it; answering every hundredth request with
``Connection: close`` makes the client connect again, so long-lived connections spread over
the workers (see ``ServerSettings.requests_per_connection``).
"""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

from scimbridge.cli.main import _Gunicorn
from scimbridge.serving import KeepAliveWorker
from scimbridge.serving import close_after_requests
from scimbridge.settings import Settings

from .services import live_server


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def _get(sock: socket.socket, buffer: bytearray, path: str) -> dict[str, str]:
    """Send a GET on a kept-alive connection; return the answer's headers (lower-case names)."""
    sock.sendall(_request(path))
    return _answer(sock, buffer)


def _answer(sock: socket.socket, buffer: bytearray) -> dict[str, str]:
    """Read one answer from a kept-alive connection; return its headers (lower-case names)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        buffer.extend(chunk)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.split()[1] == "200", status_line
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        rest += chunk
    buffer[:] = rest[length:]
    return headers


def test_the_last_request_a_connection_may_carry_is_answered_with_close(tmp_path: Path) -> None:
    """With a limit of 3, answers 1 and 2 keep the connection, answer 3 closes it."""
    env = {"SCIMBRIDGE_SERVER__REQUESTS_PER_CONNECTION": "3"}
    with live_server(f"sqlite:///{tmp_path / 'scimbridge.db'}", env) as server:
        address = urlsplit(server.base_url)
        for _ in range(2):  # a new connection starts counting afresh
            with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
                buffer = bytearray()
                answers = [_get(sock, buffer, "/healthz")["connection"] for _ in range(3)]
                assert [answer.lower() for answer in answers] == ["keep-alive"] * 2 + ["close"]
                assert sock.recv(1) == b"", "the server should have closed the connection"


def test_the_hook_marks_only_the_request_at_the_limit() -> None:
    """A connection's requests are numbered from 1; the limit-th one must close."""
    hook = close_after_requests(3)
    requests = [SimpleNamespace(req_number=n, must_close=False) for n in (1, 2, 3)]
    for request in requests:
        hook(None, request)
    assert [request.must_close for request in requests] == [False, False, True]


def test_no_limit_keeps_gunicorns_own_hook() -> None:
    """requests_per_connection = 0 leaves connections as gunicorn keeps them."""
    settings = Settings(server={"requests_per_connection": 0})
    default = _Gunicorn(Settings(), {}).cfg.pre_request
    unlimited = _Gunicorn(settings, {}).cfg.pre_request
    assert unlimited.__name__ == "pre_request"
    assert unlimited.__module__ == "gunicorn.config"
    assert default.__module__ == "scimbridge.serving"


def _connect(base_url: str) -> socket.socket:
    address = urlsplit(base_url)
    # A short timeout: a connection left waiting behind another one fails the test.
    return socket.create_connection((address.hostname, address.port), timeout=5)


def test_requests_close_together_far_apart_and_pipelined_are_all_answered(
    tmp_path: Path,
) -> None:
    with live_server(f"sqlite:///{tmp_path / 'scimbridge.db'}") as server:
        with _connect(server.base_url) as sock:
            buffer = bytearray()
            for _ in range(30):  # back to back: answered in the same thread
                _get(sock, buffer, "/healthz")
            time.sleep(0.05)  # well past the linger: the connection went back to the poller
            _get(sock, buffer, "/healthz")
            sock.sendall(_request("/healthz") + _request("/readyz"))  # two in one packet
            _answer(sock, buffer)
            _answer(sock, buffer)
            assert not buffer


def test_a_quiet_connection_does_not_hold_up_a_busy_one(tmp_path: Path) -> None:
    """With one worker of one thread, a connection that says nothing more leaves the thread."""
    env = {"SCIMBRIDGE_SERVER__WORKERS": "1", "SCIMBRIDGE_SERVER__THREADS": "1"}
    with live_server(f"sqlite:///{tmp_path / 'scimbridge.db'}", env) as server:
        with _connect(server.base_url) as quiet, _connect(server.base_url) as busy:
            quiet_buffer, busy_buffer = bytearray(), bytearray()
            _get(quiet, quiet_buffer, "/healthz")
            for _ in range(20):
                _get(busy, busy_buffer, "/healthz")
            _get(quiet, quiet_buffer, "/healthz")  # still kept alive


def _worker(queued: int = 0) -> KeepAliveWorker:
    # The decision needs no gunicorn set-up: skip the worker's constructor.
    worker = KeepAliveWorker.__new__(KeepAliveWorker)
    worker._queued = queued
    return worker


def _connection(sock: socket.socket, read_ahead: bytes = b"") -> SimpleNamespace:
    return SimpleNamespace(
        sock=sock, parser=SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO(read_ahead)))
    )


def test_the_worker_stays_on_a_connection_only_for_a_request_already_there_or_close() -> None:
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        connection = _connection(server_side)
        started = time.monotonic()
        assert not _worker()._next_request_ready(connection)  # nothing within the linger
        assert time.monotonic() - started < 0.5
        client_side.sendall(_request("/healthz"))
        assert _worker()._next_request_ready(connection)
        # Another connection waits for a thread: hand this one back, even with a request.
        assert not _worker(queued=1)._next_request_ready(connection)
        # A request read ahead with the last one is answered, whoever waits.
        assert _worker(queued=1)._next_request_ready(_connection(server_side, b"GET / HTTP/1.1"))
