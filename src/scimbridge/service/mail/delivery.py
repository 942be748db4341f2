"""Deliver queued emails: the outbox handler of ``email`` jobs, and the test message.

A job's payload is what :func:`scimbridge.service.mail.queue.queue_email` stored. Once a message is
handed over, the values named by ``secret_keys`` (links carrying a token) are dropped from the
stored payload; the message itself is the only place they remain. Secrets never reach the log
or a job's ``last_error``: an error text that quotes one (an API echoing the message back) is
redacted first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...adapters.mail import MailMessage
from ...adapters.mail import MailRejectedError
from ...adapters.mail import MailTemporaryError
from ...adapters.mail import MailTransport
from ...adapters.mail import new_message_id
from ...store.jobs import Job
from ..operations.metrics import instruments
from ..outbox.worker import PermanentJobError
from ..outbox.worker import TransientJobError
from .rendering import MailRenderer
from .rendering import MailTemplateError
from .rendering import RenderedMail

TEST_TEMPLATE = "test"
"""Template of the message ``scimbridge mail test`` sends."""

_REDACTED = "[redacted]"


class EmailDelivery:
    """Renders an ``email`` job's message and sends it through the configured transport."""

    def __init__(self, renderer: MailRenderer, transport: MailTransport, sender: str) -> None:
        self.renderer = renderer
        self.transport = transport
        self.sender = sender

    def __call__(self, job: Job) -> dict[str, Any]:
        """Send the job's message; return its payload without the secrets.

        :raises PermanentJobError: The template cannot render, or the message was refused.
        :raises TransientJobError: The mail system cannot take the message now.
        """
        payload = job.payload
        context: dict[str, Any] = payload["context"]
        secret_keys: list[str] = payload.get("secret_keys", [])
        secrets = [str(context[key]) for key in secret_keys if context.get(key)]
        try:
            rendered = self.renderer.render(payload["template"], payload["to"], context)
        except MailTemplateError as exc:
            raise PermanentJobError(_redact(str(exc), secrets)) from None
        # The same id on every attempt lets a receiver recognise a repeated delivery.
        message_id = new_message_id(self.sender, f"job-{job.pk}.{job.created:%Y%m%d%H%M%S}")
        try:
            self.transport.send(self._message(payload["to"], rendered, message_id))
        except MailRejectedError as exc:
            instruments().mails.labels("failed").inc()
            raise PermanentJobError(_redact(str(exc), secrets)) from None
        except MailTemporaryError as exc:
            instruments().mails.labels("failed").inc()
            raise TransientJobError(_redact(str(exc), secrets)) from None
        instruments().mails.labels("sent").inc()
        kept_context = {key: value for key, value in context.items() if key not in secret_keys}
        return {**payload, "context": kept_context}

    def close(self) -> None:
        """Release the transport's kept connection (when the worker stops)."""
        self.transport.close()

    def send_test_message(self, recipient: str) -> None:
        """Send the test message directly, not through the outbox.

        :raises MailTemplateError: The test template cannot render.
        :raises MailDeliveryError: The transport failed (temporary or rejected).
        """
        rendered = self.renderer.render(TEST_TEMPLATE, recipient, {})
        self.transport.send(self._message(recipient, rendered, new_message_id(self.sender)))

    def _message(self, recipient: str, rendered: RenderedMail, message_id: str) -> MailMessage:
        return MailMessage(
            sender=self.sender,
            recipient=recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
        )


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text
