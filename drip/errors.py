"""One exception root for the project.

`InputError` is what a user can fix (bad file, bad row, unknown slug): the CLI prints its one
line and exits 2. `ConfigurationError` sits beside the send errors, never under them, so no
retry loop or "fail silently" path can swallow a missing key. Send errors carry the provider's
answer (`status_code`, `response`) and the request `payload` that caused it.
"""

from __future__ import annotations

from typing import Any


class DripError(Exception):
    """Root of every error drip raises on purpose."""


class InputError(DripError):
    """Bad input from a user: a file, a row, a field, an unknown name. Exit code 2."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class DocumentError(InputError):
    """A document that cannot be read or split into steps."""


class NotFoundError(InputError):
    """An unknown campaign, subscriber, broadcast or step."""


class TemplateError(DripError):
    """An MJML or Jinja template failed; the message names the template and line."""


class ConfigurationError(DripError):
    """Settings are missing or wrong (e.g. no SENDGRID_API_KEY). Never retried, never swallowed."""


class SendError(DripError):
    """A backend could not send. Carries what the provider answered."""

    transient: bool = False
    #: True: the backend itself is unwell (connection refused, timeout, 421, disk full, provider
    #: 5xx/401), not the recipient. The row is released untouched and the circuit breaker opens.
    server: bool = False
    #: True: the recipient's server said the address does not exist (a hard bounce): suppress it.
    bounce: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response: Any = None,
        payload: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.response = response
        self.payload = payload
        self.retry_after = retry_after
        super().__init__(message)


class TransientSendError(SendError):
    """Worth retrying later: 429, 5xx, timeouts, refused connections. Rows stay due."""

    transient = True


class BackendUnavailable(TransientSendError):
    """The backend cannot take mail now, for any recipient: hold it (circuit breaker), keep every
    row due, count nothing against the campaign."""

    server = True


class PermanentSendError(SendError):
    """The provider refused the message for good (4xx other than 429): fail the row with the reason."""


class HardBounce(PermanentSendError):
    """A 5xx naming the address (e.g. 550 5.1.1 user unknown at RCPT): the row fails and the address
    is suppressed, as a provider's bounce event does."""

    bounce = True
