"""What every HTML page shares: layout and stylesheet, the visitor, CSRF checks, forced changes.

The hooks run for every request outside the machine endpoints (``/scim``, ``/api``,
``/healthz``), so a page blueprint added later gets them without asking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from typing import ParamSpec

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from .csrf import COOKIE_NAME
from .csrf import FIELD_NAME
from .csrf import CsrfSigner
from .csrf import Verdict
from .csrf import new_cookie_value
from .csrf import usable_cookie_value
from .headers import add_page_headers
from .visitor import clear_session_cookie
from .visitor import current_visitor
from .visitor import load_visitor
from .visitor import secure_cookies
from .visitor import settings

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

_MACHINE_PREFIXES = ("/scim/", "/api/")
_MACHINE_PATHS = ("/scim", "/api", "/healthz", "/readyz")
_UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# What a visitor who must replace a temporary password may still reach.
_DURING_FORCED_CHANGE = {"auth.password_change", "auth.logout", "web.static"}

P = ParamSpec("P")


@dataclass
class WebState:
    """What the pages keep in ``app.extensions["scimbridge_web"]``."""

    csrf: CsrfSigner


def init_app(app: Flask, secret_key: bytes) -> None:
    """Register the shared blueprint and the page hooks."""
    app.extensions["scimbridge_web"] = WebState(csrf=CsrfSigner(secret_key))
    app.register_blueprint(bp)


def allow_page_scripts() -> None:
    """Let this request's page load script files of this site (see ``headers.py``)."""
    g.page_scripts = True


def is_page_request() -> bool:
    """Whether the request is for a page (not SCIM, the System API or the health check)."""
    path = request.path
    return not (path in _MACHINE_PATHS or path.startswith(_MACHINE_PREFIXES))


def render_page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a page template into a response with the given status."""
    return make_response(render_template(template, **context), status)


def see_other(location: str) -> Response:
    """Redirect after a form, so that reloading the next page sends nothing again."""
    return redirect(location, 303)


def login_required(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
    """Send visitors without a live session to the login page, then back here."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        if current_visitor() is None:
            back = request.full_path.removesuffix("?") if request.method == "GET" else None
            return see_other(url_for("auth.login", next=back))
        return view(*args, **kwargs)

    return wrapper


def _signer() -> CsrfSigner:
    state: WebState = current_app.extensions["scimbridge_web"]
    return state.csrf


def csrf_token() -> str:
    """Return the token a form carries in its hidden ``csrf_token`` field."""
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None or not usable_cookie_value(cookie):
        cookie = g.get("new_csrf_cookie") or new_cookie_value()
        g.new_csrf_cookie = cookie
    visitor = current_visitor()
    return _signer().token(cookie, visitor.session.id if visitor else None)


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "csrf_field_name": FIELD_NAME,
        "visitor": current_visitor() if "visitor" in g else None,
        "product_name": settings().mail.product_name,
        "password_min_length": settings().lifecycle.password_min_length,
    }


@bp.app_template_filter("sentence")
def _sentence(message: str) -> str:
    """Turn a service message ("use at least 12 characters") into a sentence."""
    message = message.strip()
    if not message:
        return message
    # An email address opening the message keeps its case ("ada@… already belongs…").
    first_word = message.split(maxsplit=1)[0]
    opening = message[0] if "@" in first_word else message[0].upper()
    return opening + message[1:] + ("" if message.endswith((".", "?", "!")) else ".")


@bp.before_app_request
def _before_page() -> ResponseReturnValue | None:
    # The stylesheet needs no visitor: spare it the session look-up.
    if not is_page_request() or request.endpoint == "web.static":
        return None
    load_visitor()
    visitor = current_visitor()
    if (
        visitor is not None
        and visitor.account.password_change_required
        and request.endpoint not in _DURING_FORCED_CHANGE
    ):
        return see_other(url_for("auth.password_change"))
    # Unknown paths go on to their 404; only a view can change anything.
    if request.method in _UNSAFE_METHODS and request.url_rule is not None:
        verdict = _signer().check(
            request.form.get(FIELD_NAME),
            request.cookies.get(COOKIE_NAME),
            visitor.session.id if visitor else None,
        )
        if verdict is Verdict.SESSION_ENDED:
            return see_other(url_for("auth.login", notice="session-ended"))
        if verdict is not Verdict.VALID:
            return render_page(
                "error.html",
                400,
                title="This form cannot be accepted",
                message=(
                    "The form was not sent from this site, or it stayed open too long. "
                    "Go back, reload the page and try again."
                ),
            )
    return None


@bp.after_app_request
def _after_page(response: Response) -> Response:
    if not is_page_request():
        return response
    if g.get("forget_session_cookie"):
        clear_session_cookie(response)
    new_cookie = g.get("new_csrf_cookie")
    if new_cookie:
        response.set_cookie(
            COOKIE_NAME,
            new_cookie,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=secure_cookies(),
        )
    return add_page_headers(
        response,
        static=request.endpoint == "web.static",
        scripts=bool(g.get("page_scripts")),
    )
