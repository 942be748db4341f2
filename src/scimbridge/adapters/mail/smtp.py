"""Send mail to an SMTP server: plain, STARTTLS or implicit TLS, with an optional login.

One connection carries many messages: connecting, STARTTLS and the login cost several round
trips, a ``NOOP`` on a kept connection one. The connection is dropped after an error, after
:data:`MESSAGES_PER_CONNECTION` messages (servers limit them) and when it sat idle for
:data:`IDLE_SECONDS` (servers drop idle clients). Every socket operation has the timeout.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from pathlib import Path
from typing import Literal

from .errors import MailRejectedError
from .errors import MailTemporaryError
from .message import MailMessage

SmtpSecurity = Literal["none", "starttls", "tls"]

MESSAGES_PER_CONNECTION = 100
"""Messages sent on one connection before it is closed and a new one opened."""

IDLE_SECONDS = 30.0
"""A connection unused this long is closed rather than reused."""


class SmtpTransport:
    """Sends messages over a kept SMTP connection (thread-safe: one message at a time)."""

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
        self._client: smtplib.SMTP | None = None
        self._sent_on_client = 0
        self._last_used = 0.0
        self._lock = threading.Lock()

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
        with self._lock:
            client = self._kept_client() or self._new_client()
            try:
                client.send_message(message.to_mime())
            except BaseException as exc:
                # Whatever the server's state now, the next message starts afresh.
                self._drop()
                failure = self._failure(exc)
                if failure is exc:
                    raise
                raise failure from exc
            finally:
                self._last_used = time.monotonic()
            self._sent_on_client += 1
            if self._sent_on_client >= MESSAGES_PER_CONNECTION:
                self._drop()

    def close(self) -> None:
        """Close the kept connection, if any."""
        with self._lock:
            self._drop()

    def __del__(self) -> None:
        # A transport dropped without close(): free the socket without talking to the server.
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    def _kept_client(self) -> smtplib.SMTP | None:
        """Return the kept connection if it is fresh and still answers, else drop it."""
        if self._client is None:
            return None
        if time.monotonic() - self._last_used > IDLE_SECONDS:
            self._drop()
            return None
        try:
            code, _reply = self._client.noop()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._drop()
            return None
        return self._client

    def _new_client(self) -> smtplib.SMTP:
        try:
            client = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise MailTemporaryError(f"cannot connect to {self._where}: {_reason(exc)}") from exc
        try:
            if self.username:
                client.login(self.username, self._password)
        except BaseException as exc:
            _close(client)
            failure = self._failure(exc)
            if failure is exc:
                raise
            raise failure from exc
        self._client, self._sent_on_client = client, 0
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _close(client)

    def _failure(self, exc: BaseException) -> BaseException:
        """Translate an exception of the SMTP conversation into the adapter's errors."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(exc.recipients.values()))
            error = f"{self._where} refused the recipient: {code} {_text(reply)}"
            return (MailRejectedError if code >= 500 else MailTemporaryError)(error)
        if isinstance(exc, smtplib.SMTPDataError):
            error = f"{self._where} refused the message: {_reason(exc)}"
            return (MailRejectedError if exc.smtp_code >= 500 else MailTemporaryError)(error)
        if isinstance(exc, smtplib.SMTPException | OSError):
            return MailTemporaryError(f"{self._where}: {_reason(exc)}")
        return exc

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
