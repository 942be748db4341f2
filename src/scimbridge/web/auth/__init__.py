"""End-user pages: login and logout, the account page, invitations and password flows."""

from __future__ import annotations

from flask import Blueprint

from .account import register_account_views
from .passwords import register_password_views

bp = Blueprint("auth", __name__)

register_account_views(bp)
register_password_views(bp)
