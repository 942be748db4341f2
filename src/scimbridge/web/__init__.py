"""Pages for people: the shared layout and hooks, the end-user (auth) pages, the admin directory."""

from __future__ import annotations

from flask import Flask

from . import admin
from . import auth
from . import errors
from . import pages


def init_app(app: Flask, secret_key: bytes) -> None:
    """Mount the pages; ``secret_key`` signs the CSRF tokens of their forms."""
    pages.init_app(app, secret_key)
    errors.init_app(app)
    app.register_blueprint(auth.bp)
    admin.init_app(app)
