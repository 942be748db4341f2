"""Write each message to a ``.eml`` file, for development: nothing leaves the machine."""

from __future__ import annotations

import os
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path

from .errors import MailTemporaryError
from .message import MailMessage


class FileTransport:
    """One RFC 5322 file per message under ``directory``, named by time, in sending order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def description(self) -> str:
        """Say where messages go."""
        return f"file {self.directory}/"

    def close(self) -> None:
        """Nothing to release: each message is a file of its own."""

    def send(self, message: MailMessage) -> None:
        """Write the message; a half-written file is never visible under its final name.

        :raises MailTemporaryError: The directory cannot be written.
        """
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.eml"
        target = self.directory / name
        partial = self.directory / f".{name}.partial"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(message.to_mime().as_bytes())
            os.replace(partial, target)
        except OSError as exc:
            raise MailTemporaryError(f"cannot write {target}: {exc.strerror or exc}") from exc
