"""CPU per user create on the fast path and on the scim2-models path, side by side in one process.

Two apps on two fresh SQLite stores, one with the create fast path (service/directory/
create_fast.py) and one without; both get the same creation bodies, sent in alternating
blocks so that a change in machine load hits both alike. Reports the CPU each request costs
the app (in-process WSGI calls, no HTTP server), per body shape. The bodies carry no
password: hashing one (argon2, slow on purpose) would drown every other cost.

Run ``python bench/create_cpu.py [--users 1000]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from scim_bench import USER_SCHEMA
from scim_bench import user_body
from scim_cpu import _call
from scim_cpu import _make_app

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "benchmark user": lambda i: user_body(i),
    "entra": lambda i: {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": f"ext-{i}",
        "userName": f"entra.user.{i}@example.org",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": f"entra.user.{i}@example.org"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"Entra User {i}", "familyName": f"User {i}", "givenName": "Entra"},
        "roles": [],
    },
    "okta, enterprise": lambda i: {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": f"okta.user.{i}@example.org",
        "name": {"givenName": "Okta", "familyName": f"User {i}"},
        "emails": [{"primary": True, "value": f"okta.user.{i}@example.org", "type": "work"}],
        "displayName": f"Okta User {i}",
        "locale": "en-US",
        "externalId": f"00u{i}",
        "groups": [],
        "active": True,
        ENTERPRISE: {"employeeNumber": str(i), "department": "R&D", "manager": {"value": "m1"}},
    },
}


def main() -> None:
    """Create the users on both apps in alternating blocks, print CPU per create."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users created per shape")
    parser.add_argument("--block", type=int, default=50, help="requests per block (50)")
    options = parser.parse_args()
    sides = {}
    for name, fast in (("fast path", True), ("scim2-models", False)):
        app, token, _ = _make_app(observed=False)
        app.extensions["scimbridge"].provisioning.fast_create = fast
        sides[name] = (app, token)
    print(f"CPU per create, {options.users} users, blocks of {options.block} (in-process, SQLite)")
    print(f"  {'shape':20s} {'fast path':>10s} {'scim2-models':>13s}  ratio")
    for shape, body in SHAPES.items():
        spent = dict.fromkeys(sides, 0.0)
        for start in range(0, options.users, options.block):
            order = list(sides) if (start // options.block) % 2 == 0 else list(sides)[::-1]
            for name in order:
                app, token = sides[name]
                began = time.process_time()
                for i in range(start, min(start + options.block, options.users)):
                    status, data = _call(app, "POST", "/scim/v2/Users", token, body(i))
                    assert status == 201, data
                spent[name] += time.process_time() - began
        fast, model = (spent[name] / options.users * 1e6 for name in sides)
        print(f"  {shape:20s} {fast:8.0f}µs {model:11.0f}µs  {model / fast:4.2f}×")


if __name__ == "__main__":
    main()
