"""Send mail through an HTTP email API: one JSON POST per message.

The request (documented in the README)::

    POST <http_url>
    Content-Type: application/json
    <http_api_key_header>: <http_api_key>
    Idempotency-Key: <message_id>

    {"from": "...", "to": ["..."], "subject": "...", "text": "...", "html": "...",
     "message_id": "<...>"}

2xx means sent; 408, 429, 5xx, timeouts and connection errors are worth retrying; any other
status (redirects included) is a refusal of this message.
"""

from __future__ import annotations

import requests

from .errors import MailRejectedError
from .errors import MailTemporaryError
from .message import MailMessage

_RETRYABLE_STATUSES = frozenset({408, 429})
_REASON_LENGTH = 200


class HttpTransport:
    """POST each message as JSON to the configured endpoint, with the API key in a header."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        api_key_header: str = "X-Api-Key",
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self.api_key_header = api_key_header
        self.timeout = timeout
        self._session = session or requests.Session()

    @property
    def description(self) -> str:
        """Say where messages go (never the key)."""
        return f"http POST {self.url}"

    def close(self) -> None:
        """Close the HTTP session's kept connections."""
        self._session.close()

    def send(self, message: MailMessage) -> None:
        """Post one message.

        :raises MailRejectedError: The API answered a 4xx status other than 408 and 429.
        :raises MailTemporaryError: Timeout, connection error, 408, 429 or 5xx.
        """
        headers = {"Idempotency-Key": message.message_id}
        if self._api_key:
            headers[self.api_key_header] = self._api_key
        try:
            response = self._session.post(
                self.url,
                json=payload(message),
                headers=headers,
                timeout=self.timeout,
                # A redirect would turn the POST into a GET: a wrong URL should show, not vanish.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise MailTemporaryError(f"{self.url} timed out") from exc
        except requests.RequestException as exc:
            raise MailTemporaryError(f"cannot reach {self.url}: {type(exc).__name__}") from exc
        if 200 <= response.status_code < 300:
            return
        reason = f"{self.url} answered HTTP {response.status_code}: {_snippet(response.text)}"
        if response.status_code in _RETRYABLE_STATUSES or response.status_code >= 500:
            raise MailTemporaryError(reason)
        raise MailRejectedError(reason)


def payload(message: MailMessage) -> dict[str, str | list[str]]:
    """Return the JSON body that describes ``message``."""
    return {
        "from": message.sender,
        "to": [message.recipient],
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "message_id": message.message_id,
    }


def _snippet(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= _REASON_LENGTH else text[:_REASON_LENGTH] + "…"
