"""The plain-address shortcut of the email check never answers otherwise than email-validator.

``domain.emails`` accepts the plain addresses clients nearly always send without calling
email-validator; anything else still goes to it. Generated strings near the edges of the
plain form (dots, hyphens, long labels, numeric and special-use top-level domains, letter
case) check that every value the shortcut accepts, email-validator accepts too, and that the
everyday addresses do take the shortcut.
"""

from __future__ import annotations

import email_validator
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from scimbridge.domain import emails
from scimbridge.domain.resources import accept_internal_email_domains


def _validator_accepts(value: str) -> bool:
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


ATOM = st.text(alphabet="aZ09_+-.", min_size=0, max_size=8)
LABEL = st.one_of(
    st.text(alphabet="aZ09-", min_size=0, max_size=6),
    st.sampled_from(["xn--abc", "ab--c", "a" * 63, "a" * 64, "1", "-a", "a-"]),
)
TLD = st.sampled_from(["org", "COM", "io", "1", "123", "a", "local", "test", "localhost", "x1"])
TLD |= st.sampled_from(["onion", "arpa", "invalid", "a" * 63, "a" * 64, ""])
LOCAL = st.one_of(ATOM, st.sampled_from(["a" * 64, "a" * 65, "", "."]))


@st.composite
def near_plain(draw: st.DrawFn) -> str:
    """A string close to the plain address form, on either side of its edges."""
    labels = draw(st.lists(LABEL, max_size=4))
    domain = ".".join([*labels, draw(TLD)])
    address = f"{draw(LOCAL)}@{domain}"
    if draw(st.integers(0, 9)) == 0:
        address = address * 3  # past the length limits, and two @-signs
    return address


@settings(max_examples=800, deadline=None)
@given(value=near_plain())
def test_the_shortcut_accepts_only_what_email_validator_accepts(value: str) -> None:
    if emails._is_plain_address(value):
        assert _validator_accepts(value), value
    assert emails._is_address(value) == _validator_accepts(value), value


def test_the_shortcut_follows_the_special_use_domains_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``.local`` is refused until scimbridge lets internal domains in, by both ways."""
    monkeypatch.setattr(email_validator, "SPECIAL_USE_DOMAIN_NAMES", ["local", "test"])
    assert not emails._is_plain_address("ada@corp.local")
    assert not emails._is_address("ada@corp.local")
    accept_internal_email_domains()
    assert emails._is_plain_address("ada@corp.local")
    assert emails._is_address("ada@corp.local")
    assert not emails._is_address("ada@example.test")


@pytest.mark.parametrize(
    "value",
    ["ada@example.org", "Ada.Lovelace@Example.COM", "bench.user.42@example.org", "a+b@x.co"]
    + ["first_last-1@mail.sub.example.io", "o.brien@corp-mail.example.org"],
)
def test_everyday_addresses_take_the_shortcut(value: str) -> None:
    assert emails._is_plain_address(value)
    assert _validator_accepts(value)
