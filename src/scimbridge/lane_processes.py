"""``scimbridge worker``'s lanes as child processes: one per job kind, no interpreter lock shared.

Threads keep a hung peer from delaying another kind, but the lanes of one process still take
turns on Python's interpreter lock: rendering and sending invitations would take a share of
the CPU time LDAP sync needs. So ``scimbridge worker`` forks one process per lane (the
parent runs the periodic upkeep and starts a lane again if its process dies). A child dies
with its parent, even after ``kill -9``: its jobs are claimed again once their lease ends.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from .service.outbox.worker import OutboxWorker
from .settings import Settings
from .store.database import Database
from .store.database import database_for
from .worker import JOB_KINDS
from .worker import lane_kinds
from .worker import upkeep_of
from .worker import worker_options

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STOP_SECONDS = 30.0
"""How long stopping waits for a lane's job in hand (every network call has a timeout)."""
_UPKEEP_SECONDS = 60.0
_WATCH_SECONDS = 1.0


def run_lane_processes(settings: Settings, database: Database, stop: threading.Event) -> None:
    """Run each lane in a process of its own until ``stop`` is set; then stop them all."""
    # Fork, not spawn: the children start at once, without importing scimbridge again.
    context = multiprocessing.get_context("fork")
    children: dict[str, BaseProcess] = {}

    def start(kind: str) -> None:
        child = context.Process(
            target=_run_lane, args=(settings, kind, os.getpid()), name=f"lane-{kind}"
        )
        child.start()
        children[kind] = child

    for kind in lane_kinds(settings):
        start(kind)
    logger.info("outbox lanes running: %s (a process each)", ", ".join(sorted(children)))
    upkeep = upkeep_of(settings, database)
    next_upkeep = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_upkeep:
            next_upkeep = time.monotonic() + _UPKEEP_SECONDS
            try:
                upkeep()
            except Exception:
                # Upkeep must never stop delivery; it runs again next interval.
                logger.exception("periodic upkeep failed; retrying next interval")
        for kind, child in list(children.items()):
            if not child.is_alive():
                logger.warning("lane %s exited (%s); starting it again", kind, child.exitcode)
                start(kind)
        stop.wait(_WATCH_SECONDS)
    for child in children.values():
        child.terminate()  # SIGTERM: the lane finishes its job in hand
    for kind, child in children.items():
        child.join(_STOP_SECONDS)
        if child.is_alive():
            logger.warning("lane %s did not stop in time; its jobs return with the lease", kind)
            child.kill()


def _run_lane(settings: Settings, kind: str, parent: int) -> None:
    """Apply the jobs of one kind until SIGTERM (the body of a lane's process)."""
    _die_with_parent(parent)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    # Ctrl-C reaches the whole process group: the parent handles it and stops the lanes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(JOB_KINDS[kind].niceness)
    # The parent's connections must not be used here (a SQLite connection never crosses a
    # fork): the lane opens its own.
    database = database_for(settings)
    try:
        worker = OutboxWorker(
            database,
            {kind: JOB_KINDS[kind].handler(settings, database)},
            **worker_options(settings, None),  # type: ignore[arg-type]
        )
        try:
            worker.run(stop, settings.worker.poll_interval_seconds)
        finally:
            worker.close()
    finally:
        database.dispose()


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), even by ``kill -9``."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        logger.warning("cannot ask to die with the worker process; continuing")
    if os.getppid() != parent:
        os._exit(0)  # the parent died before the request took effect
