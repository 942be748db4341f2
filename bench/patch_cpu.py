"""CPU per user PATCH on the fast path and on the scim2-models path, side by side in one process.

Two apps on two fresh SQLite stores, one with the PATCH fast path (service/directory/
patch_fast.py) and one without; both get the same users and the same PATCH requests, sent
in alternating blocks so that a change in machine load hits both alike. Reports the CPU
each request costs the app (in-process WSGI calls, no HTTP server), per PATCH shape.

Run ``python bench/patch_cpu.py [--users 1000]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from scim_bench import ENTRA_DEACTIVATE
from scim_bench import PATCH_SCHEMA
from scim_cpu import _call
from scim_cpu import app_with_users

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "entra active=False": lambda i: ENTRA_DEACTIVATE,
    "entra update": lambda i: {
        "schemas": [PATCH_SCHEMA],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": f"Bench User {i} (2)"},
            {"op": "Replace", "path": "name.familyName", "value": f"User {i} (2)"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": f"b{i}@example.org"},
            {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Research"},
        ],
    },
    "okta path-less": lambda i: {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "value": {"active": True, "title": f"Title {i}"}}],
    },
}


def main() -> None:
    """Create the users on both apps, PATCH them in alternating blocks, print CPU per PATCH."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users, PATCHed once a shape")
    parser.add_argument("--block", type=int, default=50, help="requests per block (50)")
    options = parser.parse_args()
    sides = {}
    for name, fast in (("fast path", True), ("scim2-models", False)):
        sides[name] = app_with_users(options.users, fast_patch=fast)
    print(f"CPU per PATCH, {options.users} users, blocks of {options.block} (in-process, SQLite)")
    print(f"  {'shape':20s} {'fast path':>10s} {'scim2-models':>13s}  ratio")
    for shape, body in SHAPES.items():
        spent = dict.fromkeys(sides, 0.0)
        for start in range(0, options.users, options.block):
            order = list(sides) if (start // options.block) % 2 == 0 else list(sides)[::-1]
            for name in order:
                app, token, ids = sides[name]
                began = time.process_time()
                for i in range(start, min(start + options.block, options.users)):
                    status, data = _call(app, "PATCH", f"/scim/v2/Users/{ids[i]}", token, body(i))
                    assert status == 200, data
                spent[name] += time.process_time() - began
        fast, model = (spent[name] / options.users * 1e6 for name in sides)
        print(f"  {shape:20s} {fast:8.0f}µs {model:11.0f}µs  {model / fast:4.2f}×")


if __name__ == "__main__":
    main()
