"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1), with optional TLS and login."""

from __future__ import annotations

import asyncio
import email.policy
import ssl
import subprocess
import threading
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from aiosmtpd.smtp import LoginPassword

from .services import free_port


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1; ``cert_file`` is also the CA to trust."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificate(directory: Path) -> Certificate:
    """Create a self-signed certificate for IP 127.0.0.1 with openssl."""
    cert, key = directory / "smtp.pem", directory / "smtp.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


@dataclass
class SmtpServer:
    """aiosmtpd on a fixed port that can be stopped and started again (an outage).

    ``hold`` makes the server keep a message but wait before confirming it: the client is
    still waiting for the reply (to kill a worker between sending and recording).
    ``refused`` recipients get a 550.
    """

    port: int = field(default_factory=free_port)
    users: dict[str, str] | None = None
    certificate: Certificate | None = None
    implicit_tls: bool = False
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    refused: set[str] = field(default_factory=set)
    data_arrived: threading.Event = field(default_factory=threading.Event)
    _controller: Controller | None = None

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=email.policy.default).parsebytes(envelope.content)
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message,  # type: ignore[arg-type]
                session.auth_data.login.decode() if session.auth_data else None,
            )
        )
        self.data_arrived.set()
        if self.hold is not None:
            # The message is kept; only the client's confirmation is late (or never comes).
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 20)
        return "250 Message accepted"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        users = self.users or {}
        if (
            isinstance(auth_data, LoginPassword)
            and users.get(auth_data.login.decode()) == auth_data.password.decode()
        ):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self.certificate is not None and self.implicit_tls:
            options["ssl_context"] = self.certificate.server_context()
        elif self.certificate is not None:
            options["tls_context"] = self.certificate.server_context()
            options["require_starttls"] = True
        if self.users is not None:
            options["authenticator"] = self._authenticate
            options["auth_required"] = True
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def smtp_settings_env(server: SmtpServer) -> dict[str, str]:
    """Return the SCIMBRIDGE_* variables of a live server mailing through ``server`` quickly."""
    return {
        "SCIMBRIDGE_MAIL__TRANSPORT": "smtp",
        "SCIMBRIDGE_MAIL__SMTP_HOST": "127.0.0.1",
        "SCIMBRIDGE_MAIL__SMTP_PORT": str(server.port),
        "SCIMBRIDGE_MAIL__SMTP_SECURITY": "none",
        "SCIMBRIDGE_WORKER__POLL_INTERVAL_SECONDS": "0.2",
    }
