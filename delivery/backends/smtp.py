"""SMTP with the stdlib `smtplib`: one connection, opened lazily and reused across batches.

Reuse is what makes SMTP fast (one TCP + EHLO + STARTTLS + AUTH instead of one per message:
`drip bench smtp` measures it). A reused connection may have been closed by the server while
idle, so a `SMTPServerDisconnected` reconnects once and resends that message.

Error mapping (the row outcome the dispatcher records):
- refused/timed-out connections, dropped connections, 4xx replies -> `TransientSendError`
  (the row stays due). Once connecting has failed in a batch, the rest of that batch fails
  transient at once instead of waiting for one timeout per message.
- 5xx for the recipient or the message -> `PermanentSendError` with the server's code and text.
- STARTTLS missing or untrusted, login refused, MAIL FROM refused with 5xx ->
  `ConfigurationError`, which stops the run. Raised only while nothing has been sent in the
  current batch: after that it is reported as transient for the rest, because raising would
  drop the results of messages already accepted and they would be sent twice later.
"""

from __future__ import annotations

import functools
import ipaddress
import smtplib
import socket
import ssl
from typing import Sequence

from drip.config import Settings
from drip.errors import ConfigurationError, PermanentSendError, SendError, TransientSendError
from delivery.backends.base import BaseBackend
from delivery.mime import MimeMessage, UnsafeHeaderError, build_message, check_address
from delivery.types import OutgoingMessage, SendResult


@functools.cache
def _local_hostname() -> str:
    # smtplib calls socket.getfqdn() (a DNS lookup) for every new SMTP object; do it once.
    return socket.getfqdn()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _reply_error(code: int, reply: bytes | str, what: str) -> SendError:
    """4xx -> transient, anything else (5xx) -> permanent; both carry the server's answer."""
    text = _text(reply)
    cls = TransientSendError if 400 <= code < 500 else PermanentSendError
    return cls(f"{what}: {code} {text}", status_code=code, response=text)


class SMTPBackend(BaseBackend):
    name = "smtp"
    uses_shared_content = True  # bodies spliced from the once-encoded shared content (delivery.mime._Spliced)

    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context`: for STARTTLS; default verifies against the system CAs (tests pass one
        that trusts their own certificate)."""
        super().__init__(settings)
        try:
            self.envelope_from = check_address(settings.clinic.from_email, "clinic from_email")
        except UnsafeHeaderError as exc:
            raise ConfigurationError(str(exc)) from None
        self.domain = self.envelope_from.rpartition("@")[2]
        self.ssl_context = ssl_context
        self.where = f"{settings.smtp_host}:{settings.smtp_port}"
        self._conn: smtplib.SMTP | None = None
        self._down: TransientSendError | None = None  # connecting failed in this batch
        self._sent_in_batch = 0
        self.connect_attempts = 0  # observable for tests and the benchmark

    # -- lifecycle
    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _config_error(self, message: str) -> SendError | ConfigurationError:
        if self._sent_in_batch:
            return TransientSendError(f"{message} (the rest of this batch stays due)")
        return ConfigurationError(message)

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        if self._down is not None:
            raise self._down
        s = self.settings
        if s.smtp_username and not s.smtp_starttls and not _is_loopback(s.smtp_host):
            raise self._config_error(
                f"refusing to send the SMTP password unencrypted to {s.smtp_host}; set DRIP_SMTP_STARTTLS=true"
            )
        self.connect_attempts += 1
        try:
            conn = smtplib.SMTP(s.smtp_host, s.smtp_port, local_hostname=_local_hostname(), timeout=s.smtp_timeout)
        except (OSError, smtplib.SMTPException) as exc:
            self._down = TransientSendError(f"SMTP server {self.where} unreachable: {exc!r}")
            raise self._down from exc
        try:
            # No Nagle: a message over one TLS record (16 KB) ends in a short record that would wait
            # for the ACK of the first, which the server delays: 40 ms a message (`drip bench smtp`).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if s.smtp_starttls:
                if not conn.has_extn("starttls"):
                    raise self._config_error(
                        f"DRIP_SMTP_STARTTLS is on but the SMTP server {self.where} does not offer STARTTLS"
                    )
                conn.starttls(context=self.ssl_context or ssl.create_default_context())
                conn.ehlo()
            if s.smtp_username:
                conn.login(s.smtp_username, s.smtp_password)
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise self._config_error(f"SMTP server {self.where}: TLS certificate not trusted: {exc.verify_message}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            raise self._config_error(
                f"SMTP server {self.where} refused the login as {s.smtp_username!r}: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            conn.close()
            raise self._config_error(f"SMTP server {self.where} does not offer AUTH: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            conn.close()
            self._down = TransientSendError(f"SMTP server {self.where}: connection setup failed: {exc!r}")
            raise self._down from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    # -- sending
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self._down = None
        self._sent_in_batch = 0
        return super().send_batch(messages)

    def send_group(self, group: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for msg in group:
            built = build_message(msg, domain=self.domain)
            self._send(built)
            self._sent_in_batch += 1
            results.append(SendResult(delivery_id=msg.delivery_id, ok=True, message_id=built.message_id))
        return results

    def _send(self, built: MimeMessage) -> None:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.sendmail(self.envelope_from, [built.recipient], built.raw)
                return
            except smtplib.SMTPServerDisconnected as exc:
                # Most often an idle connection the server closed: reconnect once.
                self._drop()
                if attempt == 2:
                    raise TransientSendError(f"SMTP server {self.where} closed the connection: {exc}") from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                if code == 421:  # "service closing": smtplib has closed the socket already
                    self._drop()
                raise _reply_error(code, reply, f"recipient {built.recipient} refused") from exc
            except smtplib.SMTPSenderRefused as exc:
                if 400 <= exc.smtp_code < 500:
                    raise _reply_error(exc.smtp_code, exc.smtp_error, "sender refused") from exc
                # e.g. 553 sender not allowed, 530 authentication/STARTTLS required: no message
                # of this batch can go out until the settings change.
                raise self._config_error(
                    f"SMTP server {self.where} refused MAIL FROM:<{self.envelope_from}>: "
                    f"{exc.smtp_code} {_text(exc.smtp_error)}"
                ) from exc
            except smtplib.SMTPResponseException as exc:  # SMTPDataError and the like
                raise _reply_error(exc.smtp_code, exc.smtp_error, "message refused") from exc
            except (OSError, smtplib.SMTPException) as exc:  # timeouts, resets
                self._drop()
                raise TransientSendError(f"SMTP server {self.where}: {exc!r}") from exc
