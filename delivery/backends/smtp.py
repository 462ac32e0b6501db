"""SMTP with the stdlib `smtplib`: one connection, opened lazily and reused across batches.

Reuse is what makes SMTP fast (one TCP + EHLO + STARTTLS + AUTH instead of one per message:
`drip bench smtp` measures it). A reused connection may have been closed by the server while
idle, so a `SMTPServerDisconnected` reconnects once and resends that message.

Error mapping (the row outcome the dispatcher records). Server-level failures say nothing about
the recipient: they raise `BackendUnavailable` (`SendResult.server`), the dispatcher releases the
rows as they were and its circuit breaker holds the backend; they never fail a row or count
toward auto-pause.
- server-level: refused/timed-out/dropped connections, a 421 anywhere ("service not available,
  closing"), a 4xx to MAIL FROM, a 4xx for `SOFT_STREAK` recipients in a row (the server is
  refusing everyone, not greylisting one address). A connection refused or dropped at once is
  retried a couple of times within `CONNECT_TRIES` before the backend is declared down (one
  refused connection in three, as a busy relay does, costs a reconnect, not a hold). Once it is
  down, the rest of the batch is reported at once instead of waiting for one timeout per message.
- recipient-level, transient: a 4xx for one recipient (greylisting, mailbox busy): the row retries
  later with backoff.
- recipient-level, permanent: a 5xx at RCPT or DATA, with the server's code and text. A 5xx at RCPT
  (other than policy/system/protocol codes 5.3/5.4/5.5/5.7.x) and a 5.1.x/5.2.1 at DATA say the
  address is dead: `HardBounce`, and the address is suppressed, as a provider's bounce event does.
- STARTTLS missing or untrusted, login refused, MAIL FROM refused with 5xx ->
  `ConfigurationError` (the dispatcher logs it as an error and holds the backend like an outage:
  a rotated password or an expired certificate is fixed on the server side, and sending must
  resume by itself then). Raised only while nothing has been sent in the current batch: after that
  it is reported as server-level for the rest, because raising would drop the results of messages
  already accepted and they would be sent twice later.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import smtplib
import socket
import ssl
import threading
import time
from typing import Callable, Sequence

from drip.config import Settings
from drip.errors import (
    BackendUnavailable, ConfigurationError, HardBounce, PermanentSendError, SendError, TransientSendError,
)
from delivery.backends.base import BaseBackend
from delivery.mime import MimeMessage, UnsafeHeaderError, build_message, check_address
from delivery.smtp_wire import NotAttempted, send_message
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


#: 4xx answers for this many different recipients in a row mean the server refuses everyone.
SOFT_STREAK = 3
#: Tries to open a connection when the refusal is immediate (refused, reset, 421 greeting); a
#: timeout is not retried (it already took `smtp_timeout`).
CONNECT_TRIES = 3
CONNECT_RETRY_DELAY = 0.05  # seconds before the third try (the second goes at once)
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})")
# Enhanced status classes that blame policy, the server or the protocol, not the address (RFC 3463).
_NOT_THE_ADDRESS = {"3", "4", "5", "6", "7"}


def _enhanced(text: str) -> tuple[str, str] | None:
    m = _ENHANCED.match(text)
    return (m.group(2), m.group(3)) if m else None


def _reply_error(code: int, reply: bytes | str, what: str, *, stage: str = "rcpt") -> SendError:
    """Classify one SMTP reply; every error carries the server's answer.

    421 -> the server is going away (server-level); other 4xx -> transient for this message;
    5xx -> permanent, and a hard bounce when it names the address (see the module docstring)."""
    text = _text(reply)
    message = f"{what}: {code} {text}"
    if code == 421:
        return BackendUnavailable(message, status_code=code, response=text)
    if 400 <= code < 500:
        return TransientSendError(message, status_code=code, response=text)
    enhanced = _enhanced(text)
    if stage == "rcpt":
        dead = code in (550, 551, 553) if enhanced is None else enhanced[0] not in _NOT_THE_ADDRESS
    else:  # DATA: most 5xx here are about the content; only an address code is a bounce
        dead = enhanced is not None and (enhanced[0] == "1" or enhanced == ("2", "1"))
    cls = HardBounce if dead else PermanentSendError
    return cls(message, status_code=code, response=text)


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
        # VERP: each message's MAIL FROM names its delivery, signed (delivery/bounces/verp.py), so an
        # asynchronous bounce is matched whatever the remote MTA's report looks like.
        self.verp_domain = settings.bounce_domain.strip().lower() or (self.domain if settings.verp else "")
        self._verp_secret = ""
        if self.verp_domain:
            from drip.config import secret_key

            try:
                check_address(f"bounces@{self.verp_domain}", "DRIP_BOUNCE_DOMAIN")
            except UnsafeHeaderError as exc:
                raise ConfigurationError(str(exc)) from None
            self._verp_secret = secret_key(settings)
        self.ssl_context = ssl_context
        self.where = f"{settings.smtp_host}:{settings.smtp_port}"
        self._conn: smtplib.SMTP | None = None
        self._down: TransientSendError | None = None  # connecting failed in this batch
        self._sent_in_batch = 0
        self.connect_attempts = 0  # connections set up (each with up to CONNECT_TRIES tries); for tests
        self.connect_tries = 0  # TCP connections tried, retries included
        self.connections = max(1, settings.smtp_connections)
        self.pipelining = settings.smtp_pipelining
        self._lanes: list[SMTPBackend] = []  # the pool's other connections (one backend each)
        self._proceed: Callable[[], bool] | None = None  # set by the pool: False once the batch is stopping

    # -- lifecycle
    def close(self) -> None:
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            lane.close()
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
            return BackendUnavailable(f"{message} (the rest of this batch stays due)")
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
        conn = self._open_socket()
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
            self._down = BackendUnavailable(f"SMTP server {self.where}: connection setup failed: {exc!r}")
            raise self._down from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _open_socket(self) -> smtplib.SMTP:
        """TCP + the greeting, retried briefly when the refusal is immediate (a busy relay refuses
        some connections and takes the next); a timeout or the last refusal marks the backend down."""
        s = self.settings
        for attempt in range(1, CONNECT_TRIES + 1):
            self.connect_tries += 1
            try:
                return smtplib.SMTP(s.smtp_host, s.smtp_port, local_hostname=_local_hostname(), timeout=s.smtp_timeout)
            except (ConnectionError, smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected) as exc:
                if attempt == CONNECT_TRIES:
                    self._down = BackendUnavailable(f"SMTP server {self.where} unreachable: {exc!r}")
                    raise self._down from exc
                time.sleep(CONNECT_RETRY_DELAY * (attempt - 1))  # the first retry at once, as for a next MX
            except (OSError, smtplib.SMTPException) as exc:  # timeouts, unknown host: not worth retrying now
                self._down = BackendUnavailable(f"SMTP server {self.where} unreachable: {exc!r}")
                raise self._down from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- sending
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Over `smtp_connections` parallel connections (`_send_pooled`), or one message at a time
        over the reused connection. A `SOFT_STREAK` of 4xx answers turns into a server-level failure
        for those messages and the rest of the batch."""
        if self.connections > 1 and len(messages) > 1:
            return self._send_pooled(messages)
        return self._send_serial(messages)

    def _send_serial(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self._down = None
        self._sent_in_batch = 0
        results: list[SendResult] = []
        streak = 0
        for msg in messages:
            if results and self.keep_going is not None and not self.keep_going(results[-1:]):
                break  # the dispatcher stops here (a campaign just auto-paused)
            try:
                results.extend(self.send_group([msg]))
                streak = 0
                continue
            except SendError as exc:
                error = exc
            if not error.server and error.transient and error.status_code and 400 <= error.status_code < 500:
                streak += 1
                if streak >= SOFT_STREAK:
                    self._down = error = BackendUnavailable(
                        f"SMTP server {self.where} answered 4xx for {streak} recipients in a row; last: {error}",
                        status_code=error.status_code, response=error.response,
                    )
                    for earlier in results[len(results) - (streak - 1):]:
                        earlier.server = True
            else:
                streak = 0
            results.append(SendResult(
                delivery_id=msg.delivery_id, ok=False, error=str(error), transient=error.transient,
                retry_after=error.retry_after, server=error.server, bounce=error.bounce,
            ))
        return results

    def _send_one(self, msg: OutgoingMessage) -> tuple[SendResult, int | None]:
        """The result and, for a refusal, the server's reply code."""
        try:
            return self.send_group([msg])[0], None
        except SendError as error:
            return SendResult(
                delivery_id=msg.delivery_id, ok=False, error=str(error), transient=error.transient,
                retry_after=error.retry_after, server=error.server, bounce=error.bounce,
            ), error.status_code

    def _send_pooled(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Messages in order, taken by up to `connections` threads, one connection each (the pool's
        lanes persist across batches, like the single connection). The first server-level failure
        on any connection stops every lane: messages not yet taken are reported "not attempted"
        (server-level: the dispatcher's breaker holds the whole backend, the rows stay due). The
        4xx streak and `keep_going` see results in the order they complete. Each lane asks again
        right before a message's content goes out (`smtp_wire.send_message(proceed=)`): a message
        whose envelope was under way when another connection stopped the batch is reset, not sent,
        and reported like one not taken; only content already being written finishes."""
        width = min(self.connections, len(messages))
        while len(self._lanes) < width - 1:
            self._lanes.append(SMTPBackend(self.settings.with_(smtp_connections=1), ssl_context=self.ssl_context))
        lanes = [self, *self._lanes[:width - 1]]
        lock = threading.Lock()
        results: dict[int, SendResult] = {}
        done: list[int] = []  # indexes in completion order
        state: dict = {"next": 0, "stop": None, "config": None, "streak": 0}

        def proceed() -> bool:
            # Asked again by each lane right before a message's content goes out: a stop raised on
            # another connection while this one connected or exchanged the envelope holds the
            # message too (reset, reported like a message not taken: the row stays due).
            with lock:
                return state["stop"] is None

        for lane in lanes:
            lane._down, lane._sent_in_batch, lane._proceed = None, 0, proceed

        def finished(i: int, r: SendResult, status: int | None) -> None:  # under the lock
            results[i] = r
            done.append(i)
            if r.server:
                state["stop"] = state["stop"] or r
                return
            if not r.ok and r.transient and status is not None and 400 <= status < 500:
                state["streak"] += 1
                if state["streak"] >= SOFT_STREAK:
                    for j in done[-state["streak"]:]:
                        results[j].server = True
                    results[i].error = (f"SMTP server {self.where} answered 4xx for {state['streak']} recipients "
                                        f"in a row; last: {r.error}")
                    state["stop"] = state["stop"] or results[i]
                    return
            else:
                state["streak"] = 0
            if self.keep_going is not None and not self.keep_going([r]):
                state["stop"] = state["stop"] or "keep_going"

        def work(lane: SMTPBackend) -> None:
            while True:
                with lock:
                    if state["stop"] is not None or state["next"] >= len(messages):
                        return
                    i = state["next"]
                    state["next"] += 1
                msg = messages[i]
                if lane is not self:
                    lane._sent_in_batch = sum(x._sent_in_batch for x in lanes)  # a config error after sends is server-level
                try:
                    r, status = lane._send_one(msg)
                except NotAttempted:  # the batch stopped before this message's content went out
                    return
                except ConfigurationError as exc:
                    with lock:
                        state["config"] = state["config"] or (i, exc)
                        state["stop"] = state["stop"] or "config"
                    return
                except BaseException as exc:  # never lose track of a message taken
                    r, status = SendResult(msg.delivery_id, ok=False, error=f"SMTP lane failed: {exc!r}",
                                           transient=True, server=True), None
                with lock:
                    finished(i, r, status)

        threads = [threading.Thread(target=work, args=(lane,), daemon=True) for lane in lanes[1:]]
        for t in threads:
            t.start()
        try:
            work(self)
            for t in threads:
                t.join()
        finally:
            for lane in lanes:
                lane._proceed = None
        stop = state["stop"]
        if state["config"] is not None:
            i, exc = state["config"]
            if not any(r.ok for r in results.values()):
                raise exc
            results[i] = SendResult(messages[i].delivery_id, ok=False, transient=True, server=True,
                                    error=f"{exc} (the rest of this batch stays due)")
            stop = results[i]
        out: list[SendResult] = []
        for i, msg in enumerate(messages):
            if i in results:
                out.append(results[i])
            elif isinstance(stop, SendResult):  # server-level: the rest is held, not failed
                out.append(SendResult(msg.delivery_id, ok=False, error=f"not attempted: {stop.error}",
                                      transient=True, retry_after=stop.retry_after, server=True))
        return out

    def send_group(self, group: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for msg in group:
            if self._down is not None:  # the server refused everyone in this batch already
                raise self._down
            built = build_message(msg, domain=self.domain)
            self._send(built, self.envelope_for(msg.delivery_id))
            self._sent_in_batch += 1
            results.append(SendResult(delivery_id=msg.delivery_id, ok=True, message_id=built.message_id))
        return results

    def envelope_for(self, delivery_id: int) -> str:
        """The envelope MAIL FROM: the signed VERP address when configured, else the From address."""
        if not self.verp_domain:
            return self.envelope_from
        from delivery.bounces.verp import verp_address

        return verp_address(delivery_id, self.verp_domain, self._verp_secret)

    def _send(self, built: MimeMessage, envelope_from: str) -> None:
        for attempt in (1, 2):
            conn = self._connection()
            try:
                send_message(conn, envelope_from, built.recipient, built.raw, pipelining=self.pipelining,
                             proceed=self._proceed)
                return
            except NotAttempted:
                if conn.sock is None:  # DATA aborted by closing the connection
                    self._drop()
                raise
            except smtplib.SMTPServerDisconnected as exc:
                # Most often an idle connection the server closed: reconnect once.
                self._drop()
                if attempt == 2:
                    raise BackendUnavailable(f"SMTP server {self.where} closed the connection: {exc}") from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                if code == 421:  # "service closing": smtplib has closed the socket already
                    self._drop()
                raise _reply_error(code, reply, f"recipient {built.recipient} refused", stage="rcpt") from exc
            except smtplib.SMTPSenderRefused as exc:
                if exc.smtp_code == 421:
                    self._drop()
                if 400 <= exc.smtp_code < 500:  # MAIL FROM is the same for every message: server-level
                    raise BackendUnavailable(
                        f"SMTP server {self.where}: sender refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                        status_code=exc.smtp_code, response=_text(exc.smtp_error),
                    ) from exc
                # e.g. 553 sender not allowed, 530 authentication/STARTTLS required: no message
                # of this batch can go out until the settings change.
                raise self._config_error(
                    f"SMTP server {self.where} refused MAIL FROM:<{envelope_from}>: "
                    f"{exc.smtp_code} {_text(exc.smtp_error)}"
                ) from exc
            except smtplib.SMTPResponseException as exc:  # SMTPDataError and the like
                if exc.smtp_code == 421:
                    self._drop()
                raise _reply_error(exc.smtp_code, exc.smtp_error, "message refused", stage="data") from exc
            except (OSError, smtplib.SMTPException) as exc:  # timeouts, resets
                self._drop()
                raise BackendUnavailable(f"SMTP server {self.where}: {exc!r}") from exc
