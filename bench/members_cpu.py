"""CPU of a group member-add PATCH, and how long it holds the SQLite writer lock.

``scim_bench.py``'s "add members" phase PATCHes a group with ``--chunk`` (100) new members per
request. Every write of one SQLite file waits for the writer lock, so the time a PATCH holds
it bounds how many writes per second all clients together get. This script sends the same
PATCHes in-process (no HTTP server) on a fresh SQLite database and reports, per request, the
CPU time and the time spent inside the lock (commit and its fsync included).

Run ``python bench/members_cpu.py [--users 2000] [--chunk 100]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from typing import Any

from scim_bench import GROUP_SCHEMA
from scim_bench import members_patch
from scim_bench import user_body
from scim_cpu import _call
from scim_cpu import _make_app


class _TimedLock:
    """The database's writer lock, adding up how long it is held and the CPU spent holding it."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.held = self.held_cpu = 0.0
        self._since = self._since_cpu = 0.0

    def __enter__(self) -> None:
        self.lock.__enter__()
        self._since, self._since_cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc_info: object) -> None:
        self.held += time.perf_counter() - self._since
        self.held_cpu += time.thread_time() - self._since_cpu
        self.lock.__exit__(*exc_info)

    def close(self) -> None:
        """Close the lock beneath."""
        self.lock.close()


def main() -> None:
    """Create the users and a group, then add them in chunks; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000, help="users to add (2000)")
    parser.add_argument("--chunk", type=int, default=100, help="members per PATCH (100)")
    options = parser.parse_args()
    app, token, database = _make_app(observed=False)
    ids = []
    for i in range(options.users):
        status, data = _call(app, "POST", "/scim/v2/Users", token, user_body(i))
        ids.append(json.loads(data)["id"])
    group = {"schemas": [GROUP_SCHEMA], "displayName": "bench-members"}
    group_id = json.loads(_call(app, "POST", "/scim/v2/Groups", token, group)[1])["id"]
    lock = database._writer_lock = _TimedLock(database._writer_lock)  # type: ignore[assignment]
    chunks = [ids[k : k + options.chunk] for k in range(0, len(ids), options.chunk)]
    gc.collect()
    gc.freeze()
    started, cpu = time.perf_counter(), time.process_time()
    path = f"/scim/v2/Groups/{group_id}"
    for chunk in chunks:
        status, data = _call(app, "PATCH", path, token, members_patch(chunk))
        if status not in (200, 204):
            raise SystemExit(f"PATCH answered {status}: {data[:300]!r}")
    count = len(chunks)
    wall = (time.perf_counter() - started) / count * 1e3
    spent = (time.process_time() - cpu) / count * 1e3
    print(f"{count} PATCHes adding {options.chunk} members each (in-process, SQLite)")
    held, held_cpu = lock.held / count * 1e3, lock.held_cpu / count * 1e3
    print(f"  CPU {spent:.2f} ms, wall {wall:.2f} ms a request")
    print(f"  writer lock held {held:.2f} ms (the commit's fsync too), {held_cpu:.2f} ms of it CPU")


if __name__ == "__main__":
    main()
