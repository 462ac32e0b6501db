"""OutgoingMessage -> RFC 5322 bytes (multipart/alternative: text/plain, then text/html).

Why hand assembly instead of `email.message.EmailMessage`: the dispatcher has to reach
2,000 emails/s, and here `EmailMessage` + `policy.default` cost ~1.75-2.5 ms per 9 KB email,
`email.mime` + compat32 ~0.25-0.75 ms, this module 0.03-0.1 ms (`drip bench smtp` measures all
three in the same run). The pieces it writes are few and fixed, and the tests parse every
output back with the stdlib parser, so the speed does not cost correctness:

- Headers are pure ASCII. Human text (subject, display names) that is non-ASCII, looks like an
  encoded word or is too long to fold at spaces goes out as RFC 2047 `=?utf-8?b?...?=` words
  (<= 75 chars each, never splitting a UTF-8 character), folded with CRLF + space. Other
  display names are quoted strings; other subjects are plain text folded at spaces.
- Bodies: CRLF line ends, then 7bit when ASCII with lines <= 998 bytes, otherwise the shorter of
  quoted-printable and base64 (QP for mostly-Latin text, base64 for e.g. Greek or CJK).
- No CR/LF from data reaches a header. Human text is *sanitised*: every run of control
  characters (C0, DEL, C1 incl. NEL) and Unicode line/paragraph separators becomes one space
  and the ends are trimmed (in display names every whitespace run becomes one space), because
  a subject with a stray newline should still be sent. Machine values (addresses, the
  unsubscribe URL, a caller's Message-ID) are *refused* with `UnsafeHeaderError`, a permanent
  per-message failure: there is no safe guess for a broken address, and an email must never go
  out with a mangled unsubscribe link; a bad Message-ID domain is a `ConfigurationError`. The
  URL may be http for local demos; RFC 8058 one-click (Gmail, Yahoo) needs https in production.

Message-ID: `<drip.{delivery_id}.{16 random hex}@{domain}>`, fresh per attempt by default. A
resend does NOT reuse the earlier ID on purpose: an ID derived only from the delivery id repeats
after a database reset or in a second install sending from the same domain, and Gmail silently
drops a message whose Message-ID it has already seen - a silent loss, worse than the rare
duplicate after an ambiguous SMTP timeout. `X-Drip-Delivery-Id` is the stable key across
resends. Callers that store the first ID and want to reuse it can pass `message_id=`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
import time
from collections import OrderedDict
from typing import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from drip.errors import ConfigurationError, PermanentSendError
from delivery.types import OutgoingMessage

_CONTROL_RUNS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# dot-atom local part and an LDH host name: what a sender or subscriber address must look like
# once the domain is IDNA-encoded. Quoted local parts and non-ASCII local parts (SMTPUTF8) are
# refused rather than sent through servers that may not support them.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
                      r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_URL = re.compile(r"https?://[\x21-\x7e]+\Z")  # visible ASCII only: no space, CR/LF, controls
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,900}>\Z")  # visible ASCII, no inner < >
_EW_BYTES = 45  # 45 bytes -> 60 base64 chars; "=?utf-8?b?" + 60 + "?=" = 72 <= 75 (RFC 2047)
_FOLD_AT = 78  # RFC 5322 "SHOULD" line length for headers we fold at spaces
_MAX_URL = 900  # a URL is one unfoldable token: keep the header line under the 998 limit


class UnsafeHeaderError(PermanentSendError):
    """A machine value (address, URL) that cannot go into a header safely. Never retried."""


@dataclass(frozen=True)
class MimeMessage:
    """The built bytes plus what a transport needs beside them."""

    raw: bytes
    message_id: str  # with angle brackets, as in the header
    sender: str  # the From address (ASCII, IDNA domain)
    recipient: str  # the To address (ASCII, IDNA domain)


def clean_header_text(value: str) -> str:
    """Human text for a header: control characters and line breaks collapse to one space."""
    return _CONTROL_RUNS.sub(" ", value).strip()


def clean_display_name(value: str) -> str:
    """A display name: as `clean_header_text`, and any whitespace run becomes one space
    (the stdlib parser collapses it inside names anyway, so it could not round-trip)."""
    return " ".join(_CONTROL_RUNS.sub(" ", value).split())


def check_address(value: str, field: str = "address") -> str:
    """An ASCII addr-spec (IDNA-encoded domain) or `UnsafeHeaderError` naming the field."""
    if _ADDRESS.match(value):
        return value
    local, at, domain = value.rpartition("@")
    if at and not domain.isascii():
        try:
            candidate = f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            candidate = ""
        if _ADDRESS.match(candidate):
            return candidate
    raise UnsafeHeaderError(f"{field}: not a sendable email address: {value!r}")


def _check_url(value: str) -> str:
    if len(value) <= _MAX_URL and _URL.match(value) and "<" not in value and ">" not in value:
        return value
    raise UnsafeHeaderError(f"unsubscribe_url: not a safe header URL: {value[:200]!r}")


def _split_utf8(data: bytes) -> list[bytes]:
    """Pieces of at most 45 bytes, cut only between characters."""
    pieces = []
    start, end = 0, len(data)
    while start < end:
        cut = min(start + _EW_BYTES, end)
        while cut < end and (data[cut] & 0xC0) == 0x80:  # a continuation byte: back up
            cut -= 1
        pieces.append(data[start:cut])
        start = cut
    return pieces


def _encoded_words(text: str, *, phrase: bool = False) -> list[str]:
    """RFC 2047 base64 words. In a phrase (display name) a long name is cut after one of its
    own spaces, never inside a word unless a word alone is over 45 bytes. RFC 2047 readers
    join adjacent words exactly; the stdlib phrase parser (wrongly) adds a space between
    them, so cutting inside a word would show up there as a space in the middle of it."""
    data = text.encode("utf-8", "replace")  # "replace": a lone surrogate becomes "?"
    if not phrase or len(data) <= _EW_BYTES:
        chunks = _split_utf8(data)
    else:
        words = data.split(b" ")
        chunks, current = [], b""
        for i, word in enumerate(words):
            token = word if i == len(words) - 1 else word + b" "
            if len(current) + len(token) <= _EW_BYTES:
                current += token
                continue
            if current:
                chunks.append(current)
            *full, current = _split_utf8(token)
            chunks += full
        if current:
            chunks.append(current)
    return ["=?utf-8?b?" + base64.b64encode(c).decode("ascii") + "?=" for c in chunks]


def _fold_plain(name: str, value: str) -> str | None:
    """Fold ASCII text at single spaces; None when some word is too long to fold."""
    if len(name) + 2 + len(value) <= _FOLD_AT:
        return value
    out: list[str] = []
    line = len(name) + 2
    for i, token in enumerate(value.split(" ")):
        if len(token) > _FOLD_AT - 2:
            return None
        if i == 0:
            out.append(token)
            line += len(token)
        elif token and line + 1 + len(token) > _FOLD_AT:
            out.append("\r\n " + token)  # the fold replaces this space, unfolding restores it
            line = 1 + len(token)
        else:
            out.append(" " + token)
            line += 1 + len(token)
    return "".join(out)


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text


def _unstructured(name: str, text: str) -> str:
    """A header line for human text (Subject); `text` is already clean."""
    if not _needs_encoding(text):
        folded = _fold_plain(name, text)
        if folded is not None:
            return f"{name}: {folded}"
    return f"{name}: " + "\r\n ".join(_encoded_words(text))


def _mailbox(name: str, address: str) -> str:
    """`"Display Name" <addr>` with the name quoted or encoded; bare addr when there is no name."""
    if not name:
        return address
    if not _needs_encoding(name) and len(name) <= 60:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'
    words = _encoded_words(name, phrase=True)
    return "\r\n ".join(words) + (" " if len(words) == 1 else "\r\n ") + f"<{address}>"


def _has_long_line(data: bytes) -> bool:
    """Any line over 998 bytes (RFC 5322)? Jumps ~1000 bytes per step instead of splitting."""
    pos, end = 0, len(data)
    while end - pos > 999:  # a line is at most 998 bytes + CR before its LF
        lf = data.rfind(b"\n", pos, pos + 1000)
        if lf < 0:
            return True
        pos = lf + 1
    return False


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, payload) for one text part, CRLF line ends."""
    # Bytes, not str, for the newline work: ~10x faster, and UTF-8 never has CR/LF inside a character.
    data = text.encode("utf-8", "replace")  # "replace": a lone surrogate becomes "?"
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"  # also makes b2a_qp see a CRLF first and use CRLF for its soft breaks
    data = data.replace(b"\n", b"\r\n")
    if data.isascii() and b"\x00" not in data and not _has_long_line(data):
        return "7bit", data
    qp = binascii.b2a_qp(data)
    b64_len = (len(data) + 2) // 3 * 4
    b64_len += b64_len // 76 * 2
    if len(qp) <= b64_len:
        return "quoted-printable", qp
    return "base64", base64.encodebytes(data).replace(b"\n", b"\r\n")


class _Spliced:
    """One shared body (`SharedContent.html` or `.text` with substitution keys), encoded once.

    The per-recipient body differs from the shared one only where the keys stand (greeting, link
    token), but quoted-printable puts a soft break every 76 columns, so a longer name moves every
    break after it. binascii's encoder depends only on the column it starts at and on whether the
    next byte is a line end, so each static piece is encoded once per starting column (at most
    76 of them) and only the short values are encoded per recipient: the same bytes as `_body`
    of the substituted text (a hypothesis test checks it), in about a tenth of the time."""

    __slots__ = ("pieces", "keys", "encoded", "ok", "plain")

    def __init__(self, template: str, keys: tuple[str, ...]) -> None:
        parts = re.split("(" + "|".join(map(re.escape, keys)) + ")", template) if keys else [template]
        # Static pieces at even indexes, keys at odd ones; the last static piece ends the body.
        self.ok = "\r" not in template and bool(parts[-1])
        statics = [p.encode("utf-8", "replace").replace(b"\n", b"\r\n") for p in parts[0::2]]
        if not parts[-1].endswith("\n"):
            statics[-1] += b"\r\n"
        self.pieces = statics
        self.plain = all(p.isascii() and b"\x00" not in p for p in statics)  # 7bit possible
        self.keys = parts[1::2]
        self.encoded: list[dict[tuple[int, bytes], tuple[bytes, int]]] = [{} for _ in statics]

    def body(self, values: Mapping[str, str]) -> tuple[str, bytes] | None:
        """(Content-Transfer-Encoding, payload) as `_body` gives it; None where only `_body` can
        decide (a value with a line break or NUL, or NUL next to a value)."""
        dynamic = []
        for key in self.keys:
            v = values.get(key, key).encode("utf-8", "replace")
            if b"\r" in v or b"\n" in v or b"\0" in v:
                return None
            dynamic.append(v)
        statics = self.pieces
        raw = [statics[0]]
        for v, s in zip(dynamic, statics[1:]):
            raw += (v, s)
        data = None
        if self.plain and all(v.isascii() for v in dynamic):
            data = b"".join(raw)
            if not _has_long_line(data):
                return "7bit", data
        out: list[bytes] = []
        column = 0
        last = len(raw) - 1
        for i, piece in enumerate(raw):
            if not piece:
                continue
            if i == last:
                enc, column = _qp_from(piece, column, None)
            else:
                following = raw[i + 1][:1] or next((p for p in raw[i + 2:] if p), b"")[:1]
                if following == b"\x00":
                    return None
                # A line end next: the encoder looks at it (a space before it becomes =20).
                lookahead = b"\r\n" if following == b"\r" else b"a"
                if i % 2 == 0:
                    cache = self.encoded[i // 2]
                    hit = cache.get((column, lookahead))
                    if hit is None:
                        hit = cache[(column, lookahead)] = _qp_from(piece, column, lookahead)
                    enc, column = hit
                else:
                    enc, column = _qp_from(piece, column, lookahead)
            out.append(enc)
        qp = b"".join(out)
        b64_len = (sum(map(len, raw)) + 2) // 3 * 4
        b64_len += b64_len // 76 * 2
        if len(qp) <= b64_len:
            return "quoted-printable", qp
        return "base64", base64.encodebytes(data or b"".join(raw)).replace(b"\n", b"\r\n")


def _qp_from(piece: bytes, column: int, lookahead: bytes | None) -> tuple[bytes, int]:
    """binascii's quoted-printable of `piece` as it comes out at `column` of an output line when
    followed by a plain byte or a line end (`lookahead`) or by nothing; and the column after it. Plain filler
    in front puts the encoder at the column (75 plain bytes never need a soft break)."""
    data = b"a" * column + piece + (lookahead or b"")
    enc = binascii.b2a_qp(data)
    if b"\n" not in data:  # no line end seen: binascii writes soft breaks as "=\n"
        enc = enc.replace(b"=\n", b"=\r\n")
    enc = enc[column:]
    if lookahead == b"\r\n":  # comes out as itself, after any =20 it caused
        enc = enc[:-2]
    elif lookahead:
        enc = enc[:-4] if enc.endswith(b"=\r\na") else enc[:-1]
    nl = enc.rfind(b"\n")
    return enc, (column + len(enc)) if nl < 0 else len(enc) - nl - 1


_SPLICED_MAX = 16
_spliced: OrderedDict[tuple[str, str], _Spliced] = OrderedDict()
_spliced_lock = threading.Lock()


def _shared_body(shared_key: str, part: str, template: str, values: Mapping[str, str]) -> tuple[str, bytes]:
    """`_body` of `template` with `values` substituted, from the encoded-once template."""
    cache_key = (shared_key, part)
    with _spliced_lock:
        spliced = _spliced.get(cache_key)
        if spliced is not None:
            _spliced.move_to_end(cache_key)
    if spliced is None:
        spliced = _Spliced(template, tuple(k for k in values if k in template))
        with _spliced_lock:
            _spliced[cache_key] = spliced
            while len(_spliced) > _SPLICED_MAX:
                _spliced.popitem(last=False)
    result = spliced.body(values) if spliced.ok else None
    if result is None:
        text = template
        for k, v in values.items():
            text = text.replace(k, v)
        return _body(text)
    return result


def new_message_id(delivery_id: int, domain: str, token: str | None = None) -> str:
    return f"<drip.{int(delivery_id)}.{token or secrets.token_hex(8)}@{domain}>"


_date_cache: tuple[int, str] = (0, "")


def _date_header(now: datetime | None) -> str:
    """RFC 5322 date; the current one is formatted once per second (it costs ~10 us)."""
    global _date_cache
    if now is not None:
        return format_datetime(now)
    second = int(time.time())
    cached_second, text = _date_cache
    if cached_second != second:
        text = format_datetime(datetime.fromtimestamp(second, timezone.utc))
        _date_cache = (second, text)
    return text


def build_message(
    msg: OutgoingMessage,
    *,
    domain: str,
    message_id: str | None = None,
    now: datetime | None = None,
) -> MimeMessage:
    """Build the full message. Raises `UnsafeHeaderError` for addresses/URLs it will not send."""
    if not _DOMAIN.match(domain):
        raise ConfigurationError(f"Message-ID domain is not a host name: {domain!r}")
    sender = check_address(msg.from_email, "from_email")
    recipient = check_address(msg.to_email, "to_email")
    rand = secrets.token_hex(16)  # one urandom call for the Message-ID and the boundary
    message_id = message_id or new_message_id(msg.delivery_id, domain, rand[:16])
    if not _MESSAGE_ID.match(message_id):
        raise UnsafeHeaderError(f"message_id: not a safe Message-ID: {message_id[:200]!r}")

    headers = [
        "From: " + _mailbox(clean_display_name(msg.from_name), sender),
        "To: " + _mailbox(clean_display_name(msg.to_name), recipient),
    ]
    if msg.reply_to:
        headers.append("Reply-To: " + check_address(msg.reply_to, "reply_to"))
    headers += [
        _unstructured("Subject", clean_header_text(msg.subject)),
        "Date: " + _date_header(now),
        "Message-ID: " + message_id,
        "MIME-Version: 1.0",
    ]
    if msg.unsubscribe_url:
        # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to the URL.
        # Not folded even when long: a URL has no place to fold, and a value that starts on a
        # continuation line comes back with a leading space from the stdlib parser.
        headers.append("List-Unsubscribe: <" + _check_url(msg.unsubscribe_url) + ">")
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    headers.append(f"X-Drip-Delivery-Id: {int(msg.delivery_id)}")

    shared = msg.shared
    if shared is not None:  # the body once with keys + this recipient's values (see _Spliced)
        text_cte, text_data = _shared_body(shared.key, "text", shared.text, msg.substitutions)
        html_cte, html_data = _shared_body(shared.key, "html", shared.html, msg.substitutions)
    else:
        text_cte, text_data = _body(msg.text)
        html_cte, html_data = _body(msg.html)
    boundary = "=_drip_" + rand[16:]  # "=_" cannot occur in QP or base64 output
    b = boundary.encode("ascii")
    while (text_cte == "7bit" and b in text_data) or (html_cte == "7bit" and b in html_data):
        boundary = "=_drip_" + secrets.token_hex(8)
        b = boundary.encode("ascii")
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')

    raw = b"".join((
        "\r\n".join(headers).encode("ascii"),
        b"\r\n\r\n--", b, b'\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: ',
        text_cte.encode("ascii"), b"\r\n\r\n", text_data,
        b"\r\n--", b, b'\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: ',
        html_cte.encode("ascii"), b"\r\n\r\n", html_data,
        b"\r\n--", b, b"--\r\n",
    ))
    return MimeMessage(raw=raw, message_id=message_id, sender=sender, recipient=recipient)


def build_mime(
    msg: OutgoingMessage,
    *,
    domain: str,
    message_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """The raw RFC 5322 bytes of `msg` (see `build_message` for the Message-ID too)."""
    return build_message(msg, domain=domain, message_id=message_id, now=now).raw


def domain_of(address: str) -> str:
    """The domain for Message-IDs: the sender's, IDNA-encoded."""
    return check_address(address, "from_email").rpartition("@")[2]
