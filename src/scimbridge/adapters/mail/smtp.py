"""Send mail to an SMTP server: plain, STARTTLS or implicit TLS, with an optional login."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from typing import Literal

from .errors import MailRejectedError
from .errors import MailTemporaryError
from .message import MailMessage

SmtpSecurity = Literal["none", "starttls", "tls"]


class SmtpTransport:
    """One SMTP connection per message: simple, and nothing to keep alive between jobs."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: SmtpSecurity = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ca_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password or ""
        self.timeout = timeout
        self.ca_file = ca_file

    @property
    def description(self) -> str:
        """Say where messages go (never the password)."""
        login = f", login as {self.username}" if self.username else ""
        return f"smtp {self.host}:{self.port} ({self.security}{login})"

    def send(self, message: MailMessage) -> None:
        """Hand one message to the server.

        :raises MailRejectedError: The server refused the recipient or the message with a 5xx
            reply.
        :raises MailTemporaryError: Anything else: connection, TLS, login, timeout, 4xx reply.
        """
        try:
            client = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise MailTemporaryError(f"cannot connect to {self._where}: {_reason(exc)}") from exc
        try:
            if self.username:
                client.login(self.username, self._password)
            client.send_message(message.to_mime())
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            error = f"{self._where} refused the recipient: {code} {_text(reply)}"
            raise (MailRejectedError if code >= 500 else MailTemporaryError)(error) from exc
        except smtplib.SMTPDataError as exc:
            error = f"{self._where} refused the message: {_reason(exc)}"
            raise (MailRejectedError if exc.smtp_code >= 500 else MailTemporaryError)(
                error
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailTemporaryError(f"{self._where}: {_reason(exc)}") from exc
        finally:
            _close(client)

    @property
    def _where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            try:
                client.starttls(context=context)
            except BaseException:
                _close(client)
                raise
        return client


def _close(client: smtplib.SMTP) -> None:
    # The message is handed over once the server accepted DATA; a failing QUIT changes nothing.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return str(exc) or type(exc).__name__
