"""SendGrid v3 Mail Send through the `sendgrid` library: one request per 1,000 recipients.

Messages that share rendered content (`OutgoingMessage.shared`) go out together, each recipient
as one personalization with its own substitutions, `custom_args.delivery_id` and one-click
unsubscribe headers (the body comes from `sendgrid_payload`, built without I/O). What SendGrid
answers decides each row:

- 202: every message in the request is sent; `X-Message-Id` is the request's message id.
- 429: wait as `Retry-After` / `X-RateLimit-Reset` says (capped), then the same request again.
- 5xx, timeouts, refused connections: exponential backoff with jitter, a few attempts, then the
  rows are server-level (`BackendUnavailable`: released as they were, the dispatcher's circuit
  breaker holds SendGrid and probes it later; never marked sent, never failed, never counted
  toward auto-pause). A 429 past the retry budget is the same, held at least `Retry-After`.
- 400 and other 4xx: permanent, with SendGrid's own error text. When the errors name single
  personalizations (`personalizations.3.to.0.email`), only those fail and the rest are re-sent.
- 401/403: the API key or sender identity is wrong, which is no recipient's fault: server-level
  (logged as an error), so no due row fails for it, and the rest of the batch is not tried.

The API key never leaves the Authorization header: not in errors, results, reprs or logs (the
HTTP client logs request headers at DEBUG; a filter below redacts them).

Each request body is serialized once, by orjson, before the retry loop, and handed to the library
as ready JSON (see `JSON_CONTENT_TYPE` for how the library allows that, and `JSONBody`). What the
library still costs per request, and we cannot avoid while it does the HTTP: a new urllib opener
and a new connection (it has no keep-alive). Its eager DEBUG formatting of the body is defused by
the body's type (`JSONBody`).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import re
import time
from typing import Any, Callable, Iterable, Sequence

import orjson
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from delivery.backends.base import BaseBackend
from delivery.backends.sendgrid_payload import (
    MAX_PERSONALIZATIONS,
    build_payload,
    request_key,
)
from delivery.types import OutgoingMessage, SendResult
from drip.config import Settings
from drip.errors import BackendUnavailable, ConfigurationError, PermanentSendError, TransientSendError

log = logging.getLogger("drip.delivery.sendgrid")

MAX_ATTEMPTS = 4  # per request, for 5xx / timeouts / refused connections
MAX_RATE_LIMIT_WAITS = 5  # 429 answers waited out per request before giving up for now
MAX_WAIT = 60.0  # cap on one wait, whatever Retry-After says
MAX_SPLITS = 3  # re-sends after a 400 that blamed single personalizations
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0

# python_http_client quirk (client.py, `http_request`): it json.dumps()es `request_body` itself
# (the stdlib encoder, ~40x slower than orjson on a 1,000-recipient body) unless the client's
# Content-Type is set and is not exactly "application/json"; then it sends
# `request_body.encode("utf-8")` as it is. So the body goes pre-serialized under the same media
# type with its charset parameter (what SendGrid's own C# library sends). The library merges
# `request_headers` into the client's own headers for good, so every request this backend's
# client makes must be a ready JSON body (`JSONBody`), and is.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_JSON_HEADERS = {"Content-Type": JSON_CONTENT_TYPE}

_KEY_OK = re.compile(r"[\x21-\x7e]+")  # a header-safe token: printable ASCII, no spaces
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+", re.IGNORECASE)
_BLAME = re.compile(r"personalizations(?:\.|\[)(\d+)")


class _RedactHTTPClientLog(logging.Filter):
    """python_http_client logs every request's headers (with the Bearer key), the whole body
    (patient addresses and names) and every response body at DEBUG. Keep the record, drop the
    secrets (any key a backend registered, and any Bearer token) and the request body."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("PAYLOAD:"):
            record.msg, record.args = "PAYLOAD: (request body not logged: recipient data)", ()
            return True
        clean = message
        for secret in self.secrets:
            clean = clean.replace(secret, "[redacted]")
        clean = _BEARER.sub(r"\1[redacted]", clean)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def _log_redactor() -> _RedactHTTPClientLog:
    http_client_log = logging.getLogger("python_http_client.client")
    for f in http_client_log.filters:
        if isinstance(f, _RedactHTTPClientLog):
            return f
    redactor = _RedactHTTPClientLog()
    http_client_log.addFilter(redactor)
    return redactor


_REDACTOR = _log_redactor()


def rate_limit_wait(headers: Any, now: float, cap: float = MAX_WAIT) -> float:
    """Seconds to wait after a 429: `Retry-After` (seconds or HTTP date), else SendGrid's
    `X-RateLimit-Reset` (epoch seconds), else 1 s; never negative, never above `cap`."""
    get = headers.get if headers is not None else (lambda _name: None)
    wait: float | None = None
    retry_after = get("Retry-After")
    if retry_after:
        try:
            wait = float(retry_after)
        except ValueError:
            try:
                wait = email.utils.parsedate_to_datetime(retry_after).timestamp() - now
            except (TypeError, ValueError):
                wait = None
    if wait is None:
        reset = get("X-RateLimit-Reset")
        try:
            wait = float(reset) - now if reset else None
        except ValueError:
            wait = None
    if wait is None or wait != wait:  # missing or NaN
        wait = 1.0
    return min(max(wait, 0.0), cap)


class JSONBody(bytes):
    """A serialized request body: orjson's UTF-8 bytes, in the shape python_http_client takes.

    The library sends `request_body.encode("utf-8")` as it is (see `JSON_CONTENT_TYPE`), so
    `encode` returns the body itself: no decoding to text and encoding back (0.4 ms for a
    1,000-recipient body with accented names). And the library formats the body into a DEBUG line
    (`'PAYLOAD: {data}'.format(...)`) before the logger can decide to drop it: for 1,000
    recipients a 400 KB repr (0.65 ms) and a string full of patient addresses. This type formats
    as its size instead, so neither happens, whatever the log level."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ValueError(f"a JSON body is UTF-8; {encoding!r} was asked for")
        return self

    def __format__(self, spec: str) -> str:
        return f"({len(self):,} bytes of JSON, not logged: recipient data)"

    def __repr__(self) -> str:
        return f"JSONBody({len(self):,} bytes)"

    __str__ = __repr__


def encode_body(body: dict[str, Any]) -> JSONBody:
    """The request body as JSON: orjson (UTF-8 as it is), or the stdlib encoder for what orjson
    refuses (a lone surrogate in a name), so one odd value costs milliseconds, not a failed group
    of 1,000 recipients."""
    try:
        return JSONBody(orjson.dumps(body))
    except orjson.JSONEncodeError:
        return JSONBody(json.dumps(body).encode("ascii"))  # a lone surrogate becomes a \udc80 escape


def provider_errors(body: bytes | str | None) -> list[dict[str, Any]]:
    """SendGrid's `{"errors": [{"message", "field", "help"}]}`; [] when the body is not that."""
    if not body:
        return []
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def describe_errors(errors: list[dict[str, Any]], body: bytes | str | None) -> str:
    """One line from SendGrid's errors ("field: message; ..."), or the start of a non-JSON body."""
    parts = []
    for e in errors:
        message = str(e.get("message") or "").strip()
        field = e.get("field")
        parts.append(f"{field}: {message}" if field else message)
    text = "; ".join(p for p in parts if p)
    if not text and body:
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        text = " ".join(raw.split())[:300]
    return text[:1000] or "no reason given"


def blamed_personalizations(errors: list[dict[str, Any]]) -> dict[int, str]:
    """{index: reason} when every error names one personalization; {} when any error is general."""
    blamed: dict[int, list[str]] = {}
    for e in errors:
        match = _BLAME.match(str(e.get("field") or ""))
        if not match:
            return {}
        blamed.setdefault(int(match.group(1)), []).append(describe_errors([e], None))
    return {i: "; ".join(reasons) for i, reasons in blamed.items()}


class SendGridBackend(BaseBackend):
    name = "sendgrid"
    uses_shared_content = True
    sends_groups = True
    early_stop = False  # one request is one group of up to 1,000: nothing to stop inside it

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        max_rate_limit_waits: int = MAX_RATE_LIMIT_WAITS,
        max_wait: float = MAX_WAIT,
        retry_budget: float | None = None,
    ) -> None:
        """`sleep`/`clock`/`wall_clock`/`rng` are injectable so tests never really wait.

        `retry_budget` (default: a third of the claim lease) bounds the time one `send_batch`
        spends waiting and retrying: past it, failures become transient at once, so a worker
        never holds claimed rows until their lease expires and another worker sends them again.
        """
        super().__init__(settings)
        key = settings.sendgrid_api_key
        if not key:
            raise ConfigurationError("SENDGRID_API_KEY is not set; the sendgrid backend needs it in the environment")
        if not _KEY_OK.fullmatch(key):
            raise ConfigurationError("SENDGRID_API_KEY contains spaces or control characters (value not shown)")
        host = settings.sendgrid_host.rstrip("/")
        if not host.startswith(("https://", "http://")):
            raise ConfigurationError(f"sendgrid_host must be an https:// URL (got {host[:80]!r})")
        if not settings.sendgrid_timeout > 0:
            raise ConfigurationError("sendgrid_timeout must be a positive number of seconds")
        self.host = host
        self.timeout = float(settings.sendgrid_timeout)
        self._secret = key
        _REDACTOR.secrets.add(key)
        self._client = SendGridAPIClient(api_key=key, host=host)
        # The library's default timeout is None: a stalled connection would hang the worker.
        self._client.client.timeout = self.timeout
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self.max_attempts = max(1, max_attempts)
        self.max_rate_limit_waits = max(0, max_rate_limit_waits)
        self.max_wait = max_wait
        self.retry_budget = settings.lease_seconds / 3 if retry_budget is None else retry_budget
        self._deadline: float | None = None

    def __repr__(self) -> str:
        return f"SendGridBackend(host={self.host!r}, timeout={self.timeout})"

    # -- grouping
    def group(self, messages: Sequence[OutgoingMessage]) -> Iterable[Sequence[OutgoingMessage]]:
        """Same shared content -> one request per 1,000; no shared content -> alone. First-seen order."""
        groups: dict[Any, list[OutgoingMessage]] = {}
        order: list[Any] = []
        previous: OutgoingMessage | None = None
        bucket: list[OutgoingMessage] = []
        for m in messages:
            if (  # same objects as the message before (the dispatcher's usual run): same request key
                previous is not None and m.shared is previous.shared and m.shared is not None
                and m.from_email is previous.from_email and m.from_name is previous.from_name
                and m.reply_to is previous.reply_to and m.categories is previous.categories
            ):
                bucket.append(m)
                continue
            previous = m
            key = request_key(m)
            if key is None:
                key = ("single", len(order))
            bucket = groups.get(key)
            if bucket is None:
                bucket = groups[key] = []
                order.append(key)
            bucket.append(m)
        for key in order:
            bucket = groups[key]
            for start in range(0, len(bucket), MAX_PERSONALIZATIONS):
                yield bucket[start:start + MAX_PERSONALIZATIONS]

    # -- the loop
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """As the base loop, but one provider-level failure (SendGrid down, rate-limited past the
        budget, key refused) stops the batch: later groups stay due, untried, instead of each
        waiting out its own timeouts."""
        self._deadline = self._clock() + self.retry_budget
        results: list[SendResult] = []
        outage: SendResult | None = None
        try:
            for group in self.group(messages):
                if outage is not None:
                    results.extend(
                        SendResult(m.delivery_id, ok=False, transient=True, retry_after=outage.retry_after,
                                   error=f"not attempted: {outage.error}", server=outage.server)
                        for m in group
                    )
                    continue
                try:
                    group_results = self.send_group(group)
                except ConfigurationError:
                    raise
                except Exception as exc:
                    # A bug or malformed message must not lose the results of groups already sent:
                    # their rows would be reclaimed after the lease and sent a second time.
                    log.exception("unexpected error sending a group of %d messages", len(group))
                    why = self._scrub(f"internal error while sending: {type(exc).__name__}: {exc}")[:500]
                    group_results = [SendResult(m.delivery_id, ok=False, error=why) for m in group]
                results.extend(group_results)
                outage = next((r for r in group_results if r.transient), None)
        finally:
            self._deadline = None
        return results

    def send_group(self, group: Sequence[OutgoingMessage]) -> list[SendResult]:
        payload = build_payload(group, tracking=self.settings.tracking)
        done: dict[int, SendResult] = {
            r.message.delivery_id: SendResult(r.message.delivery_id, ok=False, error=r.reason)
            for r in payload.rejected
        }
        for split in range(MAX_SPLITS + 1):
            if payload.body is None:
                break
            try:
                message_id = self._deliver(payload.body)
            except TransientSendError as exc:
                for m in payload.messages:
                    done[m.delivery_id] = SendResult(m.delivery_id, ok=False, transient=True, error=str(exc),
                                                     retry_after=exc.retry_after, server=exc.server)
                break
            except PermanentSendError as exc:
                blamed = blamed_personalizations(exc.response or [])
                blamed = {i: why for i, why in blamed.items() if 0 <= i < len(payload.messages)}
                if not blamed or len(blamed) == len(payload.messages) or split == MAX_SPLITS:
                    for m in payload.messages:
                        done[m.delivery_id] = SendResult(m.delivery_id, ok=False, error=str(exc))
                    break
                for i, why in blamed.items():
                    m = payload.messages[i]
                    done[m.delivery_id] = SendResult(
                        m.delivery_id, ok=False, error=self._scrub(f"SendGrid refused this recipient ({exc.status_code}): {why}")
                    )
                payload = payload.without(blamed)
                continue
            if not done:  # the usual case: everyone in the group went, in one request
                return [SendResult(m.delivery_id, True, message_id) for m in group]
            for m in payload.messages:
                done[m.delivery_id] = SendResult(m.delivery_id, ok=True, message_id=message_id)
            break
        return [done[m.delivery_id] for m in group if m.delivery_id in done]

    # -- one request, with its retries
    def _deliver(self, body: dict[str, Any]) -> str | None:
        """POST once per attempt until SendGrid accepts; raise Transient/PermanentSendError."""
        deadline = self._deadline if self._deadline is not None else self._clock() + self.retry_budget
        failures = 0
        rate_limited = 0
        data = encode_body(body)  # once, whatever the number of attempts
        while True:
            try:
                # The library's own HTTP client, fed ready JSON (see JSON_CONTENT_TYPE).
                response = self._client.client.mail.send.post(
                    request_body=data, request_headers=_JSON_HEADERS, timeout=self.timeout
                )
            except HTTPError as exc:
                status = int(exc.status_code)
                errors = provider_errors(exc.body)
                reason = self._scrub(describe_errors(errors, exc.body))
                if status == 429:
                    wait = rate_limit_wait(exc.headers, self._wall_clock(), self.max_wait)
                    rate_limited += 1
                    if rate_limited > self.max_rate_limit_waits or self._clock() + wait > deadline:
                        raise BackendUnavailable(
                            f"SendGrid rate limit (429) still in force after {rate_limited} tries: {reason}",
                            status_code=429, response=errors, retry_after=wait,
                        ) from None
                    log.warning("SendGrid rate limit (429): waiting %.1f s before trying again", wait)
                    self._sleep(wait)
                    continue
                if status in (401, 403):
                    log.error("SendGrid refused the credentials (%s): %s", status, reason)
                    raise BackendUnavailable(
                        f"SendGrid refused the API key or sender identity ({status}): {reason}; "
                        "check SENDGRID_API_KEY and the verified sender",
                        status_code=status, response=errors,
                    ) from None
                if 400 <= status < 500:
                    raise PermanentSendError(
                        f"SendGrid refused the request ({status}): {reason}", status_code=status, response=errors,
                    ) from None
                failure = f"SendGrid answered {status}: {reason}"
            except (OSError, http.client.HTTPException) as exc:
                # Refused/reset connections and timeouts (urllib raises URLError or TimeoutError).
                # A timeout after the body went out may hide an accepted request; SendGrid has no
                # idempotency key, so a retry can duplicate a send. Accepted: losing mail is worse.
                failure = f"could not reach SendGrid at {self.host}: {self._network_reason(exc)}"
            else:
                headers = response.headers
                return headers.get("X-Message-Id") if headers is not None else None

            failures += 1
            wait = self._backoff(failures)
            if failures >= self.max_attempts or self._clock() + wait + self.timeout > deadline:
                log.error("giving up on this SendGrid request for now after %d attempts: %s", failures, failure)
                raise BackendUnavailable(f"{failure} (after {failures} attempts)")
            log.warning("SendGrid request failed (attempt %d): %s; retrying in %.2f s", failures, failure, wait)
            self._sleep(wait)

    def _backoff(self, failures: int) -> float:
        """Exponential with "equal jitter": spreads retries, never zero."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    @staticmethod
    def _network_reason(exc: BaseException) -> str:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return "timed out"
        return f"{type(reason).__name__}: {reason}"[:300]

    def _scrub(self, text: str) -> str:
        """Defence in depth: whatever SendGrid echoes back, the key does not go further."""
        return _BEARER.sub(r"\1[redacted]", text.replace(self._secret, "[redacted]"))

