"""Member entries of a group PATCH are read as before: id and display, keys in any case.

``_member_id`` and ``_entry_displays`` run once per member of every member PATCH, so they
were rewritten as plain loops; the functions below are the former versions, kept here as
the oracle the rewritten ones must agree with on any entry, refusals included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scim2_models import InvalidValueException

from scimbridge.service.directory.provisioning import _entry_displays
from scimbridge.service.directory.provisioning import _member_id

KEYS = st.sampled_from(["value", "VALUE", "Value", "display", "Display", "type", "$ref", "x"])
ITEMS = st.one_of(st.none(), st.just(""), st.text(max_size=3), st.integers(), st.booleans())
ENTRIES = st.one_of(st.dictionaries(KEYS, ITEMS, max_size=4), ITEMS, st.lists(ITEMS, max_size=2))


def _former_member_id(entry: Any) -> str:
    if isinstance(entry, dict):
        value = next((item for key, item in entry.items() if key.lower() == "value"), None)
        if isinstance(value, str) and value:
            return value
    raise InvalidValueException(detail=f"member entries need a 'value' id, got {entry!r}")


def _former_entry_displays(entries: list[Any]) -> dict[str, str]:
    displays = {}
    for entry in entries:
        if isinstance(entry, dict):
            lowered = {str(key).lower(): item for key, item in entry.items()}
            if isinstance(lowered.get("display"), str) and isinstance(lowered.get("value"), str):
                displays[lowered["value"]] = lowered["display"]
    return displays


def _outcome(read: Any, entry: Any) -> tuple[str, Any]:
    try:
        return "id", read(entry)
    except InvalidValueException as exc:
        return "refused", exc.detail


@settings(max_examples=300, deadline=None)
@given(entry=ENTRIES)
def test_member_id_reads_or_refuses_an_entry_as_before(entry: Any) -> None:
    """The first key spelled ``value`` gives the id; no non-empty string there is refused."""
    assert _outcome(_member_id, entry) == _outcome(_former_member_id, entry)


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(ENTRIES, max_size=5))
def test_entry_displays_are_read_as_before(entries: list[Any]) -> None:
    """Display names by member id, the last spelling of a key counting, as before."""
    assert _entry_displays(entries) == _former_entry_displays(entries)


def test_member_entries_in_any_letter_case() -> None:
    """Entra and Okta spell the keys differently; both name the member and its display."""
    entries = [{"Value": "a", "Display": "Ada"}, {"value": "b"}, {"VALUE": "c", "display": ""}]
    assert [_member_id(entry) for entry in entries] == ["a", "b", "c"]
    assert _entry_displays(entries) == {"a": "Ada", "c": ""}
