"""Provisioning: the SCIM address for identity providers, tokens, and what their clients send."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import current_app
from flask import url_for
from werkzeug.wrappers import Response

from ...scim.quirks import PROFILE_TOLERANCES
from ...scim.quirks import Deviation
from ...service.clients.token_admin import InvalidTokenRequest
from ..forms import FormErrors
from ..forms import read_fields
from ..pages import render_page
from ..pages import see_other
from ..visitor import request_info
from .common import actor
from .common import notice_from
from .common import reader
from .common import settings
from .common import state

NOTICES = {"token-revoked": "The token is revoked: its client is refused from now on."}

PROFILE_LABELS = {
    "entra": "Microsoft Entra ID",
    "okta": "Okta",
    "generic": "Other client (every known deviation tolerated)",
    "strict": "Strict RFC 7644 (deviations refused)",
}

DEVIATION_LABELS = {
    Deviation.OP_CASE: "PATCH op written with capitals (Replace)",
    Deviation.STRING_BOOLEAN: 'Booleans sent as strings ("False")',
    Deviation.ATTRIBUTE_PATH_KEYS: "Path-less PATCH values keyed by attribute paths",
    Deviation.REMOVE_WITH_VALUE: "Remove operations naming members in the value",
    Deviation.UNMATCHED_FILTER_CREATES: "Filtered path expected to create a missing entry",
    Deviation.UNQUOTED_FILTER_VALUE: "Unquoted string in a filter",
    Deviation.MANAGER_AS_STRING: "Manager given as a plain id",
    Deviation.UNKNOWN_SCHEMA_URI: "Unknown, empty schema URI listed",
    Deviation.EXTRA_OPERATION_KEYS: "PATCH operations with extra members",
    Deviation.EXTENSION_WITHOUT_URN: "Extension attribute named without its schema URN",
    Deviation.SINGLE_VALUE_AS_LIST: "Single-valued attribute sent as a one-entry list",
    Deviation.EMPTY_STRING_CLEARS: 'Empty string ("") sent to clear an attribute',
    Deviation.EMAIL_NOT_AN_ADDRESS: "Email value that is not an address (never mailed)",
}


_DEVIATION_TEXT = {deviation.value: label for deviation, label in DEVIATION_LABELS.items()}


def _tolerated_by(deviation: str) -> list[str]:
    return [name for name, tolerated in PROFILE_TOLERANCES.items() if deviation in tolerated]


def _page(
    status: int = 200,
    *,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    created: dict[str, str] | None = None,
    alert: str | None = None,
) -> Response:
    tokens = state().tokens.list()
    profiles = {token.name: token.profile for token in tokens}
    deviations: list[dict[str, Any]] = [
        {
            "count": count,
            "label": _DEVIATION_TEXT.get(count.deviation, count.deviation),
            "profile": profiles.get(count.token_name),
            "tolerated_by": _tolerated_by(count.deviation),
        }
        for count in reader().recent_deviations()
    ]
    return render_page(
        "admin/provisioning.html",
        status,
        scim_url=settings().scim_base_url,
        tokens=tokens,
        # Requests refused with 429, every process's: a client hitting it needs a look.
        rate_limited=current_app.extensions["scimbridge"].rate_limiter.recent_refusals(),
        deviations=deviations,
        profile_labels=PROFILE_LABELS,
        errors=errors or FormErrors(),
        values=values or {"name": "", "profile": "generic"},
        created=created,
        alert=alert,
        notice=notice_from(NOTICES),
    )


def provisioning() -> Response:
    """Show the SCIM address, the tokens, and the deviations their clients sent."""
    return _page()


def create_token() -> Response:
    """Create a SCIM token with a client profile; the token is shown in this answer only."""
    errors = FormErrors()
    values = read_fields(errors, "name", "profile", strip=("name", "profile"))
    if not errors:
        try:
            token = state().tokens.create(
                values["name"], values["profile"], actor(), request_info()
            )
        except InvalidTokenRequest as exc:
            errors.add(exc.field, str(exc))
        else:
            created = {"name": values["name"], "profile": values["profile"], "token": token}
            return _page(201, created=created)
    return _page(400, errors=errors, values=values)


def revoke_token() -> Response:
    """Revoke a token by name."""
    errors = FormErrors()
    values = read_fields(errors, "name", strip=("name",))
    if not errors and state().tokens.revoke(values["name"], actor(), request_info()):
        return see_other(url_for("admin.provisioning", notice="token-revoked"))
    return _page(400, alert="That token does not exist (any more).")


def register(bp: Blueprint) -> None:
    """Add the provisioning page and its token forms."""
    bp.add_url_rule("/provisioning", view_func=provisioning, endpoint="provisioning")
    bp.add_url_rule(
        "/provisioning/tokens",
        view_func=create_token,
        methods=["POST"],
        endpoint="provisioning_create_token",
    )
    bp.add_url_rule(
        "/provisioning/tokens/revoke",
        view_func=revoke_token,
        methods=["POST"],
        endpoint="provisioning_revoke_token",
    )
