"""scim2-tester's RFC checks against scimbridge over real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status
from scim2_tester import check_server

from .services import LiveServer
from .services import live_server


@pytest.fixture
def fresh_live(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of its own: scim2-tester expects to find what it creates on the first page."""
    with live_server(f"sqlite:///{tmp_path / 'conformance.db'}") as server:
        yield server


def test_scim2_tester_reports_every_check_successful(fresh_live: LiveServer) -> None:
    """Every check of scim2-tester's check_server succeeds; nothing is skipped."""
    live = fresh_live
    # A generous timeout: the machine running the suite may be busy with other work.
    headers = {"Authorization": f"Bearer {live.token}"}
    with Client(base_url=live.scim_url, headers=headers, timeout=60) as http:
        results = check_server(SyncSCIMClient(http))
    statuses = Counter(result.status for result in results)
    failures = [
        f"{result.status.name} {result.title}: {result.reason}"
        for result in results
        if result.status != Status.SUCCESS
    ]
    assert not failures, "\n".join(failures)
    assert statuses[Status.SUCCESS] >= 135
