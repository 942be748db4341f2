"""A rendered email, what every transport sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from email.utils import make_msgid
from email.utils import parseaddr


@dataclass(frozen=True)
class MailMessage:
    """One message to one recipient, with a plain-text and an HTML part."""

    sender: str
    """``From``: an address, optionally with a display name."""
    recipient: str
    subject: str
    text: str
    html: str
    message_id: str
    """``Message-ID``, the same on every attempt, so receivers can spot a repeat."""

    def to_mime(self) -> EmailMessage:
        """Return the message as MIME: ``multipart/alternative``, text first."""
        mime = EmailMessage()
        mime["From"] = self.sender
        mime["To"] = self.recipient
        mime["Subject"] = self.subject
        mime["Date"] = format_datetime(datetime.now(UTC))
        mime["Message-ID"] = self.message_id
        mime.set_content(self.text)
        mime.add_alternative(self.html, subtype="html")
        return mime


def sender_domain(sender: str) -> str:
    """Return the domain of the sender's address (for ``Message-ID``), ``localhost`` if none."""
    _, address = parseaddr(sender)
    return address.rpartition("@")[2] or "localhost"


def new_message_id(sender: str, local_part: str | None = None) -> str:
    """Return a ``Message-ID`` in the sender's domain; ``local_part`` makes it reproducible."""
    domain = sender_domain(sender)
    if local_part is None:
        return make_msgid(domain=domain)
    return f"<{local_part}@{domain}>"
