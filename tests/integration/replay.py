"""Replay a recorded SCIM client sequence (``data/*.json``) against a live server.

A sequence file holds what one identity provider sends, as its documentation shows it::

    {
      "source": "where the requests come from",
      "headers": {...},                      # sent with every step (a body's Content-Type)
      "generate": {"user_name": "Test_User_{uuid}", ...},  # fresh values for each replay
      "steps": [
        {"name": "Create User", "method": "POST", "path": "/Users", "body": {...},
         "status": 201, "expect": {...}, "save": {"user_id": "id"}},
        ...
      ]
    }

``path`` is relative to ``/scim/v2`` and written unencoded, as the documentation prints it;
its query values are percent-encoded on the wire. ``{name}`` placeholders in paths, headers,
bodies and expectations are filled from ``generate`` (each ``{uuid}`` a new UUID), from
values given by the test, and from earlier responses (``save`` maps a variable to a dotted
path into the response body, e.g. ``Resources.0.id``). ``expect`` is a subset of the response
body: objects must hold the expected members, lists must match element by element.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

DATA = Path(__file__).with_name("data")

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def load(name: str) -> dict[str, Any]:
    """Return the sequence stored as ``data/<name>.json``."""
    sequence: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return sequence


def find_step(sequence: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Return the step called ``name`` of a sequence."""
    for step in sequence["steps"]:
        if step["name"] == name:
            return dict(step)
    raise KeyError(f"no step {name!r} in {sequence.get('source', 'sequence')}")


def generate(templates: Mapping[str, str]) -> dict[str, str]:
    """Fill generation templates.

    Each ``{uuid}`` becomes a fresh UUID; ``{uuid:name}`` is one UUID shared by every template
    of the sequence that names it, and ``{UUID:name}`` the same UUID upper-cased.
    """
    named: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if name is None:
            return str(uuid.uuid4())
        shared = named.setdefault(name, str(uuid.uuid4()))
        return shared.upper() if kind == "UUID" else shared

    return {
        name: re.sub(r"\{(uuid|UUID)(?::([a-z0-9_]+))?\}", value, template)
        for name, template in templates.items()
    }


def fill(value: Any, variables: Mapping[str, Any]) -> Any:
    """Replace ``{name}`` placeholders in every string of ``value``."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise KeyError(f"placeholder {{{name}}} has no value (known: {sorted(variables)})")
            return str(variables[name])

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, list):
        return [fill(item, variables) for item in value]
    if isinstance(value, dict):
        return {fill(key, variables): fill(item, variables) for key, item in value.items()}
    return value


def encode_path(path: str) -> str:
    """Percent-encode the query values of a path written as documentation prints it."""
    base, _, query = path.partition("?")
    if not query:
        return base
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append(f"{quote(key, safe='')}={quote(value, safe='')}")
    return f"{base}?{'&'.join(pairs)}"


def dig(body: Any, dotted: str) -> Any:
    """Return the value at a dotted path (``Resources.0.id``) of a JSON body."""
    value = body
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def contains(actual: Any, expected: Any, where: str = "$") -> None:
    """Assert that ``actual`` holds ``expected`` (members of objects, lists element-wise)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise AssertionError(f"{where}: expected an object, got {actual!r}")
        for key, item in expected.items():
            if key not in actual:
                raise AssertionError(f"{where}: member {key!r} missing from {actual!r}")
            contains(actual[key], item, f"{where}.{key}")
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise AssertionError(f"{where}: expected {expected!r}, got {actual!r}")
        for index, (got, wanted) in enumerate(zip(actual, expected, strict=True)):
            contains(got, wanted, f"{where}[{index}]")
    elif actual != expected or type(actual) is not type(expected):
        raise AssertionError(f"{where}: expected {expected!r}, got {actual!r}")


def keys_named(body: Any, name: str) -> list[str]:
    """Return where a member called ``name`` (any case) occurs anywhere in a JSON body."""
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key.lower() == name.lower():
                    found.append(f"{where}.{key}")
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    walk(body, "$")
    return found


@dataclass
class Exchange:
    """One request of a replay and the server's answer."""

    name: str
    method: str
    path: str
    request_body: Any
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> Any:
        """The response body parsed, or None when it is empty."""
        return json.loads(self.text) if self.text else None

    def describe(self) -> str:
        """Return a line naming the request and the answer, for failure messages."""
        return f"{self.name}: {self.method} {self.path} -> {self.status} {self.text[:600]}"


class ScimHttp:
    """SCIM over real HTTP with one bearer token."""

    def __init__(
        self,
        session: requests.Session,
        scim_url: str,
        token: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.scim_url = scim_url
        self.token = token
        self.headers = dict(headers or {})
        self.created: list[str] = []
        """Paths (``/Users/<id>``, ``/Groups/<id>``) of every resource created through here."""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> Exchange:
        """Send one request; ``path`` is relative to ``/scim/v2`` and may be unencoded."""
        sent = {**self.headers, **(headers or {}), "Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/scim+json")
        else:
            sent.pop("Content-Type", None)
        response = self.session.request(
            method, self.scim_url + encode_path(path), data=data, headers=sent, timeout=30
        )
        if method == "POST" and response.status_code == 201:
            created = response.json()
            endpoint = path.partition("?")[0].rstrip("/")
            self.created.append(f"{endpoint}/{created['id']}")
        return Exchange(
            name=name or f"{method} {path}",
            method=method,
            path=path,
            request_body=body,
            status=response.status_code,
            headers=response.headers,
            text=response.text,
        )

    def delete_created(self) -> None:
        """Delete what was created through here and still exists, groups first."""
        for path in sorted(self.created, key=lambda each: not each.startswith("/Groups")):
            exchange = self.delete(path)
            assert exchange.status in (204, 404), exchange.describe()
        self.created.clear()

    def get(self, path: str) -> Exchange:
        """GET a path."""
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Exchange:
        """POST a body."""
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Exchange:
        """PATCH a body."""
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> Exchange:
        """DELETE a path."""
        return self.request("DELETE", path)


class Replay:
    """A sequence being replayed step by step; ``run(through=...)`` advances it."""

    def __init__(
        self,
        http: ScimHttp,
        sequence: Mapping[str, Any] | str,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        self.sequence = load(sequence) if isinstance(sequence, str) else sequence
        self.http = http
        self.vars: dict[str, Any] = {
            **generate(self.sequence.get("generate", {})),
            **(variables or {}),
        }
        self.exchanges: dict[str, Exchange] = {}
        self.position = 0

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The steps of the sequence."""
        steps: list[dict[str, Any]] = self.sequence["steps"]
        return steps

    def run(self, through: str | None = None) -> Replay:
        """Replay the next steps, up to and including the one named ``through`` (or all)."""
        names = [step["name"] for step in self.steps]
        if through is not None and through not in names[self.position :]:
            raise KeyError(f"no step {through!r} ahead (steps: {names})")
        while self.position < len(self.steps):
            step = self.steps[self.position]
            self.position += 1
            self.send(step)
            if step["name"] == through:
                break
        return self

    def send(self, step: Mapping[str, Any]) -> Exchange:
        """Send one step, check its status and expectations, save what it names."""
        headers = fill({**self.sequence.get("headers", {}), **step.get("headers", {})}, self.vars)
        body = fill(step["body"], self.vars) if "body" in step else None
        exchange = self.http.request(
            step["method"], fill(step["path"], self.vars), body, headers, name=step["name"]
        )
        self.exchanges[step["name"]] = exchange
        if exchange.status != step["status"]:
            raise AssertionError(
                f"step {step['name']!r} expected status {step['status']}, got\n"
                f"{exchange.describe()}\nrequest body: {json.dumps(body)}"
            )
        if "expect" in step:
            try:
                contains(exchange.json, fill(step["expect"], self.vars))
            except AssertionError as exc:
                raise AssertionError(f"step {step['name']!r}: {exc}") from None
        for variable, dotted in step.get("save", {}).items():
            self.vars[variable] = dig(exchange.json, dotted)
        return exchange

    def resend(self, name: str, status: int) -> Exchange:
        """Send the step called ``name`` once more, expecting ``status`` this time."""
        step = find_step(self.sequence, name)
        step.pop("expect", None)
        step.pop("save", None)
        return self.send({**step, "name": f"{name} (again)", "status": status})

    def __getitem__(self, name: str) -> Exchange:
        return self.exchanges[name]

    def get(self, path: str) -> Exchange:
        """Read back with the same token (placeholders filled)."""
        return self.http.get(fill(path, self.vars))


def assert_error(exchange: Exchange, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """Assert a SCIM Error response (RFC 7644 §3.12) and return its body."""
    assert exchange.status == status, exchange.describe()
    body = exchange.json
    assert isinstance(body, dict), exchange.describe()
    assert body.get("schemas") == [ERROR_SCHEMA], exchange.describe()
    assert body.get("status") == str(status), exchange.describe()
    if scim_type is not None:
        assert body.get("scimType") == scim_type, exchange.describe()
    return body


def assert_list_response(exchange: Exchange) -> dict[str, Any]:
    """Assert a ListResponse with integer counters and return its body."""
    assert exchange.status == 200, exchange.describe()
    body: dict[str, Any] = exchange.json
    assert body["schemas"] == [LIST_SCHEMA], exchange.describe()
    for counter in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[counter]) is int, f"{counter} is not an integer: {exchange.describe()}"
    assert body["itemsPerPage"] == len(body.get("Resources", [])), exchange.describe()
    return body


def member_ids(group: Mapping[str, Any]) -> set[str]:
    """Return the ids of a group body's members."""
    return {member["value"] for member in group.get("members") or []}


def no_password_anywhere(exchanges: Iterable[Exchange]) -> list[str]:
    """Return where a ``password`` member appears in any response body."""
    found: list[str] = []
    for exchange in exchanges:
        if exchange.text and exchange.text.lstrip().startswith(("{", "[")):
            where = keys_named(exchange.json, "password")
            found.extend(f"{exchange.name}: {each}" for each in where)
    return found
