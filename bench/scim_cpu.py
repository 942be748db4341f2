"""CPU per SCIM request inside scimbridge's WSGI app, beside a bare Flask app: no HTTP server.

The throughput benchmark (``scim_bench.py``) measures what a client sees through gunicorn,
on a machine shared with the client and other work. This script calls both WSGI applications
in-process, one request at a time, on a fresh SQLite database, and reports the CPU time each
request costs the app alone: the figure to watch when changing a hot path, steadier than
throughput on a busy machine. ``--profile PHASE`` prints where that phase's time goes.

Run ``python bench/scim_cpu.py [--users 1000] [--profile patch] [--rounds 5]``; with several
rounds, the fastest of them is the figure least disturbed by other work on the machine.
``--observability`` runs every phase twice, in turns: on an app without metrics and access
log, and on one with metrics (prometheus-client in multiprocess mode, as under ``serve``),
JSON log lines and the access log (written to stderr: redirect it), and prints the cost;
with ``--profile PHASE`` it profiles that phase of the observed app instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bare_flask import app as bare_app
from scim_bench import ENTRA_DEACTIVATE
from scim_bench import filter_path
from scim_bench import user_body

from scimbridge.app import create_app
from scimbridge.logs import configure_logging
from scimbridge.service.operations.metrics import use_multiprocess_directory
from scimbridge.settings import MetricsSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

Wsgi = Callable[..., Any]


def _environ(method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
    path, _, query = path.partition("?")
    data = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_ACCEPT": "application/scim+json",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ["CONTENT_TYPE"] = "application/scim+json"
        environ["CONTENT_LENGTH"] = str(len(data))
    return environ


def _call(app: Wsgi, method: str, path: str, token: str, body: Any = None) -> tuple[int, bytes]:
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        statuses.append(status)

    data = b"".join(app(_environ(method, path, token, body), start_response))
    return int(statuses[0][:3]), data


def main() -> None:
    """Parse the command line, run the phases, print CPU per request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="requests per phase (1000)")
    parser.add_argument(
        "--profile",
        help="print a profile of this phase (e.g. patch); with --observability, on the "
        "observed app",
    )
    parser.add_argument(
        "--observability",
        action="store_true",
        help="compare without and with metrics, JSON logs and the access log",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the phases this many times, each round on a fresh store, and print each "
        "phase's fastest round and the median (1)",
    )
    options = parser.parse_args()
    if not options.observability:
        rounds = [
            _run_phases(_make_app(observed=False), options.users, options.profile)
            for _ in range(options.rounds)
        ]
        print(f"CPU per request, {options.users} requests a phase (in-process, SQLite)")
        if len(rounds) > 1:
            print(f"  {'phase':12s} {'fastest':>8s} {'median':>8s}   ({len(rounds)} rounds)")
        for name in rounds[0]:
            per_request = sorted(spent[name] / options.users * 1e6 for spent in rounds)
            if len(rounds) == 1:
                print(f"  {name:12s} {per_request[0]:8.0f} µs")
            else:
                median = statistics.median(per_request)
                print(f"  {name:12s} {per_request[0]:6.0f}µs {median:6.0f}µs")
        return
    use_multiprocess_directory(tempfile.mkdtemp(prefix="scim-cpu-metrics-"))
    configure_logging("INFO", "json")
    if options.profile:
        _run_phases(_make_app(observed=True), options.users, options.profile)
        return
    apps = {"plain": _make_app(observed=False), "observed": _make_app(observed=True)}
    totals: dict[str, dict[str, float]] = defaultdict(dict)
    runs = {name: _phases(*app) for name, app in apps.items()}
    # Set-up objects (two apps, their imports) out of the collector's sight: otherwise each
    # full collection walks them, and its cost lands on whichever app triggers it (an A/A run
    # of two plain apps showed the second 10-40 % slower on cheap requests).
    gc.collect()
    gc.freeze()
    names = list(runs)
    # Phase by phase, taking turns at going first: drift in machine load hits both alike.
    for index in range(len(runs["plain"])):
        for name in names if index % 2 == 0 else names[::-1]:
            phase, work = runs[name][index]
            started = time.process_time()
            for i in range(options.users):
                work(i)
            totals[name][phase] = time.process_time() - started
    print(f"CPU per request, {options.users} requests a phase (in-process, SQLite)")
    print(f"  {'phase':12s} {'plain':>8s} {'observed':>9s}   cost")
    for phase, plain in totals["plain"].items():
        observed = totals["observed"][phase]
        per = options.users / 1e6
        cost = (observed / plain - 1) * 100
        print(f"  {phase:12s} {plain / per:6.0f}µs {observed / per:7.0f}µs {cost:6.1f}%")


def _make_app(observed: bool) -> tuple[Wsgi, str, Database]:
    workdir = Path(tempfile.mkdtemp(prefix="scim-cpu-"))
    settings = Settings(
        database_url=f"sqlite:///{workdir}/scimbridge.db",
        public_url="http://127.0.0.1:8080",
        metrics=MetricsSettings(enabled=observed, token="cpu-bench-metrics-token"),
        access_log=observed,
        log_format="json" if observed else "text",
    )
    database = Database(settings.database_url)
    upgrade(database)
    app = create_app(settings, database)
    token: str = app.extensions["scimbridge"].tokens.create("cpu", profile="entra")
    return app, token, database


def app_with_users(count: int, **service_flags: Any) -> tuple[Wsgi, str, list[str]]:
    """Return a plain app on a fresh store, its token and the ids of ``count`` users made there.

    ``service_flags`` set attributes of its provisioning service (``fast_patch=False``…): the
    A/B scripts build one app per side this way.
    """
    app, token, _ = _make_app(observed=False)
    provisioning = app.extensions["scimbridge"].provisioning
    for flag, value in service_flags.items():
        setattr(provisioning, flag, value)
    ids = []
    for i in range(count):
        status, data = _call(app, "POST", "/scim/v2/Users", token, user_body(i))
        assert status == 201, data
        ids.append(json.loads(data)["id"])
    return app, token, ids


def _run_phases(
    made: tuple[Wsgi, str, Database], count: int, profile: str | None
) -> dict[str, float]:
    """Run every phase ``count`` times; return the CPU seconds each took."""
    spent_by_phase: dict[str, float] = {}
    for name, work in _phases(*made):
        profiler = cProfile.Profile() if profile == name else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for i in range(count):
            work(i)
        if profiler is not None:
            profiler.disable()
        spent_by_phase[name] = time.process_time() - started
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return spent_by_phase


def _phases(app: Wsgi, token: str, database: Database) -> list[tuple[str, Callable[[int], None]]]:
    """Return the phases, in order, each a function of the user index."""
    ids: dict[int, str] = {}

    def expect(status: int, data: bytes, wanted: int) -> None:
        if status != wanted:
            raise SystemExit(f"expected {wanted}, got {status}: {data[:300]!r}")

    def create(i: int) -> None:
        status, data = _call(app, "POST", "/scim/v2/Users", token, user_body(i))
        expect(status, data, 201)
        ids[i] = json.loads(data)["id"]

    def get(i: int) -> None:
        expect(*_call(app, "GET", f"/scim/v2/Users/{ids[i]}", token), 200)

    def search(i: int) -> None:
        expect(*_call(app, "GET", "/scim/v2" + filter_path(i), token), 200)

    def patch(i: int) -> None:
        expect(*_call(app, "PATCH", f"/scim/v2/Users/{ids[i]}", token, ENTRA_DEACTIVATE), 200)

    def delete(i: int) -> None:
        expect(*_call(app, "DELETE", f"/scim/v2/Users/{ids[i]}", token), 204)

    def healthz(i: int) -> None:
        # The cheapest request through scimbridge's own hooks: what they cost stands out.
        expect(*_call(app, "GET", "/healthz", token), 200)

    def bare(i: int) -> None:
        expect(*_call(bare_app, "GET", f"/Users/{i}", token), 200)

    phases: list[tuple[str, Callable[[int], None]]] = [("bare Flask", bare), ("healthz", healthz)]
    phases.append(("create", create))
    phases += [("get", get), ("filter", search), ("patch", patch), ("delete", delete)]
    return phases


if __name__ == "__main__":
    main()
