"""Benchmark scimbridge's SCIM endpoint against the reference server and a bare Flask ceiling.

Three servers run as subprocesses on free local ports, each in its own temporary directory:

* scimbridge (``scimbridge serve``: gunicorn, its gthread-based worker) on a fresh SQLite file;
* the reference, scim2-server's application under waitress (``bench/reference_server.py``);
* the ceiling, ``bench/bare_flask.py`` under the same gunicorn settings as scimbridge; its
  ``DELETE`` is also the durable floor (one row committed as scimbridge commits, then 204).

A light keep-alive client (HTTP/1.1 on plain sockets, a few threads, one connection each)
runs the phases of an identity provider's life cycle on both SCIM servers, which take turns
phase by phase so that machine noise hits both alike, then prints requests per second, the
ratio scimbridge/reference and the target check of each phase. Every response status is
checked: a phase with failed requests is reported as INVALID.

``--database postgresql`` adds scimbridge on a private PostgreSQL (started in a temporary
directory, as the tests start theirs) beside the SQLite one, in the same run; with
``--pg-instances N`` also N ``scimbridge serve`` instances sharing one PostgreSQL database, the
client's connections spread over them, as behind a load balancer.

``--scale`` instead measures how scimbridge's latency grows with its data: filter latency
with 1,000 vs 100,000 users, and one-member PATCH latency on a 10- vs a 50,000-member group.

``--cursor`` measures RFC 9865 cursor paging: the latency of the last page of ``/Users``
against the first (keyset paging: target 1.2x at most), with ``startIndex`` paging beside it.

Run ``python bench/scim_bench.py --help`` for the options; ``bench/README.md`` explains more.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scimbridge.settings import ServerSettings

BENCH_DIR = Path(__file__).resolve().parent
BIN_DIR = Path(sys.executable).parent
HOST = "127.0.0.1"

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SCIM_JSON = "application/scim+json"

# Entra ID's deactivation PATCH: capitalised op and the boolean sent as a string.
ENTRA_DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}
RFC_DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}

REFERENCE = "reference"
SCIMBRIDGE = "scimbridge"
SCIMBRIDGE_PG = "scimbridge-pg"
"""scimbridge on PostgreSQL; SCIMBRIDGE is on SQLite."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """The command line, typed."""

    users: int
    clients: int
    """Connections of the first (or only) count in ``client_counts``: what other modes use."""
    workers: int
    threads: int
    ref_threads: int
    chunk: int
    repeat: int
    walks: int
    ceiling_requests: int
    only: str
    out: Path | None
    scale: bool
    durability: bool
    scale_small: int
    scale_users: int
    big_group: int
    samples: int
    load_clients: int
    token_profile: str | None
    rounds: int
    observability_cost: bool
    control: bool
    cursor: bool
    cursor_users: int
    database: str
    pg_instances: int
    settle: int
    client_counts: tuple[int, ...] = ()
    """Every connection count the comparison runs each round at (``--clients 1,4``)."""


def _client_counts(text: str) -> tuple[int, ...]:
    """Parse ``--clients``: one count or several, comma-separated (``1,4``)."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 4 or 1,4, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts of 1 or more, got {text!r}")
    return counts


def parse_options(argv: list[str] | None = None) -> Options:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description="Benchmark scimbridge against scim2-server and a bare Flask ceiling."
    )
    p.add_argument("--users", type=int, default=2000, help="users per SCIM server (2000)")
    p.add_argument(
        "--clients",
        type=_client_counts,
        default=(4,),
        help="client threads/connections (4); several, comma-separated (1,4), run each round "
        "at each count, with ratios reported per count",
    )
    # scimbridge serve's own defaults, given to the ceiling's gunicorn too.
    server = ServerSettings()
    p.add_argument(
        "--workers",
        type=int,
        default=server.workers,
        help=f"gunicorn workers, both apps ({server.workers}: 2 x CPUs + 1, as scimbridge serve)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=server.threads,
        help=f"gunicorn threads, both apps ({server.threads}, as scimbridge serve)",
    )
    p.add_argument("--ref-threads", type=int, default=4, help="waitress threads (4)")
    p.add_argument("--chunk", type=int, default=100, help="members per group PATCH (100)")
    p.add_argument("--repeat", type=int, default=50, help="GETs of the big group (50)")
    p.add_argument("--walks", type=int, default=8, help="full paging walks of /Users (8)")
    p.add_argument(
        "--ceiling-requests",
        type=int,
        default=4000,
        help="bare Flask GETs, and as many durable-floor DELETEs (4000)",
    )
    p.add_argument("--only", choices=[REFERENCE, SCIMBRIDGE, "both"], default="both")
    p.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--scale", action="store_true", help="run the scale measurements instead")
    p.add_argument(
        "--durability",
        action="store_true",
        help="instead: scimbridge with SQLite synchronous=FULL vs NORMAL (create, patch, delete)",
    )
    p.add_argument("--scale-small", type=int, default=1000, help="small user count (1000)")
    p.add_argument("--scale-users", type=int, default=100_000, help="large user count (100000)")
    p.add_argument("--big-group", type=int, default=50_000, help="big group size (50000)")
    p.add_argument("--samples", type=int, default=200, help="latency samples (200)")
    p.add_argument("--load-clients", type=int, default=8, help="threads loading users (8)")
    p.add_argument(
        "--token-profile",
        default="entra",
        help="profile of scimbridge's token (entra: the PATCH phase sends Entra's form)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every phase this many times on fresh users; report medians (1)",
    )
    p.add_argument(
        "--settle",
        type=int,
        default=150,
        help="before each round (and connection count) wait up to this many seconds for the "
        "1-minute load average to fall to 0.5: the benchmark's own previous block raises it; "
        "0: do not wait (150)",
    )
    p.add_argument(
        "--observability-cost",
        action="store_true",
        help="instead: scimbridge without metrics and access log against scimbridge with "
        "metrics, JSON logs and the access log, in the same run",
    )
    p.add_argument(
        "--control",
        action="store_true",
        help="with --observability-cost: both servers plain, an A/A run whose 'cost' is the "
        "method's own noise",
    )
    p.add_argument(
        "--cursor",
        action="store_true",
        help="measure RFC 9865 cursor paging instead: last page against first (target 1.2x)",
    )
    p.add_argument("--cursor-users", type=int, default=50_000, help="users for --cursor (50000)")
    p.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="postgresql: also run scimbridge on a private PostgreSQL, beside SQLite (sqlite)",
    )
    p.add_argument(
        "--pg-instances",
        type=int,
        default=1,
        help="with --database postgresql and N > 1: also N serve instances sharing one "
        "PostgreSQL database, each with --workers/N processes (1)",
    )
    a = p.parse_args(argv)
    if a.pg_instances > 1 and a.database != "postgresql":
        p.error("--pg-instances needs --database postgresql")
    counts = a.clients
    return Options(**{**vars(a), "clients": counts[0], "client_counts": counts})


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server subprocess listening on a local port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server's output, to explain a failure."""
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def make_workdir(stack: contextlib.ExitStack, name: str) -> Path:
    """Create a temporary directory removed when the benchmark ends."""
    path = Path(tempfile.mkdtemp(prefix=f"scim-bench-{name}-"))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def start_server(
    stack: contextlib.ExitStack,
    name: str,
    argv: list[str],
    workdir: Path,
    port: int,
    ready_path: str,
    env: dict[str, str] | None = None,
) -> Server:
    """Start a server, register its stop with ``stack`` and wait until it answers."""
    log = workdir / "server.log"
    with log.open("wb") as out:
        # A session of its own, so that stopping it reaches the workers a master forked.
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, process, log)
    stack.callback(stop_server, server)
    wait_ready(server, ready_path)
    wait_settled(server)
    return server


def wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    """Poll the server with a GET until it answers anything over HTTP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start:\n{server.log_tail()}")
        conn = http.client.HTTPConnection(HOST, server.port, timeout=5)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{server.log_tail()}")


def wait_settled(server: Server, timeout: float = 60.0) -> None:
    """Wait until the server's processes stop using CPU: every worker has booted.

    gunicorn answers as soon as its first worker is up, while the others still import the
    application. Measured then, the first phase would find one worker taking every
    connection and the others still loading.
    """
    deadline = time.monotonic() + timeout
    spent = process_tree_cpu(server.process.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = process_tree_cpu(server.process.pid)
        if now - spent < 0.05:
            return
        spent = now


def _process_tree(pid: int) -> Iterator[Path]:
    """Yield the ``/proc`` directory of each thread of a process and of its descendants."""
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                thread = Path(f"/proc/{current}/task/{task}")
                yield thread
                pending.extend(int(child) for child in (thread / "children").read_text().split())


def process_tree_cpu_ns(pid: int) -> int:
    """Return the nanoseconds on a CPU of a process's and its descendants' threads.

    From each thread's ``schedstat`` (the scheduler's own count): :func:`process_tree_cpu`
    counts in clock ticks of 10 ms, too coarse for a few hundred requests of a millisecond.
    Threads that have ended are not counted: measure servers whose threads live on.
    """
    total = 0
    for thread in _process_tree(pid):
        with contextlib.suppress(OSError):
            total += int((thread / "schedstat").read_text().split()[0])
    return total


def process_tree_cpu(pid: int) -> float:
    """Return the CPU seconds a process and its descendants have used, ended threads included.

    Read per thread group leader (``/proc/PID/stat`` counts every thread the process had).
    """
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for thread in _process_tree(pid):
        if thread.name != thread.parent.parent.name:
            continue  # not the group leader: its process's figure holds it already
        with contextlib.suppress(OSError):
            fields = (thread.parent.parent / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def stop_server(server: Server) -> None:
    """Terminate a server's process group, and kill it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if server.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(wait)


def start_bare_flask(stack: contextlib.ExitStack, o: Options) -> Server:
    """Start the ceiling: the bare Flask app under scimbridge's gunicorn settings."""
    port = free_port()
    argv = [str(BIN_DIR / "gunicorn"), *gunicorn_args(o, port), "bare_flask:app"]
    workdir = make_workdir(stack, "flask")
    return start_server(
        stack, "bare-flask", argv, workdir, port, "/", {"PYTHONPATH": str(BENCH_DIR)}
    )


def gunicorn_args(o: Options, port: int) -> list[str]:
    """Return the gunicorn settings ``scimbridge serve`` uses."""
    return [
        "-k", "scimbridge.serving.KeepAliveWorker",
        "-w", str(o.workers), "--threads", str(o.threads),
        "--keep-alive", "5", "-b", f"{HOST}:{port}",
        # serve's connection policy too: bare_flask.py defines its pre_request hook.
        "-c", "python:bare_flask",
    ]  # fmt: skip


# --------------------------------------------------------------------------- client


class Client:
    """One persistent keep-alive HTTP/1.1 connection to a server, on a plain socket.

    The client shares the machine's two cores with the servers, so every microsecond it
    spends is taken from them. ``requests`` caps a client thread near 600 requests/s;
    ``http.client`` costs about 0.25 ms of CPU a request here. This one writes each request
    in one ``sendall`` and reads the response by its ``Content-Length`` (or chunks), which
    is all the SCIM servers measured here send, at about a third of that.
    """

    def __init__(self, port: int, prefix: str = "", token: str | None = None) -> None:
        self.port = port
        self.prefix = prefix
        headers = f"Host: {HOST}:{port}\r\nAccept: {SCIM_JSON}\r\n"
        if token:
            headers += f"Authorization: Bearer {token}\r\n"
        self.headers = headers
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.requests = 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send a request and return its status and body; status 0 when it got no answer."""
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self.headers}"
        if body is None:
            request = (head + "\r\n").encode()
        else:
            payload = json.dumps(body).encode()
            head += f"Content-Type: {SCIM_JSON}\r\nContent-Length: {len(payload)}\r\n\r\n"
            request = head.encode() + payload
        self.requests += 1
        for attempt in range(2):
            fresh = self.sock is None
            try:
                if self.sock is None:
                    self.sock = socket.create_connection((HOST, self.port), timeout=300)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buffer = b""
                self.sock.sendall(request)
                return self._response(method)
            except (ConnectionError, _ClosedEarly) as exc:
                # The server may close an idle keep-alive connection: reconnect once.
                self.close()
                if attempt or fresh:
                    return 0, repr(exc).encode()
            except (OSError, ValueError) as exc:
                self.close()
                return 0, repr(exc).encode()
        raise AssertionError("unreachable")

    def _response(self, method: str) -> tuple[int, bytes]:
        received_any = bool(self.buffer)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            received_any = self._receive(received_any) or received_any
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (204, 304) or 100 <= status < 200 or method == "HEAD":
            data = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            data = self._chunked()
        elif "content-length" in headers:
            data = self._exactly(int(headers["content-length"]))
        else:
            data = self._until_close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def _receive(self, received_any: bool = True) -> bool:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            if not received_any:
                raise _ClosedEarly("connection closed before any answer")
            raise ConnectionError("connection closed mid-answer")
        self.buffer += chunk
        return True

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _chunked(self) -> bytes:
        parts = []
        while True:
            while (end := self.buffer.find(b"\r\n")) < 0:
                self._receive()
            size = int(self.buffer[:end].split(b";")[0], 16)
            self.buffer = self.buffer[end + 2 :]
            parts.append(self._exactly(size + 2)[:size])
            if size == 0:
                return b"".join(parts)

    def _until_close(self) -> bytes:
        assert self.sock is not None
        while chunk := self.sock.recv(65536):
            self.buffer += chunk
        data, self.buffer = self.buffer, b""
        self.close()
        return data

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buffer = b""


class _ClosedEarly(Exception):
    """The server closed a kept-alive connection before answering: worth one retry."""


def failure(what: str, status: int, data: bytes) -> str:
    """Describe a failed request in one line."""
    return f"{what} -> {status} {data[:200].decode(errors='replace')}"


@dataclass
class Measure:
    """The outcome of one timed phase on one server."""

    requests: int
    seconds: float
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    connections: int = 1
    busy_seconds: float = 0.0
    """The time the connections spent waiting for their own answers, summed over them."""

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def busy_rate(self) -> float:
        """Requests per second counting only the time spent on this server's own requests.

        What the rate would be without pauses between requests: the figure to compare when
        two servers are measured in step (:class:`InStep`), each idle while the other answers.
        """
        return self.requests * self.connections / self.busy_seconds if self.busy_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form, with the rate."""
        return {**asdict(self), "rate": round(self.rate, 1)}


# A unit of work: do item ``i`` with a client, return None or what went wrong.
Work = Callable[[Client, int], str | None]


class Turns:
    """Two connections, one to each of two servers, taking turns: one item each, in step.

    A side waits for its turn only while the other is present (between :meth:`enter` and
    :meth:`leave`), so a side that has run out of items never holds the other up.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._turn = 0
        self._present: set[int] = set()

    def enter(self, side: int) -> None:
        """Join the alternation; wait (a while) for the other side, so neither starts alone."""
        with self._changed:
            self._present.add(side)
            self._changed.notify_all()
            self._changed.wait_for(lambda: len(self._present) == 2, timeout=60)

    def wait(self, side: int) -> None:
        """Block until it is ``side``'s turn, or the other side has left."""
        with self._changed:
            self._changed.wait_for(lambda: self._turn == side or 1 - side not in self._present)

    def done(self, side: int) -> None:
        """Hand the turn to the other side."""
        with self._changed:
            self._turn = 1 - side
            self._changed.notify_all()

    def leave(self, side: int) -> None:
        """Stop taking turns: the other side goes on alone."""
        with self._changed:
            self._present.discard(side)
            self._turn = 1 - side
            self._changed.notify_all()


@dataclass
class InStep:
    """Run a phase on two servers at once, their requests alternating (``--observability-cost``).

    Each of a phase's connections to one server takes turns with its counterpart to the
    other (connection k with connection k), so both servers see the same moments of the
    machine's load: a change in the noise, which spreads separate runs by ±15-40 % here,
    falls on both alike, and the per-request times of the two can be compared request by
    request. Set in the thread running the phase; :func:`run_parallel` follows it.
    """

    side: int
    turns: list[Turns]


_in_step = threading.local()


def run_parallel(
    make_client: Callable[[], Client], count: int, work: Work, clients: int
) -> Measure:
    """Do ``count`` items of work over ``clients`` threads, each with its own connection.

    In a thread given an :class:`InStep`, each connection takes turns with its counterpart.
    """
    lock = threading.Lock()
    items = iter(range(count))
    errors: list[str] = []
    pool = [make_client() for _ in range(max(1, min(clients, count)))]
    step: InStep | None = getattr(_in_step, "value", None)
    busy: list[float] = []

    def next_item() -> int | None:
        # Shared rather than pre-split, so a connection served faster takes more items.
        with lock:
            return next(items, None)

    def loop(number: int, client: Client) -> None:
        turns = step.turns[number] if step is not None else None
        # In step, connection k does items k, k + n, k + 2n…, as its counterpart does: both
        # end together rather than one finishing alone.
        mine = iter(range(number, count, len(pool))) if turns is not None else None
        if turns is not None and step is not None:
            turns.enter(step.side)
        spent = 0.0
        try:
            while (i := next_item() if mine is None else next(mine, None)) is not None:
                if turns is not None and step is not None:
                    turns.wait(step.side)
                started = time.perf_counter()
                error = work(client, i)
                spent += time.perf_counter() - started
                if turns is not None and step is not None:
                    turns.done(step.side)
                if error is not None:
                    with lock:
                        errors.append(error)
        finally:
            if turns is not None and step is not None:
                turns.leave(step.side)
            with lock:
                busy.append(spent)

    threads = [threading.Thread(target=loop, args=pair) for pair in enumerate(pool)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    for c in pool:
        c.close()
    requests = sum(c.requests for c in pool)
    return Measure(requests, seconds, len(errors), errors[:5], len(pool), sum(busy))


# --------------------------------------------------------------------------- SCIM targets


@dataclass
class Target:
    """A SCIM server under test and what the phases left on it."""

    name: str
    server: Server
    prefix: str
    token: str
    users: dict[int, str] = field(default_factory=dict)
    group_id: str | None = None
    round: int = 0
    """The round being run: each creates users (and a group) of its own."""
    entra_patch: bool = True
    notes: list[str] = field(default_factory=list)
    more_servers: list[Server] = field(default_factory=list)
    """Further instances serving the same database; clients take turns among all of them."""
    _turns: Iterator[int] = field(default_factory=itertools.count)

    def client(self) -> Client:
        """Open a client to this server (the next instance in turn, when there are several)."""
        servers = [self.server, *self.more_servers]
        return Client(servers[next(self._turns) % len(servers)].port, self.prefix, self.token)

    def note(self, text: str) -> None:
        """Record and print a remark on this server's behaviour."""
        self.notes.append(text)
        print(f"  ! {self.name}: {text}", flush=True)


def start_reference(stack: contextlib.ExitStack, o: Options) -> Target:
    """Start scim2-server's application under waitress."""
    port, token = free_port(), secrets.token_urlsafe(16)
    argv = [
        sys.executable, str(BENCH_DIR / "reference_server.py"), "--port", str(port),
        "--threads", str(o.ref_threads),
        # One argument: a random token may start with "-", which argparse would take for an option.
        f"--token={token}",
    ]  # fmt: skip
    workdir = make_workdir(stack, REFERENCE)
    server = start_server(stack, REFERENCE, argv, workdir, port, "/ServiceProviderConfig")
    return Target(REFERENCE, server, "", token)


def start_scimbridge(
    stack: contextlib.ExitStack,
    o: Options,
    name: str = SCIMBRIDGE,
    database_url: str | None = None,
    instances: int = 1,
    settings: dict[str, str] | None = None,
) -> Target:
    """Create a fresh scimbridge database and token, then start ``scimbridge serve``.

    SQLite in the server's directory unless ``database_url`` names another database;
    ``instances`` serve processes share it, with ``--workers`` split between them;
    ``settings`` are extra SCIMBRIDGE_* variables.
    """
    exe = str(BIN_DIR / "scimbridge")
    port, workdir = free_port(), make_workdir(stack, name)
    env = {
        "SCIMBRIDGE_DATABASE_URL": database_url or f"sqlite:///{workdir}/scimbridge.db",
        "SCIMBRIDGE_PUBLIC_URL": f"http://{HOST}:{port}",
        # Point at a missing file so a config/scimbridge.toml nearby cannot change the setup.
        "SCIMBRIDGE_CONFIG": str(workdir / "absent.toml"),
        **(settings or {}),
        # Instances sharing a database share the key signing CSRF tokens, as they must.
        "SCIMBRIDGE_SECRET_KEY": secrets.token_urlsafe(32),
    }
    full_env = {**os.environ, **env}
    run = subprocess.run
    run([exe, "db", "upgrade"], cwd=workdir, env=full_env, check=True, capture_output=True)
    profile = ["--profile", o.token_profile] if o.token_profile else []
    created = run(
        [exe, "token", "create", *profile, "bench"], cwd=workdir, env=full_env, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    token = created.stdout.strip().splitlines()[-1].strip()
    workers = max(1, round(o.workers / instances))
    servers = []
    for number in range(instances):
        instance_dir = workdir if number == 0 else make_workdir(stack, f"{name}-{number}")
        if number:
            port = free_port()
        argv = [
            exe, "serve", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--threads", str(o.threads),
        ]  # fmt: skip
        servers.append(
            start_server(
                stack, name, argv, instance_dir, port, "/scim/v2/ServiceProviderConfig", env
            )
        )
    return Target(name, servers[0], "/scim/v2", token, more_servers=servers[1:])


def start_postgresql_targets(stack: contextlib.ExitStack, o: Options) -> list[Target]:
    """Start a private PostgreSQL and scimbridge on it: one instance, and ``--pg-instances``."""
    sys.path.insert(0, str(BENCH_DIR.parent))  # the tests' PostgreSQL starter
    from tests.services import postgres_server

    postgres = stack.enter_context(postgres_server())
    targets = [start_scimbridge(stack, o, SCIMBRIDGE_PG, postgres.create_database("bench"))]
    if o.pg_instances > 1:
        name = f"{SCIMBRIDGE_PG}-x{o.pg_instances}"
        url = postgres.create_database("bench_instances")
        targets.append(start_scimbridge(stack, o, name, url, o.pg_instances))
    return targets


def user_body(i: int) -> dict[str, Any]:
    """Return the SCIM User created for index ``i``."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": f"bench.user.{i}",
        "name": {"givenName": "Bench", "familyName": f"User {i}", "formatted": f"Bench User {i}"},
        "emails": [{"value": f"bench.user.{i}@example.org", "type": "work", "primary": True}],
        "active": True,
    }


def filter_path(i: int) -> str:
    """Return the URL searching user ``i`` by userName."""
    return "/Users?filter=" + quote(f'userName eq "bench.user.{i}"', safe="")


def members_patch(ids: list[str], op: str = "add") -> dict[str, Any]:
    """Return a PATCH adding (or removing) ``ids`` to a group's members."""
    value = [{"value": i} for i in ids]
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": op, "path": "members", "value": value}],
    }


def create_group(t: Target, name: str) -> str:
    """Create an empty group and return its id."""
    body = {"schemas": [GROUP_SCHEMA], "displayName": name}
    status, data = t.client().call("POST", "/Groups", body)
    if status != 201:
        raise RuntimeError(failure(f"{t.name} POST /Groups", status, data))
    group_id: str = json.loads(data)["id"]
    return group_id


# --------------------------------------------------------------------------- phases


def phase_create(t: Target, o: Options) -> Measure:
    """POST the users; remember their ids for the next phases."""
    first = t.round * o.users
    t.users.clear()

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("POST", "/Users", user_body(first + i))
        if status != 201:
            return failure("POST /Users", status, data)
        t.users[first + i] = json.loads(data)["id"]
        return None

    return run_parallel(t.client, o.users, work, o.clients)


def phase_get(t: Target, o: Options) -> Measure:
    """GET each user by id."""
    ids = list(t.users.values())

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("GET", f"/Users/{ids[i]}")
        return None if status == 200 else failure("GET /Users/id", status, data)

    return run_parallel(t.client, len(ids), work, o.clients)


def phase_filter(t: Target, o: Options) -> Measure:
    """Search each user by userName, as an identity provider does before creating."""
    items = list(t.users.items())

    def work(c: Client, k: int) -> str | None:
        i, user_id = items[k]
        status, data = c.call("GET", filter_path(i))
        if status != 200:
            return failure("GET /Users?filter", status, data)
        found = json.loads(data)
        if found.get("totalResults") != 1 or found["Resources"][0]["id"] != user_id:
            return f"filter bench.user.{i}: wrong result {data[:200]!r}"
        return None

    return run_parallel(t.client, len(items), work, o.clients)


def choose_deactivation(t: Target) -> dict[str, Any]:
    """Probe whether the server takes Entra's PATCH; fall back to the RFC form if not."""
    user_id = next(iter(t.users.values()))
    status, data = t.client().call("PATCH", f"/Users/{user_id}", ENTRA_DEACTIVATE)
    if status < 400:
        return ENTRA_DEACTIVATE
    t.entra_patch = False
    t.note(f"rejects Entra's PATCH ({status} {data[:200]!r}); RFC form used instead")
    return RFC_DEACTIVATE


def phase_patch(t: Target, o: Options) -> Measure:
    """PATCH each user to active=false, Entra style unless the server rejects it."""
    ids = list(t.users.values())
    body = choose_deactivation(t)

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("PATCH", f"/Users/{ids[i]}", body)
        return None if status in (200, 204) else failure("PATCH /Users/id", status, data)

    measure = run_parallel(t.client, len(ids), work, o.clients)
    status, data = t.client().call("GET", f"/Users/{ids[-1]}")
    if status != 200 or json.loads(data).get("active") is not False:
        t.note(f"user still active after the PATCH: {data[:200]!r}")
    return measure


def phase_members(t: Target, o: Options) -> Measure:
    """Create a group, then add every user to it, ``--chunk`` members per PATCH."""
    group_id = t.group_id = create_group(t, f"bench-group-{t.round}")
    ids = list(t.users.values())
    chunks = [ids[k : k + o.chunk] for k in range(0, len(ids), o.chunk)]

    def work(c: Client, k: int) -> str | None:
        status, data = c.call("PATCH", f"/Groups/{group_id}", members_patch(chunks[k]))
        return None if status in (200, 204) else failure("PATCH /Groups/id", status, data)

    # One connection: an identity provider sends a group's PATCHes one after another, and
    # concurrent PATCHes of one group would measure lock contention, not throughput.
    measure = run_parallel(t.client, len(chunks), work, 1)
    check_members(t, len(ids))
    return measure


def check_members(t: Target, expected: int) -> None:
    """Note it when the group does not hold the expected number of members."""
    status, data = t.client().call("GET", f"/Groups/{t.group_id}")
    members = json.loads(data).get("members") or [] if status == 200 else []
    if len(members) != expected:
        t.note(f"group has {len(members)} members, expected {expected} (GET -> {status})")


def group_get(t: Target, o: Options, query: str) -> Measure:
    """GET the big group ``--repeat`` times with a query string."""
    path = f"/Groups/{t.group_id}{query}"

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("GET", path)
        return None if status == 200 else failure(f"GET /Groups/id{query}", status, data)

    return run_parallel(t.client, o.repeat if t.group_id else 0, work, o.clients)


def phase_group_get(t: Target, o: Options) -> Measure:
    """GET the group with all its members."""
    return group_get(t, o, "")


def phase_group_get_bare(t: Target, o: Options) -> Measure:
    """GET the group without its members."""
    measure = group_get(t, o, "?excludedAttributes=members")
    _, data = t.client().call("GET", f"/Groups/{t.group_id}?excludedAttributes=members")
    if b'"members"' in data:
        t.note("excludedAttributes=members still returns the members")
    return measure


def walk_users(c: Client, expected: set[str], page: int = 100) -> str | None:
    """Page through /Users; check every user is seen exactly once."""
    seen: Counter[str] = Counter()
    start, total = 1, len(expected)
    while start <= total:
        status, data = c.call("GET", f"/Users?startIndex={start}&count={page}")
        if status != 200:
            return failure("GET /Users?startIndex", status, data)
        listing = json.loads(data)
        resources = listing.get("Resources") or []
        seen.update(r["id"] for r in resources)
        total = listing["totalResults"]
        if not resources:
            break
        start += len(resources)
    twice = sum(1 for n in seen.values() if n > 1)
    missing = len(expected - seen.keys())
    if twice or missing or len(seen) != len(expected):
        return f"paging: {missing} users missing, {twice} seen twice, {len(seen)} distinct"
    return None


def phase_list(t: Target, o: Options) -> Measure:
    """Walk all users in pages of 100, ``--walks`` times; the rate counts pages."""
    expected = set(t.users.values())
    return run_parallel(t.client, o.walks, lambda c, _: walk_users(c, expected), o.clients)


def phase_delete(t: Target, o: Options) -> Measure:
    """DELETE each user."""
    ids = list(t.users.values())

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("DELETE", f"/Users/{ids[i]}")
        return None if status in (200, 204) else failure("DELETE /Users/id", status, data)

    return run_parallel(t.client, len(ids), work, o.clients)


@dataclass(frozen=True)
class Phase:
    """A benchmark phase; its ``kind`` (``single`` or ``group``) decides its target."""

    key: str
    label: str
    kind: str
    run: Callable[[Target, Options], Measure]


PHASES = [
    Phase("create", "create user", "single", phase_create),
    Phase("get", "get user", "single", phase_get),
    Phase("filter", "filter userName", "single", phase_filter),
    Phase("patch", "patch active", "single", phase_patch),
    Phase("members", "add members (PATCH)", "group", phase_members),
    Phase("group_get", "get group+members", "group", phase_group_get),
    Phase("group_get_bare", "get group -members", "group", phase_group_get_bare),
    Phase("list", "list users (pages)", "group", phase_list),
    Phase("delete", "delete user", "single", phase_delete),
]


def measure_ceiling(server: Server, o: Options) -> Measure:
    """GET the bare Flask app: the most this client and gunicorn setup can do."""

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("GET", f"/Users/{i}")
        return None if status == 200 else failure("GET bare flask", status, data)

    return run_parallel(lambda: Client(server.port), o.ceiling_requests, work, o.clients)


def measure_floor(server: Server, o: Options) -> Measure:
    """DELETE on the bare Flask app: one durable one-row SQLite write a request.

    The fastest a durable write can answer through this gunicorn set-up on this disk: a
    delete phase above it has room left in its request handling, one near it has none.
    """

    def work(c: Client, i: int) -> str | None:
        status, data = c.call("DELETE", f"/Users/floor-{i}")
        return None if status == 204 else failure("DELETE bare flask", status, data)

    return run_parallel(lambda: Client(server.port), o.ceiling_requests, work, o.clients)


def show(phase: str, name: str, m: Measure) -> None:
    """Print one measurement as it completes; shout when requests failed."""
    print(
        f"  {phase:22} {name:16} {m.requests:6} req {m.seconds:7.2f} s {m.rate:9.1f}/s", flush=True
    )
    if m.errors:
        print(f"  !!! {m.errors} FAILED requests in {phase} on {name}; first ones:", flush=True)
        for sample in m.samples:
            print(f"  !!!   {sample}", flush=True)


# --------------------------------------------------------------------------- comparison


def target_ratio(phase: Phase, clients: int) -> float:
    """Return how many times the reference's rate scimbridge must reach in a phase.

    The write-path targets: one connection is how an identity provider's provisioning job
    sends its requests, one after another, and there a durable, audited write must be no
    slower than the in-memory reference (a read twice as fast); with more connections every
    single-resource phase must reach twice the reference. Group and paging phases: 10x.
    """
    if phase.kind != "single":
        return 10.0
    if clients == 1 and phase.key != "get":
        return 1.0
    return 2.0


def target_rate(phase: Phase, reference: float, ceiling: float, clients: int) -> float:
    """Return the rate scimbridge must reach in a phase at this connection count.

    A single-resource target never exceeds 0.9 x the bare Flask ceiling: no app under the
    same gunicorn set-up can answer faster than that.
    """
    wanted = target_ratio(phase, clients) * reference
    return min(wanted, 0.9 * ceiling) if phase.kind == "single" else wanted


LOAD_WARNING = 0.5
"""A 1-minute load average above this at a round's start means something else used the CPUs."""


def round_start_load(label: str, settle: int) -> float:
    """Wait up to ``settle`` seconds for a quiet machine, then print and return its load.

    The 1-minute load average decays with a time constant of a minute: right after a block
    of the benchmark it still shows that block's own load. Waiting for it to fall makes the
    figure at a block's start say whether anything else uses the CPUs.
    """
    deadline = time.monotonic() + settle
    load = os.getloadavg()[0]
    while load > LOAD_WARNING and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    print(f"{label}: load average (1 min) {load:.2f}", flush=True)
    if load > LOAD_WARNING:
        print(
            f"!!! load average {load:.2f} > {LOAD_WARNING} at the start of {label}: "
            "something else uses the CPUs; these figures are not a result",
            flush=True,
        )
    return load


def run_comparison(o: Options) -> dict[str, Any]:
    """Start the servers, run every phase on each in turn, at each connection count.

    :returns: The results of the first connection count at the top level (the layout of a
        single-count run), every count's under ``by_clients``, and the rounds' load averages.
    """
    names = [REFERENCE, SCIMBRIDGE] if o.only == "both" else [o.only]
    counts = o.client_counts or (o.clients,)
    results: dict[str, Any] = {"notes": {}, "loads": [], "by_clients": {}}
    with contextlib.ExitStack() as stack:
        ceiling_server = start_bare_flask(stack, o)
        starters = {REFERENCE: start_reference, SCIMBRIDGE: start_scimbridge}
        targets = [starters[n](stack, o) for n in names]
        if o.database == "postgresql" and SCIMBRIDGE in names:
            targets += start_postgresql_targets(stack, o)
        ports = (
            f"{t.name}:{','.join(str(s.port) for s in [t.server, *t.more_servers])}"
            for t in targets
        )
        print(f"servers up: {', '.join(ports)}", flush=True)
        rounds_by_count: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
        for number in range(o.rounds):
            for k, count in enumerate(counts):
                with_count = replace(o, clients=count)
                label = f"round {number + 1} of {o.rounds}, {count} connection(s)"
                load = round_start_load(label, o.settle)
                results["loads"].append(load)
                # Each (round, count) creates users and a group of its own.
                run_number = number * len(counts) + k
                this_round: dict[str, Any] = {"phases": {}, "load": load}
                ceiling = measure_ceiling(ceiling_server, with_count)
                show("ceiling (bare flask)", "flask", ceiling)
                this_round["ceiling"] = ceiling.as_dict()
                floor = measure_floor(ceiling_server, with_count)
                show("durable floor", "flask+sqlite", floor)
                this_round["floor"] = floor.as_dict()
                for n, phase in enumerate(PHASES):
                    # Alternate who goes first, so drift in machine load favours no server.
                    for t in targets if (n + run_number) % 2 == 0 else targets[::-1]:
                        t.round = run_number
                        m = phase.run(t, with_count)
                        show(phase.label, t.name, m)
                        this_round["phases"].setdefault(phase.key, {})[t.name] = m.as_dict()
                rounds_by_count[count].append(this_round)
        for count, rounds in rounds_by_count.items():
            results["by_clients"][str(count)] = {**median_round(rounds), "rounds": rounds}
        results.update(results["by_clients"][str(counts[0])])
        for t in targets:
            results["notes"][t.name] = t.notes
            results.setdefault("entra_patch", {})[t.name] = t.entra_patch
    return results


DURABILITY_PHASES = ("create", "patch", "delete")
SYNCHRONOUS_MODES = ("FULL", "NORMAL")


def run_durability(o: Options) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Run the write phases on two scimbridge servers, synchronous=FULL and NORMAL, in turns.

    :returns: The measures of each phase, by mode, one per round.
    """
    measures: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with contextlib.ExitStack() as stack:
        targets = [
            start_scimbridge(
                stack, o, f"sync-{mode.lower()}", settings={"SCIMBRIDGE_SQLITE_SYNCHRONOUS": mode}
            )
            for mode in SYNCHRONOUS_MODES
        ]
        print(f"servers up: {', '.join(f'{t.name}:{t.server.port}' for t in targets)}", flush=True)
        phases = [phase for phase in PHASES if phase.key in DURABILITY_PHASES]
        for number in range(o.rounds):
            for n, phase in enumerate(phases):
                # Alternate who goes first, so drift in machine load favours neither mode.
                for t in targets if (n + number) % 2 == 0 else targets[::-1]:
                    t.round = number
                    m = phase.run(t, o)
                    show(phase.label, t.name, m)
                    measures.setdefault(phase.key, {}).setdefault(t.name, []).append(m.as_dict())
    return measures


def _durability_measures(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for by_mode in results["durability"].values() for ms in by_mode.values() for m in ms]


def print_durability(measures: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Print the median rate of each write phase under FULL and NORMAL, and what FULL costs."""
    head = f"{'phase':12} {'FULL/s':>9} {'NORMAL/s':>9} {'FULL/NORMAL':>12}"
    print(f"\n{head}\n{'-' * len(head)}")
    for phase, by_mode in measures.items():
        full = statistics.median(m["rate"] for m in by_mode["sync-full"])
        normal = statistics.median(m["rate"] for m in by_mode["sync-normal"])
        print(f"{phase:12} {full:9.1f} {normal:9.1f} {full / normal:12.0%}")


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of the rounds' rates, with the median ratio and its spread.

    A ratio is taken within each round (both servers measured minutes apart), and its median
    reported: machine noise moves both servers of one round alike, not two rounds.
    """
    phases: dict[str, Any] = {}
    for phase in PHASES:
        by_server = [r["phases"][phase.key] for r in rounds]
        merged: dict[str, Any] = {}
        for name in by_server[0]:
            measures = [server[name] for server in by_server]
            merged[name] = {
                "rate": statistics.median(m["rate"] for m in measures),
                "errors": sum(m["errors"] for m in measures),
                "samples": [s for m in measures for s in m["samples"]][:5],
            }
        ratios = [
            server[SCIMBRIDGE]["rate"] / server[REFERENCE]["rate"]
            for server in by_server
            if SCIMBRIDGE in server and REFERENCE in server and server[REFERENCE]["rate"]
        ]
        if ratios:
            merged["ratios"] = ratios
        phases[phase.key] = merged
    ceiling = statistics.median(r["ceiling"]["rate"] for r in rounds)
    floor = statistics.median(r["floor"]["rate"] for r in rounds)
    return {"phases": phases, "ceiling": {"rate": ceiling}, "floor": {"rate": floor}}


def judge(results: dict[str, Any], clients: int) -> list[dict[str, Any]]:
    """Compute ratio, target and verdict of each phase at this connection count."""
    ceiling = results["ceiling"]["rate"]
    rows = []
    for phase in PHASES:
        by_server = results["phases"][phase.key]
        ref, ours = by_server.get(REFERENCE), by_server.get(SCIMBRIDGE)
        row: dict[str, Any] = {"phase": phase.key, "label": phase.label, "kind": phase.kind}
        row["reference"] = ref["rate"] if ref else None
        row["scimbridge"] = ours["rate"] if ours else None
        row["target"] = target_rate(phase, ref["rate"], ceiling, clients) if ref else None
        ratios = by_server.get("ratios")
        row["ratio"] = statistics.median(ratios) if ratios else None
        row["ratio_range"] = (min(ratios), max(ratios)) if ratios else None
        measured = [m for name, m in by_server.items() if name != "ratios"]
        if any(m["errors"] for m in measured):
            row["result"] = "INVALID"
        elif ours is None or row["target"] is None:
            row["result"] = "-"
        else:
            row["result"] = "PASS" if ours["rate"] >= row["target"] else "FAIL"
        rows.append(row)
    return rows


def fmt(value: float | None, suffix: str = "") -> str:
    """Format a number for the table, or a dash."""
    return "-" if value is None else f"{value:.1f}{suffix}"


def print_table(results: dict[str, Any], rows: list[dict[str, Any]], clients: int) -> None:
    """Print the comparison table of one connection count."""
    rounds = len(results.get("rounds") or [])
    print(f"\n=== {clients} connection(s) ===")
    if rounds > 1:
        print(f"medians of {rounds} rounds; ratio = median of the rounds' own ratios")
    print(f"ceiling (bare Flask, same gunicorn): {results['ceiling']['rate']:.1f} req/s")
    print(
        f"durable floor (bare Flask + one durable SQLite row): {results['floor']['rate']:.1f} "
        "req/s: no durable write (create, patch, delete) can answer faster"
    )
    single = "1 x reference (get: 2 x)" if clients == 1 else "2 x reference"
    print(f"single-resource target = {single}, at most 0.9 x ceiling; group/paging = 10 x ref")
    head = (
        f"{'phase':22} {'reference/s':>12} {'scimbridge/s':>13} {'ratio':>7} "
        f"{'range':>11} {'target/s':>9}"
    )
    print(f"\n{head}  result\n{'-' * (len(head) + 9)}")
    for r in rows:
        spread = r.get("ratio_range")
        spread_text = f"{spread[0]:.2f}-{spread[1]:.2f}x" if spread else "-"
        print(
            f"{r['label']:22} {fmt(r['reference']):>12} {fmt(r['scimbridge']):>13} "
            f"{fmt(r['ratio'], 'x'):>7} {spread_text:>11} {fmt(r['target']):>9}  {r['result']}"
        )
    print_database_table(results)


def print_notes(results: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Print the servers' notes, the rounds' load averages and whether the run counts."""
    for name, notes in results["notes"].items():
        for note in notes:
            print(f"note: {name}: {note}")
    loads = results.get("loads") or []
    if loads:
        print("load average (1 min) at each block's start: " + ", ".join(f"{x:.2f}" for x in loads))
        if max(loads) > LOAD_WARNING:
            print(f"!!! a round started with load above {LOAD_WARNING}: not a quiet machine")
    if any(r["result"] == "INVALID" for r in rows):
        print("\n!!! INVALID: some requests failed; the figures above do not count. !!!")


def print_database_table(results: dict[str, Any]) -> None:
    """Print scimbridge's rates on each database it ran on, against SQLite in the same run."""
    others = [n for n in results["notes"] if n not in (REFERENCE, SCIMBRIDGE)]
    if not others:
        return
    head = f"{'phase':22} {'sqlite/s':>10}" + "".join(f" {n + '/s':>24}" for n in others)
    print(f"\nscimbridge by database (ratio to SQLite)\n{head}\n{'-' * len(head)}")
    for phase in PHASES:
        by_server = results["phases"][phase.key]
        sqlite = by_server.get(SCIMBRIDGE, {}).get("rate")
        cells = []
        for name in others:
            rate = by_server.get(name, {}).get("rate")
            ratio = f" ({rate / sqlite:.2f}x)" if rate and sqlite else ""
            cells.append(f" {fmt(rate) + ratio:>24}")
        print(f"{phase.label:22} {fmt(sqlite):>10}" + "".join(cells))


# --------------------------------------------------------------------------- scale


def median_ms(latencies: list[float]) -> float:
    """Return the median of latencies in seconds, in milliseconds."""
    return statistics.median(latencies) * 1000 if latencies else float("nan")


def bulk_limits(t: Target) -> int:
    """Return how many users one /Bulk request may create; 0 if bulk is unsupported."""
    status, data = t.client().call("GET", "/ServiceProviderConfig")
    bulk = json.loads(data).get("bulk") or {} if status == 200 else {}
    if not bulk.get("supported"):
        return 0
    # A user is ~300 bytes as a bulk operation; stay well under the payload limit.
    by_size = int(bulk.get("maxPayloadSize") or 1_048_576) // 600
    return max(0, min(int(bulk.get("maxOperations") or 0), by_size, 1000))


def bulk_work(t: Target, start: int, per_request: int, stop: int) -> Work:
    """Return work creating users ``start + k*per_request`` onwards through /Bulk."""

    def work(c: Client, k: int) -> str | None:
        first = start + k * per_request
        indices = range(first, min(first + per_request, stop))
        ops = [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": user_body(i)}
            for i in indices
        ]
        status, data = c.call("POST", "/Bulk", {"schemas": [BULK_SCHEMA], "Operations": ops})
        if status != 200:
            return failure("POST /Bulk", status, data)
        for i, op in zip(indices, json.loads(data).get("Operations") or [], strict=False):
            if str(op.get("status")) != "201":
                return f"bulk operation for bench.user.{i} -> {op}"
            t.users[int(op["bulkId"][1:])] = op["location"].rstrip("/").rsplit("/", 1)[-1]
        return None

    return work


def load_users(t: Target, start: int, stop: int, o: Options) -> None:
    """Create users ``start``..``stop`` as fast as the server allows: /Bulk, else POSTs."""
    per_request = bulk_limits(t)
    if per_request:
        count = -(-(stop - start) // per_request)
        m = run_parallel(t.client, count, bulk_work(t, start, per_request, stop), o.load_clients)
    else:

        def post(c: Client, k: int) -> str | None:
            status, data = c.call("POST", "/Users", user_body(start + k))
            if status != 201:
                return failure("POST /Users", status, data)
            t.users[start + k] = json.loads(data)["id"]
            return None

        m = run_parallel(t.client, stop - start, post, o.load_clients)
    how = f"/Bulk x{per_request}" if per_request else "POST"
    print(f"  loaded users {start}..{stop - 1} by {how} in {m.seconds:.1f} s", flush=True)
    if m.errors or len(t.users) < stop:
        raise RuntimeError(f"loading users failed: {m.samples}")


def filter_latency(t: Target, population: int, o: Options) -> dict[str, Any]:
    """Return the median latency of ``--samples`` sequential filters on random userNames."""
    rng, c, latencies, errors = random.Random(population), t.client(), [], 0
    for _ in range(o.samples):
        path = filter_path(rng.randrange(population))
        begin = time.perf_counter()
        status, data = c.call("GET", path)
        latencies.append(time.perf_counter() - begin)
        if status != 200 or json.loads(data).get("totalResults") != 1:
            errors += 1
    c.close()
    return {"users": population, "median_ms": median_ms(latencies), "errors": errors}


def fill_group(t: Target, name: str, ids: list[str]) -> str:
    """Create a group holding ``ids``, added in PATCHes of up to 1,000 members."""
    group_id, c, begin = create_group(t, name), t.client(), time.perf_counter()
    for k in range(0, len(ids), 1000):
        status, data = c.call("PATCH", f"/Groups/{group_id}", members_patch(ids[k : k + 1000]))
        if status not in (200, 204):
            raise RuntimeError(failure(f"filling {name}", status, data))
    c.close()
    print(f"  filled {name} with {len(ids)} members in {time.perf_counter() - begin:.1f} s")
    return group_id


def membership_patches(user_id: str, entra: bool) -> list[dict[str, Any]]:
    """Return the add then remove PATCHes of one member, Entra's form or the RFC's."""
    if entra:
        return [members_patch([user_id], "Add"), members_patch([user_id], "Remove")]
    remove = {"op": "remove", "path": f'members[value eq "{user_id}"]'}
    return [members_patch([user_id]), {"schemas": [PATCH_SCHEMA], "Operations": [remove]}]


def entra_member_form(t: Target, group_id: str, user_id: str) -> bool:
    """Probe whether the server takes Entra's member add and remove; note it if not."""
    c = t.client()
    for entra in (True, False):
        statuses = [
            c.call("PATCH", f"/Groups/{group_id}", body)[0]
            for body in membership_patches(user_id, entra)
        ]
        if all(s in (200, 204) for s in statuses):
            break
        # A rejected Entra remove may have left the member in: the RFC pass removes it.
        t.note(f"rejects Entra's member PATCH (add, remove -> {statuses}); RFC form used")
    c.close()
    return entra


def patch_latency(
    t: Target, groups: dict[str, str], spare: list[str], o: Options
) -> dict[str, Any]:
    """Time one-member add+remove on each group, interleaved, and return the medians."""
    entra = entra_member_form(t, groups["small"], spare[0])
    c, errors = t.client(), []
    latencies: dict[str, list[float]] = {name: [] for name in groups}
    for k in range(o.samples):
        for name in groups if k % 2 == 0 else list(groups)[::-1]:
            begin = time.perf_counter()
            for body in membership_patches(spare[k % len(spare)], entra):
                status, data = c.call("PATCH", f"/Groups/{groups[name]}", body)
                if status not in (200, 204):
                    errors.append(failure(f"PATCH {name} group", status, data))
            latencies[name].append(time.perf_counter() - begin)
    c.close()
    for sample in errors[:5]:
        print(f"  !!! {sample}", flush=True)
    return {name: median_ms(v) for name, v in latencies.items()} | {"errors": len(errors)}


def group_request_latency(
    t: Target, groups: dict[str, str], o: Options, request: Any
) -> dict[str, Any]:
    """Time one request per sample on each group, interleaved, and return the medians.

    ``request(name, group_id, k)`` returns the (method, path, body) of sample ``k``.
    """
    c, errors = t.client(), []
    latencies: dict[str, list[float]] = {name: [] for name in groups}
    for k in range(o.samples):
        for name in groups if k % 2 == 0 else list(groups)[::-1]:
            method, path, body = request(name, groups[name], k)
            begin = time.perf_counter()
            status, data = c.call(method, path, body)
            latencies[name].append(time.perf_counter() - begin)
            if status not in (200, 204):
                errors.append(failure(f"{method} {name} group", status, data))
    c.close()
    for sample in errors[:5]:
        print(f"  !!! {sample}", flush=True)
    return {name: median_ms(v) for name, v in latencies.items()} | {"errors": len(errors)}


def rename_request(name: str, group_id: str, k: int) -> tuple[str, str, Any]:
    """Rename a group (a new displayName each sample)."""
    operation = {"op": "replace", "path": "displayName", "value": f"scale-{name}-{k}"}
    return "PATCH", f"/Groups/{group_id}", {"schemas": [PATCH_SCHEMA], "Operations": [operation]}


def read_without_members_request(name: str, group_id: str, k: int) -> tuple[str, str, Any]:
    """Read a group without its members."""
    return "GET", f"/Groups/{group_id}?excludedAttributes=members", None


def run_scale(o: Options) -> dict[str, Any]:
    """Measure how scimbridge's filter and member PATCH latencies grow with its data."""
    with contextlib.ExitStack() as stack:
        # ``--only reference`` points the scale run at the reference, to try the script out.
        t = (start_reference if o.only == REFERENCE else start_scimbridge)(stack, o)
        print(f"{t.name} up on port {t.server.port}", flush=True)
        load_users(t, 0, o.scale_small, o)
        small = filter_latency(t, o.scale_small, o)
        load_users(t, o.scale_small, o.scale_users, o)
        large = filter_latency(t, o.scale_users, o)
        ids = [t.users[i] for i in sorted(t.users)]
        groups = {
            "small": fill_group(t, "scale-small", ids[:10]),
            "big": fill_group(t, "scale-big", ids[10 : 10 + o.big_group]),
        }
        spare = ids[10 + o.big_group :] or ids[:1]
        patch = patch_latency(t, groups, spare, o)
        rename = group_request_latency(t, groups, o, rename_request)
        read = group_request_latency(t, groups, o, read_without_members_request)
        return {
            "filter": {
                "small": small,
                "large": large,
                "ratio": large["median_ms"] / small["median_ms"],
            },
            "member_patch": {"median_ms": patch, "ratio": patch["big"] / patch["small"]},
            "rename": {"median_ms": rename, "ratio": rename["big"] / rename["small"]},
            "read_without_members": {"median_ms": read, "ratio": read["big"] / read["small"]},
            "server": t.name,
            "notes": t.notes,
        }


def print_scale(s: dict[str, Any], o: Options) -> None:
    """Print the scale results against their target (ratio <= 1.5)."""
    f, p = s["filter"], s["member_patch"]
    verdict = {True: "PASS", False: "FAIL"}
    print(f"\nscale of {s['server']} (target ratio <= 1.5)")
    print(
        f"filter userName median: {f['small']['median_ms']:.2f} ms at {o.scale_small} users, "
        f"{f['large']['median_ms']:.2f} ms at {o.scale_users} -> {f['ratio']:.2f}x "
        f"{verdict[f['ratio'] <= 1.5]}"
    )
    ms = p["median_ms"]
    print(
        f"member add+remove median: {ms['small']:.2f} ms on 10 members, {ms['big']:.2f} ms on "
        f"{o.big_group} -> {p['ratio']:.2f}x {verdict[p['ratio'] <= 1.5]}"
    )
    for key, label in (("rename", "rename"), ("read_without_members", "read -members")):
        r = s[key]["median_ms"]
        print(
            f"{label} median: {r['small']:.2f} ms on 10 members, {r['big']:.2f} ms on "
            f"{o.big_group} -> {s[key]['ratio']:.2f}x {verdict[s[key]['ratio'] <= 1.5]}"
        )
    if f["small"]["errors"] or f["large"]["errors"] or ms["errors"]:
        print("!!! INVALID: some scale requests failed !!!")


def scale_status(s: dict[str, Any]) -> int:
    """Return 2 if scale requests failed, 1 if a ratio misses its target, else 0."""
    f, p = s["filter"], s["member_patch"]
    group_ops = (p, s["rename"], s["read_without_members"])
    if (
        f["small"]["errors"]
        or f["large"]["errors"]
        or any(g["median_ms"]["errors"] for g in group_ops)
    ):
        return 2
    return 1 if max(f["ratio"], *(g["ratio"] for g in group_ops)) > 1.5 else 0


# --------------------------------------------------------------------------- observability


PLAIN = "plain"
OBSERVED = "observed"
OBSERVABILITY_SETTINGS = {
    PLAIN: {
        "SCIMBRIDGE_METRICS__ENABLED": "false",
        "SCIMBRIDGE_ACCESS_LOG": "false",
        "SCIMBRIDGE_LOG_FORMAT": "text",
    },
    OBSERVED: {
        "SCIMBRIDGE_METRICS__ENABLED": "true",
        "SCIMBRIDGE_METRICS__TOKEN": secrets.token_urlsafe(24),
        "SCIMBRIDGE_ACCESS_LOG": "true",
        "SCIMBRIDGE_LOG_FORMAT": "json",
    },
}
"""scimbridge without, and with, what an operator watches: metrics, the access log, JSON."""


def run_observability_cost(o: Options) -> dict[str, Any]:
    """Run every phase on scimbridge plain and observed, in step; return rates, CPU and cost.

    Each phase runs on both servers at once, their requests alternating (:class:`InStep`),
    at each connection count of ``--clients``. Two costs are reported per phase:

    * ``cost``: 1 - observed/plain of the rate counting each server's own request time
      (:attr:`Measure.busy_rate`): what a client sees;
    * ``cpu_cost``: observed/plain - 1 of the CPU the server's processes used per request
      (``/proc``): what the machine pays, steadier than any time a client measures.
    """
    counts = o.client_counts or (o.clients,)
    results: dict[str, Any] = {"by_clients": {str(count): {} for count in counts}, "loads": []}
    with contextlib.ExitStack() as stack:
        # --control: an A/A run, the second server set up as the first.
        setups = (PLAIN, PLAIN if o.control else OBSERVED)
        targets = [
            start_scimbridge(stack, o, name, settings=OBSERVABILITY_SETTINGS[setup])
            for name, setup in zip((PLAIN, OBSERVED), setups, strict=True)
        ]
        print(f"servers up: {', '.join(f'{t.name}:{t.server.port}' for t in targets)}", flush=True)
        for number in range(o.rounds):
            for k, count in enumerate(counts):
                label = f"round {number + 1} of {o.rounds}, {count} connection(s)"
                results["loads"].append(round_start_load(label, o.settle))
                with_count = replace(o, clients=count)
                for t in targets:
                    t.round = number * len(counts) + k
                for phase in PHASES:
                    measured = _run_in_step(phase, targets, with_count)
                    by_phase = results["by_clients"][str(count)].setdefault(phase.key, {})
                    for t, (m, cpu) in zip(targets, measured, strict=True):
                        show(phase.label, t.name, m)
                        rate = m.busy_rate if not m.errors else float("nan")
                        by_phase.setdefault(t.name, []).append(
                            {"busy_rate": rate, "cpu_per_request": cpu / max(1, m.requests)}
                        )
    for count in counts:
        _print_observability_cost(results["by_clients"][str(count)], count)
    loads = ", ".join(f"{x:.2f}" for x in results["loads"])
    print(f"load average (1 min) at each block's start: {loads}")
    return results


def _run_in_step(phase: Phase, targets: list[Target], o: Options) -> list[tuple[Measure, float]]:
    """Run ``phase`` on two targets at once, in step; return each one's measure and CPU seconds."""
    turns = [Turns() for _ in range(o.clients)]
    measured: list[tuple[Measure, float] | None] = [None, None]
    failures: list[BaseException] = []

    def run(side: int) -> None:
        _in_step.value = InStep(side, turns)
        server = targets[side].server
        before = process_tree_cpu_ns(server.process.pid)
        try:
            m = phase.run(targets[side], o)
        except BaseException as exc:  # re-raised below, in the benchmark's own thread
            failures.append(exc)
            return
        measured[side] = (m, (process_tree_cpu_ns(server.process.pid) - before) / 1e9)

    threads = [threading.Thread(target=run, args=(side,)) for side in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return [m for m in measured if m is not None]


def _print_observability_cost(phases: dict[str, Any], count: int) -> None:
    """Print the cost of each phase at one connection count: medians and ranges of rounds."""
    print(f"\nobservability cost at {count} connection(s), plain and observed in step")
    print(
        f"{'phase':22} {'plain/s':>9} {'observed/s':>11} {'cost':>7} {'range':>15}"
        f" {'CPU µs plain':>13} {'observed':>9} {'CPU cost':>9} {'range':>15}"
    )
    for phase in PHASES:
        runs = phases[phase.key]
        plain, observed = runs[PLAIN], runs[OBSERVED]
        pairs = list(zip(plain, observed, strict=True))
        costs = [1 - b["busy_rate"] / a["busy_rate"] for a, b in pairs]
        cpu_costs = [b["cpu_per_request"] / a["cpu_per_request"] - 1 for a, b in pairs]
        runs["cost"], runs["cpu_cost"] = statistics.median(costs), statistics.median(cpu_costs)
        rate_plain = statistics.median(r["busy_rate"] for r in plain)
        rate_observed = statistics.median(r["busy_rate"] for r in observed)
        cpu_plain = statistics.median(r["cpu_per_request"] for r in plain) * 1e6
        cpu_observed = statistics.median(r["cpu_per_request"] for r in observed) * 1e6
        print(
            f"{phase.label:22} {rate_plain:9.1f} {rate_observed:11.1f}"
            f" {runs['cost'] * 100:6.1f}% {_spread(costs):>15}"
            f" {cpu_plain:13.0f} {cpu_observed:9.0f}"
            f" {runs['cpu_cost'] * 100:8.1f}% {_spread(cpu_costs):>15}"
        )


def _spread(values: list[float]) -> str:
    return f"{min(values) * 100:.1f}..{max(values) * 100:.1f}%"


# --------------------------------------------------------------------------- cursor paging

CURSOR_PAGE = 100


def cursor_walk(t: Target) -> list[str]:
    """Walk /Users by cursor in pages of 100; return the cursor of every page, first ("") on."""
    c, cursors, seen = t.client(), [""], 0
    while True:
        status, data = c.call("GET", f"/Users?count={CURSOR_PAGE}&cursor={quote(cursors[-1])}")
        if status != 200:
            raise RuntimeError(failure("GET /Users?cursor", status, data))
        page = json.loads(data)
        seen += len(page.get("Resources") or [])
        if "nextCursor" not in page:
            break
        cursors.append(page["nextCursor"])
    c.close()
    if seen != len(t.users):
        raise RuntimeError(f"cursor walk saw {seen} users of {len(t.users)}")
    return cursors


def page_latency(t: Target, paths: dict[str, str], o: Options) -> dict[str, Any]:
    """Time ``--samples`` GETs of each path, interleaved; return the medians in ms."""
    c, errors = t.client(), 0
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    for k in range(o.samples):
        for name in paths if k % 2 == 0 else list(paths)[::-1]:
            begin = time.perf_counter()
            status, _ = c.call("GET", paths[name])
            latencies[name].append(time.perf_counter() - begin)
            errors += status != 200
    c.close()
    return {name: median_ms(v) for name, v in latencies.items()} | {"errors": errors}


def run_cursor(o: Options) -> dict[str, Any]:
    """Measure the last cursor page of /Users against the first (and index paging's)."""
    with contextlib.ExitStack() as stack:
        t = start_scimbridge(stack, o)
        print(f"{t.name} up on port {t.server.port}", flush=True)
        load_users(t, 0, o.cursor_users, o)
        cursors = cursor_walk(t)
        last_start = (len(cursors) - 1) * CURSOR_PAGE + 1
        cursor = page_latency(
            t,
            {
                "first": f"/Users?count={CURSOR_PAGE}&cursor=",
                "last": f"/Users?count={CURSOR_PAGE}&cursor={quote(cursors[-1])}",
            },
            o,
        )
        index = page_latency(
            t,
            {
                "first": f"/Users?count={CURSOR_PAGE}&startIndex=1",
                "last": f"/Users?count={CURSOR_PAGE}&startIndex={last_start}",
            },
            o,
        )
        return {
            "users": o.cursor_users,
            "pages": len(cursors),
            "cursor": cursor | {"ratio": cursor["last"] / cursor["first"]},
            "index": index | {"ratio": index["last"] / index["first"]},
        }


def print_cursor(c: dict[str, Any]) -> None:
    """Print the cursor paging results against their target (last/first <= 1.2)."""
    verdict = "PASS" if c["cursor"]["ratio"] <= 1.2 else "FAIL"
    print(f"\ncursor paging over {c['users']} users, {c['pages']} pages of {CURSOR_PAGE}")
    for key, label in (("cursor", "cursor (RFC 9865)"), ("index", "startIndex (for scale)")):
        r = c[key]
        print(
            f"{label:24} first page {r['first']:.2f} ms, last page {r['last']:.2f} ms "
            f"-> {r['ratio']:.2f}x" + (f" {verdict} (target <= 1.2)" if key == "cursor" else "")
        )
    if c["cursor"]["errors"] or c["index"]["errors"]:
        print("!!! INVALID: some paging requests failed !!!")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 2 if requests failed, 1 if a target is missed, else 0."""
    o = parse_options(argv)
    results: dict[str, Any]
    if o.observability_cost:
        results = {"observability_cost": run_observability_cost(o)}
        status = 0
    elif o.cursor:
        results = {"cursor": run_cursor(o)}
        print_cursor(results["cursor"])
        c = results["cursor"]
        status = (
            2 if c["cursor"]["errors"] or c["index"]["errors"] else int(c["cursor"]["ratio"] > 1.2)
        )
    elif o.durability:
        results = {"durability": run_durability(o)}
        print_durability(results["durability"])
        status = 2 if any(m["errors"] for m in _durability_measures(results)) else 0
    elif o.scale:
        results = {"scale": run_scale(o)}
        print_scale(results["scale"], o)
        status = scale_status(results["scale"])
    else:
        results = run_comparison(o)
        rows = []
        for count, by_count in results["by_clients"].items():
            notes = {"notes": results["notes"]}
            by_count["table"] = judge(by_count, int(count))
            print_table({**by_count, **notes}, by_count["table"], int(count))
            rows += by_count["table"]
        results["table"] = results["by_clients"][str(o.clients)]["table"]
        print_notes(results, rows)
        verdicts = {r["result"] for r in rows}
        status = 2 if "INVALID" in verdicts else 1 if "FAIL" in verdicts else 0
    results["options"] = {k: str(v) for k, v in asdict(o).items()}
    if o.out:
        o.out.write_text(json.dumps(results, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
