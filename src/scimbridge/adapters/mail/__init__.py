"""Mail transports: SMTP, an HTTP email API, or files.

Only this package imports smtplib and requests; their errors become
:class:`MailTemporaryError` or :class:`MailRejectedError`.
"""

from __future__ import annotations

from typing import Protocol

from ...settings import MailSettings
from .errors import MailDeliveryError
from .errors import MailRejectedError
from .errors import MailTemporaryError
from .message import MailMessage
from .message import new_message_id

__all__ = [
    "MailDeliveryError",
    "MailMessage",
    "MailRejectedError",
    "MailTemporaryError",
    "MailTransport",
    "make_transport",
    "new_message_id",
]


class MailTransport(Protocol):
    """Hands a rendered message over to the mail system."""

    @property
    def description(self) -> str:
        """Where messages go, for people (no secret)."""

    def send(self, message: MailMessage) -> None:
        """Send one message, or raise :class:`MailTemporaryError` / :class:`MailRejectedError`."""

    def close(self) -> None:
        """Release the connection kept between messages, if any."""


def make_transport(settings: MailSettings) -> MailTransport:
    """Return the transport the mail settings choose."""
    if settings.transport == "smtp":
        from .smtp import SmtpTransport

        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.timeout_seconds,
            ca_file=settings.smtp_ca_file,
        )
    if settings.transport == "http":
        from .http import HttpTransport

        if not settings.http_url:
            raise ValueError("the http mail transport needs SCIMBRIDGE_MAIL__HTTP_URL")
        return HttpTransport(
            settings.http_url,
            api_key=settings.http_api_key.get_secret_value() if settings.http_api_key else None,
            api_key_header=settings.http_api_key_header,
            timeout=settings.timeout_seconds,
        )
    from .file import FileTransport

    return FileTransport(settings.file_dir)
