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

# Pages with progressive enhancement (the admin directory) may load this site's own script
# files; still nothing inline, nothing from elsewhere.
CONTENT_SECURITY_POLICY_WITH_SCRIPTS = CONTENT_SECURITY_POLICY.replace(
    "script-src 'none'", "script-src 'self'"
)


def add_page_headers(
    response: Response, *, static: bool = False, scripts: bool = False
) -> Response:
    """Set the security headers; pages (not the stylesheet) are never cached.

    ``scripts`` lets the page load script files from this site (never inline ones).
    """
    response.headers["Content-Security-Policy"] = (
        CONTENT_SECURITY_POLICY_WITH_SCRIPTS if scripts else CONTENT_SECURITY_POLICY
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Invitation and reset tokens are in page URLs: never send them on to another site.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not static:
        # Forms, tokens and account details must not stay in a shared browser's cache.
        response.headers["Cache-Control"] = "no-store"
    return response
