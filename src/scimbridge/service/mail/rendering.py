"""Render emails from Jinja templates: a subject, a plain-text part and an HTML part.

Templates ship inside scimbridge (``service/mail/templates/``); a file of the same name in the
configured template directory (``config/templates/mail`` by default) overrides it, so an
operator can change one message without copying the others. HTML is autoescaped; a template
that uses a value the message does not carry fails instead of rendering a blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader
from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import StrictUndefined
from jinja2 import TemplateError
from jinja2 import select_autoescape

from ...settings import Settings

SHIPPED_TEMPLATES = Path(__file__).with_name("templates")
"""The templates scimbridge ships; the source of every message unless overridden."""


class MailTemplateError(Exception):
    """A template is missing, broken, or needs a value the message does not carry."""


@dataclass(frozen=True)
class RenderedMail:
    """The three parts of a message a template produces."""

    subject: str
    text: str
    html: str


def _when(value: str) -> str:
    """Format an ISO 8601 timestamp for people, in UTC (``28 November 2025, 14:30 UTC``)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


class MailRenderer:
    """Renders ``<name>.subject``, ``<name>.txt`` and ``<name>.html`` with a message's values.

    Besides the message's own values (``name``, ``link``…), every template sees
    ``product_name``, ``sender``, ``public_url`` (from the settings) and ``recipient``.
    """

    def __init__(
        self, template_dir: Path, *, product_name: str, sender: str, public_url: str
    ) -> None:
        self.environment = Environment(
            loader=ChoiceLoader(
                [FileSystemLoader(template_dir), FileSystemLoader(SHIPPED_TEMPLATES)]
            ),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.environment.filters["when"] = _when
        self.site = {
            "product_name": product_name,
            "sender": sender,
            "public_url": public_url.rstrip("/"),
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> MailRenderer:
        """Build the renderer the mail settings describe."""
        return cls(
            settings.mail.template_dir,
            product_name=settings.mail.product_name,
            sender=settings.mail.sender,
            public_url=settings.public_url,
        )

    def render(self, template: str, recipient: str, context: Mapping[str, Any]) -> RenderedMail:
        """Render one message.

        :raises MailTemplateError: A part is missing or fails to render.
        """
        values = {**context, **self.site, "recipient": recipient}
        try:
            subject = self.environment.get_template(f"{template}.subject").render(values)
            text = self.environment.get_template(f"{template}.txt").render(values)
            html = self.environment.get_template(f"{template}.html").render(values)
        except (TemplateError, ValueError) as exc:
            raise MailTemplateError(f"mail template {template!r}: {exc}") from exc
        # A subject is one header line: folding it closes the door to header injection.
        return RenderedMail(subject=" ".join(subject.split()), text=text, html=html)
