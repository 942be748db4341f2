"""Concurrent clients against the real server (gunicorn, several workers and threads).

Writes that do not name an If-Match must never fail because another client wrote first: the
server serialises them itself. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from .conftest import group_payload
from .conftest import patch_payload
from .conftest import user_payload
from .services import LiveServer
from .services import PostgresServer
from .services import live_server

THREADS = 8
PER_THREAD = 25


@pytest.fixture(scope="module")
def live_postgres(postgres: PostgresServer) -> Iterator[LiveServer]:
    """Scimbridge under gunicorn on a PostgreSQL database of its own."""
    with live_server(postgres.create_database("live_concurrency")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> LiveServer:
    """Run each test on the live server over SQLite, then over PostgreSQL."""
    name = "live" if request.param == "sqlite" else "live_postgres"
    value: LiveServer = request.getfixturevalue(name)
    return value


class Client:
    """A thread's own HTTP connection to the live server."""

    def __init__(self, server: LiveServer) -> None:
        self.base = server.scim_url
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {server.token}", "Content-Type": "application/scim+json"}
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def send(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, f"{self.base}{path}", json=body, timeout=60)


def run_concurrently(server: LiveServer, jobs: list[Callable[[Client], list[int]]]) -> Counter[int]:
    """Run each job in its own thread with its own connection; count the statuses they saw."""

    def run(job: Callable[[Client], list[int]]) -> list[int]:
        with Client(server) as client:
            return job(client)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    return Counter(status for statuses in results for status in statuses)


def create_users(server: LiveServer, names: list[str]) -> list[str]:
    """Create users (concurrently, one connection per thread) and return their ids."""
    ids: dict[str, str] = {}

    def job(chunk: list[str]) -> Callable[[Client], list[int]]:
        def create(client: Client) -> list[int]:
            statuses = []
            for name in chunk:
                response = client.send("POST", "/Users", user_payload(name))
                statuses.append(response.status_code)
                if response.status_code == 201:
                    ids[name] = response.json()["id"]
            return statuses

        return create

    statuses = run_concurrently(server, [job(names[i::THREADS]) for i in range(THREADS)])
    assert statuses == Counter({201: len(names)})
    return [ids[name] for name in names]


def test_concurrent_member_adds_to_one_group_all_land(server: LiveServer) -> None:
    """8 clients each PATCH-adding 25 members one by one to one group: all 200 end up in it."""
    run = uuid.uuid4().hex[:8]
    user_ids = create_users(server, [f"member-{run}-{i}" for i in range(THREADS * PER_THREAD)])
    with Client(server) as client:
        response = client.send("POST", "/Groups", group_payload(f"Crowd {run}"))
        assert response.status_code == 201
        group = response.json()

    def adder(chunk: list[str]) -> Callable[[Client], list[int]]:
        def add(client: Client) -> list[int]:
            statuses = []
            for user_id in chunk:
                response = client.send(
                    "PATCH",
                    f"/Groups/{group['id']}",
                    patch_payload({"op": "add", "path": "members", "value": [{"value": user_id}]}),
                )
                statuses.append(response.status_code)
            return statuses

        return add

    chunks = [user_ids[i * PER_THREAD : (i + 1) * PER_THREAD] for i in range(THREADS)]
    statuses = run_concurrently(server, [adder(chunk) for chunk in chunks])
    # Without If-Match, a 409 or 412 would mean the server lost a race it should have queued.
    assert statuses == Counter({204: THREADS * PER_THREAD})
    with Client(server) as client:
        body = client.send("GET", f"/Groups/{group['id']}").json()
        assert sorted(member["value"] for member in body["members"]) == sorted(user_ids)
        assert body["meta"]["version"] == f'W/"{1 + THREADS * PER_THREAD}"'
        some_user = client.send("GET", f"/Users/{user_ids[-1]}").json()
        assert [each["value"] for each in some_user["groups"]] == [group["id"]]


def test_concurrent_patches_of_one_user_lose_no_update(server: LiveServer) -> None:
    """8 clients each adding 5 emails to one user without If-Match: all 40 are kept."""
    run = uuid.uuid4().hex[:8]
    with Client(server) as client:
        response = client.send("POST", "/Users", user_payload(f"busy-{run}"))
        assert response.status_code == 201
        user = response.json()

    def adder(thread: int) -> Callable[[Client], list[int]]:
        def add(client: Client) -> list[int]:
            statuses = []
            for i in range(5):
                email = {"value": f"t{thread}-{i}@{run}.example", "type": "other"}
                response = client.send(
                    "PATCH",
                    f"/Users/{user['id']}",
                    patch_payload({"op": "add", "path": "emails", "value": [email]}),
                )
                statuses.append(response.status_code)
            return statuses

        return add

    statuses = run_concurrently(server, [adder(thread) for thread in range(THREADS)])
    assert statuses == Counter({200: THREADS * 5})
    with Client(server) as client:
        body = client.send("GET", f"/Users/{user['id']}").json()
    assert len(body["emails"]) == THREADS * 5
    assert body["meta"]["version"] == f'W/"{1 + THREADS * 5}"'


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
def test_concurrent_creates_of_one_name_make_exactly_one(server: LiveServer, endpoint: str) -> None:
    """Many clients creating the same userName (or group name) at once: one 201, the rest 409."""
    run = uuid.uuid4().hex[:8]
    attempts = THREADS * 2

    def creator(variant: int) -> Callable[[Client], list[int]]:
        # The same name in different cases: uniqueness is case-insensitive.
        name = f"same-{run}".upper() if variant % 2 else f"same-{run}"
        body = user_payload(name) if endpoint == "Users" else group_payload(name)

        def create(client: Client) -> list[int]:
            response = client.send("POST", f"/{endpoint}", body)
            if response.status_code == 409:
                assert response.json()["scimType"] == "uniqueness"
            return [response.status_code]

        return create

    statuses = run_concurrently(server, [creator(variant) for variant in range(attempts)])
    assert statuses == Counter({201: 1, 409: attempts - 1})
    attribute = "userName" if endpoint == "Users" else "displayName"
    with Client(server) as client:
        response = client.send("GET", f'/{endpoint}?filter={attribute} eq "same-{run}"')
    assert response.json()["totalResults"] == 1
