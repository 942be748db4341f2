"""Metrics, JSON logs and request ids: what an operator sees of a running scimbridge."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from scimbridge.app import create_app
from scimbridge.domain.lifecycle import Actor
from scimbridge.logs import log_handler
from scimbridge.settings import MetricsSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database

from .conftest import ScimClient
from .conftest import created
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload
from .ldap_support import LdapSyncEnv
from .ldap_support import env
from .lifecycle_support import csrf_token
from .outbox_support import Clock
from .outbox_support import queue_invitation
from .services import LiveServer
from .services import live_server

__all__ = ["env"]

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
METRICS_TOKEN = "metrics-scraper-secret-0123456789"
PASSWORD = "Correct-Horse-Battery-9"


def _scim_headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON, **extra}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    """Serve under gunicorn with 3 worker processes, metrics token set, JSON logs."""
    metrics_dir = tmp_path / "metrics"
    with live_server(
        f"sqlite:///{tmp_path / 'scimbridge.db'}",
        {
            "SCIMBRIDGE_METRICS__TOKEN": METRICS_TOKEN,
            "SCIMBRIDGE_LOG_FORMAT": "json",
            "SCIMBRIDGE_SERVER__WORKERS": "3",
            # A new connection per request: the requests spread over the processes.
            "SCIMBRIDGE_SERVER__REQUESTS_PER_CONNECTION": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
    ) as live:
        yield live, metrics_dir


def _provision(live: LiveServer, users: int) -> list[str]:
    """Create users from 4 client threads and one group; return the user ids."""
    ids: list[str] = []
    lock = threading.Lock()

    def create(numbers: range) -> None:
        for number in numbers:
            answer = requests.post(
                f"{live.scim_url}/Users",
                json={
                    "schemas": [USER_SCHEMA],
                    "userName": f"user{number}@example.com",
                    "password": PASSWORD,
                },
                headers=_scim_headers(live.token, Connection="close"),
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            with lock:
                ids.append(answer.json()["id"])

    threads = [threading.Thread(target=create, args=(range(n, users, 4),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    group = requests.post(
        f"{live.scim_url}/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "staff", "members": [{"value": ids[0]}]},
        headers=_scim_headers(live.token),
        timeout=30,
    )
    assert group.status_code == 201, group.text
    return ids


def test_metrics_after_a_provisioning_run_count_every_request_of_every_worker_process(
    served: tuple[LiveServer, Path],
) -> None:
    """The counts made by several gunicorn processes are summed in one scrape."""
    live, metrics_dir = served
    ids = _provision(live, 24)
    missing = requests.get(
        f"{live.scim_url}/Users/no-such-id", headers=_scim_headers(live.token), timeout=30
    )
    assert missing.status_code == 404
    for user_id in ids[:5]:
        assert (
            requests.get(
                f"{live.scim_url}/Users/{user_id}", headers=_scim_headers(live.token), timeout=30
            ).status_code
            == 200
        )
    assert requests.get(f"{live.base_url}/login", timeout=30).status_code == 200

    # A request is counted once its answer is sent: scrape until the last one shows.
    deadline = time.monotonic() + 10
    while True:
        scrape = requests.get(
            f"{live.base_url}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=30,
        )
        assert scrape.status_code == 200, scrape.text
        samples = _samples(scrape.text)
        login = {"surface": "pages", "route": "/login", "method": "GET", "status": "200"}
        if _value(samples, "scimbridge_http_requests_total", **login) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.05)
    counted = "scimbridge_scim_requests_total"
    assert _value(samples, counted, resource="Users", method="POST", status="201") == 24
    assert _value(samples, counted, resource="Groups", method="POST", status="201") == 1
    assert _value(samples, counted, resource="Users", method="GET", status="404") == 1
    assert _value(samples, counted, resource="Users", method="GET", status="200") == 5
    latency = "scimbridge_scim_request_duration_seconds_count"
    assert _value(samples, latency, resource="Users", method="POST") == 24
    pages = "scimbridge_http_requests_total"
    assert _value(samples, pages, surface="pages", route="/login", method="GET", status="200") == 1
    assert _value(samples, "scimbridge_build_info", version="0.1.0", python=_python()) == 1
    # Several processes answered: their counts live in one file each and were summed.
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 2
    # Route templates, never a raw path: no user id appears in any label.
    assert not any(user_id in scrape.text for user_id in ids)
    assert "no-such-id" not in scrape.text


def _python() -> str:
    import platform

    return platform.python_version()


def test_an_unauthenticated_scrape_is_refused_when_a_metrics_token_is_set(
    served: tuple[LiveServer, Path],
) -> None:
    """No token or a wrong one gets 401 and no metric."""
    live, _ = served
    bare = requests.get(f"{live.base_url}/metrics", timeout=30)
    assert bare.status_code == 401
    assert "scimbridge_" not in bare.text
    wrong = requests.get(
        f"{live.base_url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert wrong.status_code == 401
    scim_token = requests.get(
        f"{live.base_url}/metrics", headers={"Authorization": f"Bearer {live.token}"}, timeout=30
    )
    assert scim_token.status_code == 401


def test_json_log_lines_carry_the_request_id_of_the_response_and_of_the_audit_event(
    served: tuple[LiveServer, Path],
) -> None:
    """One id per request: in the X-Request-ID answer, the access log line and the audit trail."""
    live, _ = served
    created = requests.post(
        f"{live.scim_url}/Users",
        json={"schemas": [USER_SCHEMA], "userName": "ada@example.com", "password": PASSWORD},
        headers=_scim_headers(live.token, **{"X-Request-ID": "idp-req.42"}),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-ID"] == "idp-req.42"
    generated = requests.get(
        f"{live.scim_url}/Users", headers=_scim_headers(live.token), timeout=30
    ).headers["X-Request-ID"]
    assert len(generated) == 32

    assert live.log_path is not None
    # A request's line is written once its answer is sent: wait for the last one's.
    access = _access_records_until(live.log_path, generated)
    mine = [r for r in access if r.get("request_id") == "idp-req.42"]
    assert len(mine) == 1
    line = mine[0]
    assert line["level"] == "INFO"
    assert line["method"] == "POST" and line["path"] == "/scim/v2/Users"
    assert line["status"] == 201 and line["duration_ms"] >= 0
    assert line["actor"] == f"scim:tests-{live.base_url.rsplit(':', 1)[1]}"
    assert "timestamp" in line
    assert any(r.get("request_id") == generated for r in access)

    database = live.env["SCIMBRIDGE_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        audited = conn.execute(
            "SELECT request_id FROM audit_events WHERE target_name = 'ada@example.com'"
        ).fetchall()
    assert audited == [("idp-req.42",)]


def _access_records_until(path: Path, request_id: str, timeout: float = 10.0) -> list[Any]:
    """Return the access log's records once the line of ``request_id`` is among them."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(line) for line in _log_lines(path)]
        access = [r for r in records if r.get("logger") == "scimbridge.access"]
        if any(r.get("request_id") == request_id for r in access) or time.monotonic() > deadline:
            return access
        time.sleep(0.05)


def _log_lines(path: Path) -> list[str]:
    """The server's JSON lines (gunicorn's own start-up lines are text)."""
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


def test_no_log_line_holds_a_token_or_a_password(served: tuple[LiveServer, Path]) -> None:
    """Bearer tokens, passwords and invitation links never reach the log."""
    live, _ = served
    requests.post(
        f"{live.scim_url}/Users",
        json={"schemas": [USER_SCHEMA], "userName": "bob@example.com", "password": PASSWORD},
        headers=_scim_headers(live.token),
        timeout=30,
    )
    requests.get(f"{live.base_url}/invitation/s3cr3t-invitation-t0ken", timeout=30)
    requests.post(
        f"{live.base_url}/login",
        data={"identifier": "bob@example.com", "password": PASSWORD},
        timeout=30,
    )
    requests.get(
        f"{live.base_url}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=30,
    )
    assert live.log_path is not None
    text = live.log_path.read_text()
    assert "/invitation/[redacted]" in text
    for secret in (live.token, PASSWORD, "s3cr3t-invitation-t0ken", METRICS_TOKEN):
        assert secret not in text


# -- in process: the hooks on each surface ------------------------------------------------------


@pytest.fixture
def metrics_app(settings: Settings, database: Database) -> Flask:
    return create_app(
        settings.model_copy(update={"metrics": MetricsSettings(token=METRICS_TOKEN)}), database
    )


@pytest.mark.parametrize("path", ["/scim/v2/Users", "/api/v1/users", "/login", "/nowhere"])
def test_every_surface_answers_with_the_request_id_it_was_given(
    metrics_app: Flask, path: str
) -> None:
    """SCIM, the System API, pages and unknown paths all echo a usable X-Request-ID, once."""
    answer = metrics_app.test_client().get(path, headers={"X-Request-ID": "abc-123"})
    assert answer.headers.getlist("X-Request-ID") == ["abc-123"]


@pytest.mark.parametrize("given", ["x" * 65, "has space", "<script>", "a\u00e9b"])
def test_an_unusable_request_id_is_replaced_by_a_new_one(metrics_app: Flask, given: str) -> None:
    """Too long or with characters outside letters, digits and ``._:-``: a fresh id instead."""
    answer = metrics_app.test_client().get("/login", headers={"X-Request-ID": given})
    assert answer.headers["X-Request-ID"] != given
    assert len(answer.headers["X-Request-ID"]) == 32


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Capture what the JSON log handler writes, as ``scimbridge serve`` sets it up."""
    lines = io.StringIO()
    handler = log_handler("json")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(lines)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_the_access_line_is_one_json_object_with_the_request_fields(
    metrics_app: Flask, json_lines: io.StringIO
) -> None:
    """One line per request: timestamp, level, logger, request id, method, path, status, time."""
    answer = metrics_app.test_client().get(
        "/scim/v2/Users/nobody", headers={"X-Request-ID": "req-7", "Authorization": "Bearer x"}
    )
    answer.close()  # as a WSGI server does once the answer is sent: the line is written then
    assert answer.status_code == 401
    records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    access = [r for r in records if r["logger"] == "scimbridge.access"]
    assert len(access) == 1
    line = access[0]
    assert line["level"] == "INFO" and line["request_id"] == "req-7"
    assert line["method"] == "GET" and line["path"] == "/scim/v2/Users/nobody"
    assert line["status"] == 401 and line["duration_ms"] >= 0
    assert "actor" not in line  # the token was refused: nobody acted
    assert "/scim/v2/Users/nobody 401" in line["message"]
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None
    assert "Bearer" not in json_lines.getvalue()


def test_a_json_line_carries_other_records_fields_and_their_exception(
    json_lines: io.StringIO,
) -> None:
    """Outside a request: the ``extra`` fields (any type, as text if not JSON) and the traceback."""
    log = logging.getLogger("scimbridge.tests")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed %s", "here", extra={"kind": "ldap", "since": timedelta(seconds=3)})
    (line,) = [json.loads(text) for text in json_lines.getvalue().splitlines()]
    assert line["level"] == "ERROR" and line["logger"] == "scimbridge.tests"
    assert line["message"] == "failed here"
    assert line["kind"] == "ldap" and line["since"] == "0:00:03"
    assert "ValueError: boom" in line["exc_info"]
    assert "request_id" not in line


def test_metrics_are_not_served_without_a_metrics_token(app: Flask) -> None:
    """Unconfigured, /metrics does not exist: it is never open by accident."""
    assert app.test_client().get("/metrics").status_code == 404


def test_metrics_are_not_served_with_an_empty_metrics_token(
    settings: Settings, database: Database
) -> None:
    """A token variable set to nothing is no token: /metrics stays 404, even to ``Bearer ``."""
    app = create_app(settings.model_copy(update={"metrics": MetricsSettings(token="")}), database)
    answer = app.test_client().get("/metrics", headers={"Authorization": "Bearer "})
    assert answer.status_code == 404


def test_logins_and_lockouts_are_counted(settings: Settings, database: Database) -> None:
    """A wrong password counts as refused; past the limit, as locked."""
    app = create_app(
        make_settings(
            settings.database_url,
            metrics=MetricsSettings(token=METRICS_TOKEN),
            lifecycle={"login_attempts_per_account": 1},
        ),
        database,
    )
    directory = app.extensions["scimbridge"].directory
    actor = Actor("cli", None, "tests")
    directory.create_user("eve@example.com", "Eve", "E", "member", PASSWORD, actor)
    client = app.test_client()

    def scrape() -> dict[Any, float]:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        return _samples(answer.get_data(as_text=True))

    before = scrape()
    for _ in range(2):
        form = {"identifier": "eve@example.com", "password": "wrong-one-1"}
        token = csrf_token(client.get("/login").get_data(as_text=True))
        client.post("/login", data={**form, "csrf_token": token})
    after = scrape()

    def grew(outcome: str) -> float:
        name = "scimbridge_logins_total"
        return _value(after, name, outcome=outcome) - _value(before, name, outcome=outcome)

    assert grew("refused") == 1
    assert grew("locked") == 1


def _counted(name: str, **labels: str) -> float:
    """Read one labelled value of this process's metrics."""
    from scimbridge.service.operations.metrics import instruments

    return instruments().registry.get_sample_value(name, labels) or 0.0


def test_ldap_sync_jobs_are_counted_by_operation_and_outcome(env: LdapSyncEnv) -> None:
    """Each applied LDAP job counts once, as ok, with the operation it made."""
    before = _counted("scimbridge_ldap_operations_total", operation="user", outcome="ok")
    created(env.scim.post("/Users", user_payload("ldap.metrics@example.com")))
    env.drain()
    after = _counted("scimbridge_ldap_operations_total", operation="user", outcome="ok")
    assert after - before == 1


def test_mails_sent_are_counted(settings: Settings, database: Database, tmp_path: Path) -> None:
    """An email job handed to the transport counts as sent."""
    from scimbridge.service.mail.queue import EMAIL_JOB
    from scimbridge.service.outbox.worker import OutboxWorker
    from scimbridge.settings import MailSettings
    from scimbridge.worker import email_delivery

    mailing = settings.model_copy(
        update={"mail": MailSettings(transport="file", file_dir=tmp_path / "mail")}
    )
    queue_invitation(database, "mail.metrics@example.com", "http://scim.test/invitation/x")
    before = _counted("scimbridge_mails_total", outcome="sent")
    OutboxWorker(database, {EMAIL_JOB: email_delivery(mailing)}, clock=Clock()).run_once()
    assert _counted("scimbridge_mails_total", outcome="sent") - before == 1


def _scrape(app: Flask) -> dict[Any, float]:
    answer = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200
    return _samples(answer.get_data(as_text=True))


def test_the_outbox_queue_is_measured_from_the_store_at_scrape_time(
    metrics_app: Flask, database: Database
) -> None:
    """Depth per kind and state, and the age of the oldest pending job, as the store has them."""
    five_minutes_ago = datetime.now(UTC) - timedelta(minutes=5)
    link = "http://scim.test/invitation/x"
    queue_invitation(database, "queued@example.com", link, now=five_minutes_ago)
    samples = _scrape(metrics_app)
    assert _value(samples, "scimbridge_outbox_jobs", kind="email", status="queued") == 1
    assert _value(samples, "scimbridge_outbox_oldest_pending_age_seconds", kind="email") >= 300


def test_tolerated_and_refused_deviations_are_counted_by_kind(metrics_app: Flask) -> None:
    """Entra's capitalised op counts as tolerated for an entra token, refused for a strict one."""
    tokens = metrics_app.extensions["scimbridge"].tokens
    entra = ScimClient(metrics_app.test_client(), tokens.create("entra", profile="entra"))
    strict = ScimClient(metrics_app.test_client(), tokens.create("strict", profile="strict"))
    user_id = created(entra.post("/Users", user_payload("dev@example.com")))
    name = "scimbridge_scim_deviations_total"
    before = _scrape(metrics_app)
    entra_op = patch_payload({"op": "Replace", "path": "displayName", "value": "D"})
    assert entra.patch(f"/Users/{user_id}", entra_op).status_code == 200
    assert strict.patch(f"/Users/{user_id}", entra_op).status_code == 400
    after = _scrape(metrics_app)
    for outcome in ("tolerated", "refused"):
        grown = _value(after, name, kind="op-case", outcome=outcome)
        assert grown - _value(before, name, kind="op-case", outcome=outcome) == 1


def test_counts_survive_a_worker_process_that_exits(tmp_path: Path) -> None:
    """A gunicorn worker stopped and replaced keeps its counts in the scrape (serve's own dir)."""
    env = {"SCIMBRIDGE_METRICS__TOKEN": METRICS_TOKEN, "SCIMBRIDGE_SERVER__WORKERS": "2"}
    with live_server(f"sqlite:///{tmp_path / 'scimbridge.db'}", env) as live:
        _provision(live, 8)
        workers = _children(live.process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGTERM)  # exits cleanly; gunicorn starts another
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _children(live.process.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        for _ in range(4):  # whichever process answers, the scrape is the same
            scrape = requests.get(
                f"{live.base_url}/metrics",
                headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                timeout=30,
            )
            assert scrape.status_code == 200
            samples = _samples(scrape.text)
            posted = _value(
                samples,
                "scimbridge_scim_requests_total",
                resource="Users",
                method="POST",
                status="201",
            )
            assert posted == 8


def _children(pid: int) -> list[int]:
    """Return the process ids of ``pid``'s children (gunicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found
