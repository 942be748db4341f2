"""Outbox lanes: one worker thread per job kind, so a hung or failing system delays only its kind.

Each lane is an :class:`~scimbridge.service.outbox.worker.OutboxWorker` with the handler of one kind
(``ldap``, ``email``…), claiming only that kind's jobs on its own thread, with its own retry
back-off and its own pause while its system is unavailable. An SMTP relay that never answers
holds the mail lane, not LDAP sync; a frozen directory holds the LDAP lane, not invitations.
Inside a lane, jobs with the same ordering key still run one at a time in commit order.

The periodic upkeep (timed role grants, stale sessions…) runs on a thread of its own too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ...store.database import Database
from .worker import JobHandler
from .worker import OutboxWorker

logger = logging.getLogger(__name__)

_JOIN_SECONDS = 30.0
"""How long stopping waits for a lane's job in hand (every network call has a timeout)."""


def _run_lane(worker: OutboxWorker, stop: threading.Event, poll_interval: float) -> None:
    try:
        worker.run(stop, poll_interval)
    finally:
        worker.close()


class OutboxLanes:
    """Runs one :class:`OutboxWorker` per job kind, each on its own thread, until stopped."""

    def __init__(
        self,
        lanes: Mapping[str, OutboxWorker],
        upkeep: Callable[[], object] | None = None,
        upkeep_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self.lanes = dict(lanes)
        """The worker of each kind."""
        self.upkeep = upkeep
        self.upkeep_interval = upkeep_interval

    @classmethod
    def build(
        cls,
        database: Database,
        handlers: Mapping[str, JobHandler],
        *,
        upkeep: Callable[[], object] | None = None,
        **worker_options: Any,
    ) -> OutboxLanes:
        """Give every kind its own worker, with the same options (lease, batch size…)."""
        lanes = {
            kind: OutboxWorker(database, {kind: handler}, **worker_options)
            for kind, handler in handlers.items()
        }
        return cls(lanes, upkeep)

    @property
    def kinds(self) -> list[str]:
        """The job kinds these lanes apply."""
        return sorted(self.lanes)

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Run every lane until ``stop`` is set; each finishes its job in hand first."""
        threads = [
            threading.Thread(
                target=_run_lane,
                args=(worker, stop, poll_interval),
                name=f"outbox-lane-{kind}",
                daemon=True,
            )
            for kind, worker in sorted(self.lanes.items())
        ]
        if self.upkeep is not None:
            threads.append(
                threading.Thread(
                    target=self._run_upkeep,
                    args=(self.upkeep, stop),
                    name="outbox-upkeep",
                    daemon=True,
                )
            )
        for thread in threads:
            thread.start()
        logger.info("outbox lanes running: %s", ", ".join(self.kinds))
        stop.wait()
        for thread in threads:
            thread.join(_JOIN_SECONDS)
            if thread.is_alive():
                logger.warning(
                    "%s did not stop in time; its jobs are claimed again once their lease ends",
                    thread.name,
                )

    def _run_upkeep(self, upkeep: Callable[[], object], stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                upkeep()
            except Exception:
                # Upkeep must never stop anything; it runs again next interval.
                logger.exception("periodic upkeep failed; retrying next interval")
            stop.wait(self.upkeep_interval.total_seconds())
