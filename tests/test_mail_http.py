"""Email through an HTTP email API, mocked with ``responses`` (it has no local twin)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from scimbridge.service.mail.queue import EMAIL_JOB
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import RetryPolicy
from scimbridge.settings import MailSettings
from scimbridge.store.database import Database
from scimbridge.worker import email_delivery

from .conftest import make_settings
from .outbox_support import Clock
from .outbox_support import job
from .outbox_support import queue_invitation

API = "https://mail-api.example.com/v1/send"
SENDER = "Acme Portal <no-reply@acme.test>"
LINK = "http://scim.test/invitation/s3cr3t-t0ken"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def http_worker(database: Database, clock: Clock, **mail: Any) -> OutboxWorker:
    settings = make_settings(
        str(database.url),
        mail=MailSettings(
            transport="http",
            sender=SENDER,
            product_name="Acme Portal",
            http_url=API,
            http_api_key="key-123",
            **mail,
        ),
    )
    return OutboxWorker(
        database,
        {EMAIL_JOB: email_delivery(settings)},
        policy=RetryPolicy(max_attempts=5, base_seconds=10, max_seconds=60),
        clock=clock,
        jitter=lambda: 1.0,
    )


def test_the_message_is_posted_as_json_with_the_api_key(
    database: Database, api: responses.RequestsMock
) -> None:
    api.post(API, status=202, json={"id": "abc"})
    pk = queue_invitation(database, "ada@example.com", LINK)
    http_worker(database, Clock()).run_once()

    (call,) = api.calls
    request = call.request
    body = json.loads(request.body or b"")
    assert set(body) == {"from", "to", "subject", "text", "html", "message_id"}
    assert body["from"] == SENDER
    assert body["to"] == ["ada@example.com"]
    assert body["subject"] == "You are invited to Acme Portal"
    assert LINK in body["text"] and f'href="{LINK}"' in body["html"]
    assert body["message_id"].startswith(f"<job-{pk}.") and body["message_id"].endswith(
        "@acme.test>"
    )
    assert request.headers["X-Api-Key"] == "key-123"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == body["message_id"]
    assert job(database, pk).status == "done"


def test_the_api_key_header_can_be_renamed(database: Database, api: responses.RequestsMock) -> None:
    api.post(API, status=200)
    queue_invitation(database, "ada@example.com", LINK)
    http_worker(database, Clock(), http_api_key_header="X-Server-Token").run_once()
    assert api.calls[0].request.headers["X-Server-Token"] == "key-123"
    assert "X-Api-Key" not in api.calls[0].request.headers


def test_429_and_503_are_retried_until_the_api_accepts(
    database: Database, api: responses.RequestsMock
) -> None:
    api.post(API, status=429, body="slow down")
    api.post(API, status=503, body="maintenance")
    api.post(API, status=200)
    clock = Clock()
    worker = http_worker(database, clock)
    pk = queue_invitation(database, "ada@example.com", LINK)

    worker.run_once()
    assert (job(database, pk).status, job(database, pk).last_error) == (
        "retrying",
        f"{API} answered HTTP 429: slow down",
    )
    clock.advance(10)
    worker.run_once()
    assert job(database, pk).status == "retrying"
    assert "HTTP 503" in (job(database, pk).last_error or "")
    clock.advance(20)
    worker.run_once()
    assert (job(database, pk).status, job(database, pk).attempts) == ("done", 3)
    assert len(api.calls) == 3


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), "timed out"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "timed out"),
        (requests.exceptions.ConnectionError("refused"), "cannot reach"),
    ],
)
def test_timeouts_and_connection_errors_are_retried(
    database: Database, api: responses.RequestsMock, failure: Exception, reason: str
) -> None:
    api.post(API, body=failure)
    pk = queue_invitation(database, "ada@example.com", LINK)
    http_worker(database, Clock()).run_once()
    info = job(database, pk)
    assert info.status == "retrying"
    assert info.last_error is not None and reason in info.last_error


def test_400_parks_the_job_at_once_with_the_reason_and_no_secret(
    database: Database, api: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    # An API that quotes the rejected message back must not put the link in the job or log.
    api.post(API, status=400, json={"error": "invalid recipient", "html": f"<a href='{LINK}'>"})
    pk = queue_invitation(database, "ada@example.com", LINK)
    with caplog.at_level(logging.DEBUG):
        http_worker(database, Clock()).run_once()
    info = job(database, pk)
    assert (info.status, info.attempts) == ("failed", 1)
    assert info.last_error is not None
    assert info.last_error.startswith(f"{API} answered HTTP 400: ")
    assert "invalid recipient" in info.last_error
    assert LINK not in info.last_error and "[redacted]" in info.last_error
    assert "s3cr3t-t0ken" not in caplog.text
    assert "invalid recipient" in caplog.text


def test_a_redirect_is_not_followed_but_refused(
    database: Database, api: responses.RequestsMock
) -> None:
    api.post(API, status=302, headers={"Location": "https://elsewhere.example.com/"})
    pk = queue_invitation(database, "ada@example.com", LINK)
    http_worker(database, Clock()).run_once()
    assert job(database, pk).status == "failed"
    assert len(api.calls) == 1
