"""Repeated JSON members are refused whether or not the second parse runs.

``scim.requests.refuse_repeated_members`` parses a body a second time, with a hook that sees
every member, only when counting member-name ends in the text does not rule repetition out.
Generated JSON texts (objects nested in objects and arrays, member names and string values
holding quotes, colons and backslashes, spacing around colons, repeated members at any
depth) check that it refuses exactly the texts the hook alone refuses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scim2_models import InvalidSyntaxException

from scimbridge.scim import requests

TRICKY = st.sampled_from(["a", "b", "A", 'a":', '\\"', '":"', 'x" :', "", "é"])
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


def _text(value: Any, draw: st.DrawFn) -> str:
    """Write a generated value as JSON, with members as pairs (repeated ones kept)."""
    if isinstance(value, tuple):
        members = [
            f"{json.dumps(name)}{draw(SPACE)}:{draw(SPACE)}{_text(item, draw)}"
            for name, item in value
        ]
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(item, draw) for item in value) + "]"
    return json.dumps(value)


VALUES = st.recursive(
    st.one_of(TRICKY, st.integers(-2, 2), st.booleans(), st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(st.tuples(TRICKY, children), max_size=4).map(tuple),
    ),
    max_leaves=10,
)


def _hook_refuses(data: bytes) -> bool:
    try:
        json.loads(data, object_pairs_hook=requests._refuse_repeated_members)
    except InvalidSyntaxException:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(data=st.data(), members=st.lists(st.tuples(TRICKY, VALUES), max_size=5))
def test_refused_exactly_when_the_hook_refuses(data: st.DataObject, members: Any) -> None:
    text = _text(tuple(members), data.draw).encode()
    body = orjson.loads(text)
    expected = _hook_refuses(text)
    try:
        requests.refuse_repeated_members(text, body)
    except InvalidSyntaxException:
        refused = True
    else:
        refused = False
    assert refused is expected, text


@pytest.mark.parametrize(
    "text",
    [b'{"a": 1, "a": 2}', b'{"x": {"a": 1, "b": {"c": [{"a": 1, "a" :1}]}}}', b'{"a":":","a":1}'],
)
def test_repeated_members_are_refused(text: bytes) -> None:
    with pytest.raises(InvalidSyntaxException):
        requests.refuse_repeated_members(text, orjson.loads(text))


def test_a_usual_body_is_not_parsed_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the count: an IdP's body takes one parse."""
    text = b'{"schemas": ["urn:x"], "userName": "ada", "name": {"givenName": "Ada"}}'

    def second_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed twice")

    monkeypatch.setattr(requests.json, "loads", second_parse)
    requests.refuse_repeated_members(text, orjson.loads(text))
