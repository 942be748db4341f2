"""CPU per ``GET /Groups/{id}`` of a large group: members written as JSON by the database, or not.

``scim_bench.py``'s "get group+members" phase reads a group of 1,000 users. Two apps on two
fresh SQLite stores hold the same users and group; one reads the members as the JSON text the
database writes (store/member_json.py), the other as objects (``json_members=False``, the
path before). Both answer the same GETs in alternating blocks, so that a change in machine
load hits both alike; each block's CPU per request is a sample, and the fastest and the
median sample of each side are printed.

Run ``python bench/group_get_cpu.py [--members 1000] [--blocks 20] [--block 20]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

from scim_bench import GROUP_SCHEMA
from scim_bench import members_patch
from scim_cpu import _call
from scim_cpu import app_with_users


def main() -> None:
    """Build both stores, GET the group in alternating blocks, print CPU per GET."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000, help="users in the group (1000)")
    parser.add_argument("--blocks", type=int, default=20, help="blocks per side (20)")
    parser.add_argument("--block", type=int, default=20, help="GETs per block (20)")
    options = parser.parse_args()
    sides = {}
    for name, json_members in (("database JSON", True), ("objects", False)):
        app, token, ids = app_with_users(options.members, json_members=json_members)
        group = {"schemas": [GROUP_SCHEMA], "displayName": "bench-group"}
        group_id = json.loads(_call(app, "POST", "/scim/v2/Groups", token, group)[1])["id"]
        path = f"/scim/v2/Groups/{group_id}"
        for start in range(0, len(ids), 100):
            status, data = _call(app, "PATCH", path, token, members_patch(ids[start : start + 100]))
            assert status in (200, 204), data
        status, data = _call(app, "GET", path, token)
        assert status == 200 and len(json.loads(data)["members"]) == options.members, data[:300]
        sides[name] = (app, token, path, len(data))
    gc.collect()
    gc.freeze()
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for block in range(options.blocks):
        for name in list(sides) if block % 2 == 0 else list(sides)[::-1]:
            app, token, path, _ = sides[name]
            began = time.process_time()
            for _ in range(options.block):
                status, data = _call(app, "GET", path, token)
                assert status == 200, data[:300]
            samples[name].append((time.process_time() - began) / options.block * 1e3)
    size = sides["database JSON"][3]
    print(
        f"CPU per GET of a group of {options.members} members ({size / 1000:.0f} KB), "
        f"{options.blocks} blocks of {options.block} a side (in-process, SQLite)"
    )
    print(f"  {'members read as':15s} {'fastest':>8s} {'median':>8s}")
    for name, spent in samples.items():
        print(f"  {name:15s} {min(spent):6.2f}ms {statistics.median(spent):6.2f}ms")
    new, old = (min(samples[name]) for name in sides)
    median_new, median_old = (statistics.median(samples[name]) for name in sides)
    print(f"  speed-up: {old / new:.2f}× fastest, {median_old / median_new:.2f}× median")


if __name__ == "__main__":
    main()
