"""``scimbridge serve`` ends a kept-alive connection after its request limit.

A connection stays with the gunicorn worker that accepted it; answering every hundredth
request with ``Connection: close`` makes the client connect again, so long-lived connections
spread over the workers (see ``ServerSettings.requests_per_connection``).
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

from scimbridge.cli import _Gunicorn
from scimbridge.cli import close_after_requests
from scimbridge.settings import Settings

from .services import live_server


def _get(sock: socket.socket, buffer: bytearray, path: str) -> dict[str, str]:
    """Send a GET on a kept-alive connection; return the answer's headers (lower-case names)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
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
    assert default.__module__ == "scimbridge.cli"
