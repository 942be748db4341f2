"""scim2-tester's RFC checks against scimbridge over real HTTP."""

from __future__ import annotations

from collections import Counter

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status
from scim2_tester import check_server

from .services import LiveServer


def test_scim2_tester_reports_every_check_successful(live: LiveServer) -> None:
    """Every check of scim2-tester's check_server succeeds; nothing is skipped."""
    with Client(base_url=live.scim_url, headers={"Authorization": f"Bearer {live.token}"}) as http:
        results = check_server(SyncSCIMClient(http))
    statuses = Counter(result.status for result in results)
    failures = [
        f"{result.status.name} {result.title}: {result.reason}"
        for result in results
        if result.status != Status.SUCCESS
    ]
    assert not failures, "\n".join(failures)
    assert statuses[Status.SUCCESS] >= 135
