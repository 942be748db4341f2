"""The mail adapter's exceptions: every transport error becomes one of these."""

from __future__ import annotations


class MailDeliveryError(Exception):
    """A message could not be handed over to the mail system."""


class MailTemporaryError(MailDeliveryError):
    """Delivery may succeed later.

    Connection refused or lost, timeout, TLS or login failure, 4xx SMTP reply; HTTP 408, 429
    or 5xx.
    """


class MailRejectedError(MailDeliveryError):
    """The mail system refused this message for good.

    5xx SMTP reply to its recipient or content; HTTP 4xx other than 408 and 429.
    """
