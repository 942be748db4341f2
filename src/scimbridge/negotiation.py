"""Content negotiation (RFC 9110 §12.5.1) shared by the SCIM endpoint and the System API.

Werkzeug parses ``Accept`` (media ranges, parameters, q-values) but matches a range with
parameters only against an offer carrying the same parameters, so each JSON type is offered
bare and with ``charset=utf-8``: ``application/scim+json; charset=utf-8`` then matches, and
the response names exactly the form the client asked for.
"""

from __future__ import annotations

from werkzeug.datastructures import MIMEAccept

_UTF8 = "; charset=utf-8"


def offers(*media_types: str) -> tuple[str, ...]:
    """Return the media types a server can answer in, each bare and with its charset."""
    return tuple(form for media in media_types for form in (media, media + _UTF8))


def negotiate(accept: MIMEAccept, offered: tuple[str, ...]) -> str | None:
    """Return the offered media type the client prefers, or None if it accepts none.

    A request without ``Accept`` (or with an empty one) accepts anything: the first offer.
    """
    if not accept.provided or not accept:
        return offered[0]
    return accept.best_match(offered)


def is_json_body(mimetype: str, charset: str | None) -> bool:
    """Whether a request ``Content-Type`` announces JSON that can be read.

    Parameters are allowed (``application/scim+json; charset=utf-8``); JSON is UTF-8
    (RFC 8259 §8.1), so only a charset naming another encoding is refused.
    """
    if charset is not None and charset.strip().lower().replace("_", "-") not in {"utf-8", "utf8"}:
        return False
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )
