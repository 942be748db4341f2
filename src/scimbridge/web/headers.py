"""Security headers of the HTML pages."""

from __future__ import annotations

from werkzeug.wrappers import Response

# No script at all, no inline style, no framing, forms posting only here.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def add_page_headers(response: Response, *, static: bool = False) -> Response:
    """Set the security headers; pages (not the stylesheet) are never cached."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Invitation and reset tokens are in page URLs: never send them on to another site.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not static:
        # Forms, tokens and account details must not stay in a shared browser's cache.
        response.headers["Cache-Control"] = "no-store"
    return response
